package ratelimit_test

import (
	"context"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/ratelimit"
	"github.com/rosettagw/rosetta/security/ratelimit/redistest"
)

// benchDecisions runs decisions on 10,000 client addresses from parallel
// goroutines, with a rate high enough that most are allowed.
func benchDecisions(b *testing.B, l *ratelimit.Limiter) {
	h := l.Wrap(router.HandlerFunc(func(context.Context, *router.Call) error { return nil }))
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1) % 10000
			c := &router.Call{Peer: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 1), Incoming: metadata.MD{}}
			_ = h.Handle(ctx, c)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

func BenchmarkLocal(b *testing.B) {
	l, err := ratelimit.New(ratelimit.Config{LimitConfig: ratelimit.LimitConfig{Rate: "1000/s"}}, ratelimit.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	benchDecisions(b, l)
}

func BenchmarkRedis(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
	defer client.Close()
	l, err := ratelimit.New(ratelimit.Config{Store: "redis", LimitConfig: ratelimit.LimitConfig{Rate: "1000/s"}},
		ratelimit.Options{Name: "bench" + strconv.Itoa(b.N), Redis: client, RedisTimeout: time.Second, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16) // decisions wait on the network: many in flight
	benchDecisions(b, l)
	if s := l.Stats(); s.StoreErrors > 0 {
		b.Fatalf("%d Redis errors", s.StoreErrors)
	}
}
