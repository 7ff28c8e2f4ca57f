package upstream

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
)

// BenchmarkPick is the cost per call of choosing an endpoint among eight
// and recording the outcome (begin and end of an attempt), by balancer,
// without and with the circuit breaker.
func BenchmarkPick(b *testing.B) {
	var targets []Endpoint
	for i := range 8 {
		targets = append(targets, Endpoint{Addr: fmt.Sprintf("10.0.0.%d:9090", i), Weight: i + 1})
	}
	for _, breaker := range []bool{false, true} {
		for _, bal := range []string{RoundRobin, LeastRequest, Weighted} {
			opts := Options{Name: "bench", Balancer: bal, Outlier: &OutlierDetection{}}
			name := bal
			if breaker {
				opts.Breaker = &BreakerConfig{}
				name += "+breaker"
			}
			b.Run(name, func(b *testing.B) {
				f := newFake(b, opts, targets...)
				ctx := context.Background()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						a, err := f.begin(ctx)
						if err != nil {
							b.Fatal(err)
						}
						a.end(codes.OK, false, false)
					}
				})
			})
		}
	}
}
