package ratelimit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/ratelimit"
	"github.com/rosettagw/rosetta/security/ratelimit/redistest"
)

var quiet = slog.New(slog.DiscardHandler)

// outcome is what one call met.
type outcome struct {
	code       codes.Code
	rateLimit  string // the RateLimit header
	retryAfter string
	retryInfo  time.Duration
}

func call(t testing.TB, l *ratelimit.Limiter, c *router.Call) outcome {
	t.Helper()
	reached := false
	err := l.Wrap(router.HandlerFunc(func(context.Context, *router.Call) error { reached = true; return nil })).Handle(context.Background(), c)
	o := outcome{code: status.Code(err)}
	if reached != (err == nil) {
		t.Fatalf("next reached = %v with error %v", reached, err)
	}
	if v := c.ResponseHeader.Get("ratelimit"); len(v) == 1 {
		o.rateLimit = v[0]
	}
	if v := c.ResponseHeader.Get("retry-after"); len(v) == 1 {
		o.retryAfter = v[0]
	}
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			o.retryInfo = ri.GetRetryDelay().AsDuration()
		}
	}
	return o
}

func fromIP(ip string) *router.Call {
	return &router.Call{Peer: netip.AddrPortFrom(netip.MustParseAddr(ip), 1000), Incoming: metadata.MD{}}
}

// storeCases is the table every store must pass; newLimiter builds a
// limiter of the store under test with a fresh key space.
func storeCases(t *testing.T, newLimiter func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter) {
	t.Run("burst then refuse", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{LimitConfig: ratelimit.LimitConfig{Name: "per-ip", Rate: "3/min"}})
		for i, want := range []string{`"per-ip";r=2;t=20`, `"per-ip";r=1;t=40`, `"per-ip";r=0;t=60`} {
			o := call(t, l, fromIP("192.0.2.1"))
			if o.code != codes.OK || o.rateLimit != want {
				t.Fatalf("call %d: %+v, want OK with RateLimit %s", i+1, o, want)
			}
		}
		o := call(t, l, fromIP("192.0.2.1"))
		if o.code != codes.ResourceExhausted || o.retryInfo <= 0 || o.retryInfo > 20*time.Second || o.retryAfter != "20" {
			t.Fatalf("4th call: %+v, want RESOURCE_EXHAUSTED retrying within 20s", o)
		}
		if o := call(t, l, fromIP("192.0.2.2")); o.code != codes.OK {
			t.Errorf("another key: %+v", o)
		}
		if o := call(t, l, fromIP("::ffff:192.0.2.2")); o.code != codes.OK || o.rateLimit != `"per-ip";r=1;t=40` {
			t.Errorf("the IPv4-mapped form of the same address: %+v, want the same key", o)
		}
	})
	t.Run("several limits are atomic", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Key: "header:x-tenant", Limits: []ratelimit.LimitConfig{
			{Name: "minute", Rate: "5/min"}, {Name: "burst", Rate: "1/s", Burst: 2},
		}})
		c := func() *router.Call { return &router.Call{Incoming: metadata.Pairs("x-tenant", "acme")} }
		call(t, l, c())
		call(t, l, c())
		o := call(t, l, c())
		if o.code != codes.ResourceExhausted {
			t.Fatalf("3rd call: %+v, want refused by the burst limit", o)
		}
		if want := `"minute";r=3;t=24, "burst";r=0;t=2`; o.rateLimit != want {
			t.Errorf("RateLimit %q, want %q (the minute limit untouched by the refused call)", o.rateLimit, want)
		}
	})
	t.Run("key parts", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Key: "subject+claim:org.id+client_id", LimitConfig: ratelimit.LimitConfig{Rate: "1/h"}})
		mk := func(sub, org, client string) *router.Call {
			return &router.Call{Incoming: metadata.MD{}, Identity: &router.Identity{Subject: sub, Method: "jwt", Claims: map[string]any{"org": map[string]any{"id": org}}},
				Credentials: &router.Credentials{ClientID: client}}
		}
		for i, tt := range []struct {
			c    *router.Call
			want codes.Code
		}{
			{mk("alice", "acme", "d1"), codes.OK},
			{mk("alice", "acme", "d1"), codes.ResourceExhausted},
			{mk("bob", "acme", "d1"), codes.OK},
			{mk("alice", "globex", "d1"), codes.OK},
			{mk("alice", "acme", "d2"), codes.OK},
		} {
			if o := call(t, l, tt.c); o.code != tt.want {
				t.Errorf("case %d: %v, want %v", i, o.code, tt.want)
			}
		}
	})
	t.Run("shadow", func(t *testing.T) {
		l := newLimiter(t, ratelimit.Config{Shadow: true, LimitConfig: ratelimit.LimitConfig{Rate: "1/h"}})
		for range 3 {
			if o := call(t, l, fromIP("192.0.2.9")); o.code != codes.OK {
				t.Fatalf("a shadow limit refused: %+v", o)
			}
		}
		if s := l.Stats(); s.Shadowed != 2 || s.Allowed != 1 || s.Refused != 0 {
			t.Errorf("stats %+v, want 1 allowed and 2 shadowed", s)
		}
	})
}

func TestLocal(t *testing.T) {
	n := 0
	storeCases(t, func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter {
		n++
		l, err := ratelimit.New(cfg, ratelimit.Options{Name: "t" + strconv.Itoa(n), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer client.Close()
	n := 0
	storeCases(t, func(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter {
		n++
		cfg.Store = "redis"
		l, err := ratelimit.New(cfg, ratelimit.Options{Name: fmt.Sprintf("%s-%d", t.Name(), n), Redis: client, RedisTimeout: 5 * time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// TestRefill drives the local store with a fake clock.
func TestRefill(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l, err := ratelimit.New(ratelimit.Config{LimitConfig: ratelimit.LimitConfig{Rate: "10/s", Burst: 2}}, ratelimit.Options{Now: func() time.Time { return now }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    codes.Code
	}{
		{0, codes.OK}, {0, codes.OK}, {0, codes.ResourceExhausted},
		{99 * time.Millisecond, codes.ResourceExhausted}, // one interval is 100ms
		{time.Millisecond, codes.OK}, {0, codes.ResourceExhausted},
		{time.Second, codes.OK}, {0, codes.OK}, {0, codes.ResourceExhausted}, // refilled only up to the burst
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if o := call(t, l, fromIP("192.0.2.1")); o.code != s.want {
			t.Fatalf("step %d: %+v, want %v", i, o, s.want)
		}
	}
}

// TestRedisFailure kills Redis under each failure policy, and checks that
// limiting through Redis resumes once it is back.
func TestRedisFailure(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	modes := []string{"open", "closed", "local"}
	limiters := map[string]*ratelimit.Limiter{}
	for _, mode := range modes {
		l, err := ratelimit.New(ratelimit.Config{Store: "redis", OnRedisError: mode, Replicas: 2, LimitConfig: ratelimit.LimitConfig{Rate: "4/h"}},
			ratelimit.Options{Name: "fail-" + mode, Redis: client, RedisTimeout: 5 * time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		limiters[mode] = l
		if o := call(t, l, fromIP("192.0.2.1")); o.code != codes.OK || o.rateLimit != `"default";r=3;t=900` {
			t.Fatalf("%s, Redis up: %+v", mode, o)
		}
	}
	srv.Stop()
	for _, mode := range modes {
		l := limiters[mode]
		var got []codes.Code
		start := time.Now()
		for range 3 {
			got = append(got, call(t, l, fromIP("192.0.2.1")).code)
		}
		// Redis is tried again a second after it failed: only calls made
		// within that second are sure to skip it.
		quick := time.Since(start) < time.Second
		want := map[string][]codes.Code{
			"open":   {codes.OK, codes.OK, codes.OK},
			"closed": {codes.Unavailable, codes.Unavailable, codes.Unavailable},
			"local":  {codes.OK, codes.OK, codes.ResourceExhausted}, // half of the burst of 4
		}[mode]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s, Redis down: %v, want %v", mode, got, want)
		}
		if s := l.Stats(); s.StoreErrors != 1 && (quick || s.StoreErrors < 1 || s.StoreErrors > 3) {
			t.Errorf("%s: %d store errors, want 1 (later calls skip Redis while it is down)", mode, s.StoreErrors)
		}
	}
	srv.Restart()
	for _, mode := range modes {
		l := limiters[mode]
		// Redis is retried after a second; the next call through it sees
		// an empty Redis (it lost its data) and takes one unit.
		deadline := time.Now().Add(10 * time.Second)
		for {
			o := call(t, l, fromIP("192.0.2.7"))
			if o.code == codes.OK && o.rateLimit == `"default";r=3;t=900` {
				if n, _ := client.Exists(context.Background(), "rosetta:rl:fail-"+mode+":default:192.0.2.7").Result(); n == 1 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: limiting did not resume through Redis: %+v", mode, o)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLocalMemoryBounded sends a million distinct keys through a store
// bounded to 100,000.
func TestLocalMemoryBounded(t *testing.T) {
	const maxKeys = 100_000
	l, err := ratelimit.New(ratelimit.Config{MaxKeys: maxKeys, Key: "header:k", LimitConfig: ratelimit.LimitConfig{Rate: "1/h"}}, ratelimit.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &router.Call{Incoming: metadata.MD{"k": {""}}}
			for i := w; i < 1_000_000; i += 4 {
				c.Incoming["k"][0] = strconv.Itoa(i)
				c.ResponseHeader = nil
				if err := l.Wrap(router.HandlerFunc(func(context.Context, *router.Call) error { return nil })).Handle(context.Background(), c); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := l.Stats()
	if held := ratelimit.Keys(l); held > maxKeys {
		t.Errorf("the store holds %d keys, more than max_keys %d", held, maxKeys)
	}
	if s.Evictions < 1_000_000-maxKeys {
		t.Errorf("%d evictions, want at least %d", s.Evictions, 1_000_000-maxKeys)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Errorf("the heap grew by %d MiB for %d keys", grown>>20, maxKeys)
	}
}

// fakeStream hands out n client messages, then io.EOF.
type fakeStream struct {
	router.Stream
	n int
}

func (s *fakeStream) Recv() ([]byte, error) {
	if s.n == 0 {
		return nil, io.EOF
	}
	s.n--
	return []byte("m"), nil
}

// TestStreamMessages: a stream takes one unit when it starts (covering its
// first message) and one per further message.
func TestStreamMessages(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{LimitConfig: ratelimit.LimitConfig{Rate: "3/h"}}, ratelimit.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := fromIP("192.0.2.1")
	c.Stream = &fakeStream{n: 5}
	var got []string
	err = l.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		for {
			_, err := c.Stream.Recv()
			if err != nil {
				return err
			}
			got = append(got, "m")
		}
	})).Handle(context.Background(), c)
	if status.Code(err) != codes.ResourceExhausted || len(got) != 3 {
		t.Errorf("%d messages then %v; want 3 then RESOURCE_EXHAUSTED", len(got), err)
	}
}

// TestManyLimits has more limits than the decision's preallocated room.
func TestManyLimits(t *testing.T) {
	var lcs []ratelimit.LimitConfig
	for i := range 6 {
		lcs = append(lcs, ratelimit.LimitConfig{Name: "l" + strconv.Itoa(i), Rate: strconv.Itoa(i+2) + "/h"})
	}
	l, err := ratelimit.New(ratelimit.Config{Limits: lcs}, ratelimit.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var codesSeen []codes.Code
	for range 3 {
		codesSeen = append(codesSeen, call(t, l, fromIP("192.0.2.1")).code)
	}
	if fmt.Sprint(codesSeen) != fmt.Sprint([]codes.Code{codes.OK, codes.OK, codes.ResourceExhausted}) {
		t.Errorf("codes %v: the tightest of six limits (2/h) should refuse the third call", codesSeen)
	}
}
