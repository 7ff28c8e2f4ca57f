package upstream

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
)

// BenchmarkPick is the cost per call of choosing an endpoint among eight
// (weights 1 to 8) and recording the outcome (begin and end of an attempt),
// by balancer, without and with the circuit breaker. least_request_equal
// gives the eight the same weight, where least request is the power of two
// choices rather than its weighted pick.
func BenchmarkPick(b *testing.B) {
	var weighted, equal []Endpoint
	for i := range 8 {
		addr := fmt.Sprintf("10.0.0.%d:9090", i)
		weighted = append(weighted, Endpoint{Addr: addr, Weight: i + 1})
		equal = append(equal, Endpoint{Addr: addr})
	}
	cases := []struct {
		name, balancer string
		targets        []Endpoint
	}{
		{RoundRobin, RoundRobin, weighted},
		{LeastRequest, LeastRequest, weighted},
		{LeastRequest + "_equal", LeastRequest, equal},
		{Weighted, Weighted, weighted},
	}
	for _, breaker := range []bool{false, true} {
		for _, bc := range cases {
			opts := Options{Name: "bench", Balancer: bc.balancer, Outlier: &OutlierDetection{}}
			name := bc.name
			if breaker {
				opts.Breaker = &BreakerConfig{}
				name += "+breaker"
			}
			b.Run(name, func(b *testing.B) {
				f := newFake(b, opts, bc.targets...)
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
