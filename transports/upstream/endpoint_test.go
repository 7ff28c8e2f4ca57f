package upstream

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/internal/testwait"
	"github.com/rosettagw/rosetta/router"
)

// fakeCluster is a cluster whose connections are nothing, whose closes are
// counted and whose health probes answer what healthy says.
type fakeCluster struct {
	*cluster
	mu      sync.Mutex
	closed  map[string]int
	healthy map[string]bool
	probes  atomic.Int64
}

func newFake(t testing.TB, opts Options, eps ...Endpoint) *fakeCluster {
	t.Helper()
	c, err := newCluster("fake", opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCluster{cluster: c, closed: map[string]int{}, healthy: map[string]bool{}}
	c.dial = func(addr string) (any, func(), error) {
		return addr, func() {
			f.mu.Lock()
			f.closed[addr]++
			f.mu.Unlock()
		}, nil
	}
	c.check = func(_ context.Context, e *endpoint) error {
		defer f.probes.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		if h, ok := f.healthy[e.addr]; ok && !h {
			return errors.New("down")
		}
		return nil
	}
	if err := c.SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return f
}

func (f *fakeCluster) setHealthy(addr string, ok bool) {
	f.mu.Lock()
	f.healthy[addr] = ok
	f.mu.Unlock()
}

func (f *fakeCluster) closes(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed[addr]
}

// call makes one call that ends with failed, returning its endpoint.
func (f *fakeCluster) call(t testing.TB, failed bool) string {
	t.Helper()
	a, err := f.begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code := codes.OK
	if failed {
		code = codes.Unavailable
	}
	a.end(code, failed, false)
	return a.e.addr
}

func eps(addrs ...string) []Endpoint {
	out := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = Endpoint{Addr: a}
	}
	return out
}

func TestRoundRobinTakesEachInTurn(t *testing.T) {
	f := newFake(t, Options{Name: "u"}, eps("a", "b", "c")...)
	counts := map[string]int{}
	for range 300 {
		counts[f.call(t, false)]++
	}
	for _, a := range []string{"a", "b", "c"} {
		if counts[a] != 100 {
			t.Errorf("round robin: %v, want 100 each", counts)
		}
	}
}

func TestSmoothWeightedSpreadsByWeight(t *testing.T) {
	f := newFake(t, Options{Name: "u", Balancer: Weighted}, Endpoint{Addr: "a", Weight: 5}, Endpoint{Addr: "b", Weight: 1}, Endpoint{Addr: "c", Weight: 1})
	var seq []string
	for range 7 {
		seq = append(seq, f.call(t, false))
	}
	// nginx's own example: smooth, never five a in a row.
	if got := strings.Join(seq, ""); got != "aabacaa" {
		t.Errorf("sequence %s, want aabacaa", got)
	}
	counts := map[string]int{}
	for range 7000 {
		counts[f.call(t, false)]++
	}
	if counts["a"] != 5000 || counts["b"] != 1000 || counts["c"] != 1000 {
		t.Errorf("weighted 5:1:1 over 7000 picks: %v", counts)
	}
}

func TestLeastRequestAvoidsTheBusyEndpoint(t *testing.T) {
	f := newFake(t, Options{Name: "u", Balancer: LeastRequest}, eps("busy", "idle")...)
	f.holdCalls(t, map[string]int64{"busy": 1})
	for range 1000 {
		if got := f.call(t, false); got != "idle" {
			t.Fatalf("least request chose %s with a call in flight over none", got)
		}
	}
}

// holdCalls puts n calls in flight on each endpoint named in held, as many
// calls begun there and not yet ended would, until the test ends.
func (f *fakeCluster) holdCalls(t *testing.T, held map[string]int64) {
	t.Helper()
	f.cluster.mu.Lock()
	defer f.cluster.mu.Unlock()
	for _, e := range f.all {
		if n := held[e.addr]; n > 0 {
			e.inflight.Add(n)
			t.Cleanup(func() { e.inflight.Add(-n) })
		}
	}
}

// TestLeastRequestSplitsByWeight: at equal load (none, then two calls in
// flight on each) weights 1 and 3 split the calls 1:3, as Envoy's weighted
// least request does. The split is deterministic (smooth weighted
// round-robin over weight / (in flight + 1)); the bound is loose anyway.
func TestLeastRequestSplitsByWeight(t *testing.T) {
	for _, load := range []int64{0, 2} {
		f := newFake(t, Options{Name: "u", Balancer: LeastRequest}, Endpoint{Addr: "light", Weight: 1}, Endpoint{Addr: "heavy", Weight: 3})
		f.holdCalls(t, map[string]int64{"light": load, "heavy": load})
		const n = 4000
		counts := map[string]int{}
		for range n {
			counts[f.call(t, false)]++
		}
		if share := float64(counts["light"]) / n; share < 0.2 || share > 0.3 {
			t.Errorf("%d in flight on each, weights 1 and 3: %v, want about 1000 and 3000", load, counts)
		}
	}
}

// TestLeastRequestWeighsLoadAgainstWeight: the heavier endpoint with five
// calls in flight (3/6) counts for less than the idle lighter one (1/1),
// which then gets about two calls in three; neither is passed over.
func TestLeastRequestWeighsLoadAgainstWeight(t *testing.T) {
	f := newFake(t, Options{Name: "u", Balancer: LeastRequest}, Endpoint{Addr: "light", Weight: 1}, Endpoint{Addr: "heavy", Weight: 3})
	f.holdCalls(t, map[string]int64{"heavy": 5})
	const n = 3000
	counts := map[string]int{}
	for range n {
		counts[f.call(t, false)]++
	}
	if share := float64(counts["light"]) / n; share < 0.6 || share > 0.73 {
		t.Errorf("weights 1 and 3, five calls in flight on the heavier: %v, want about 2000 and 1000", counts)
	}
}

func TestOutlierEjectionGrowsAndEnds(t *testing.T) {
	f := newFake(t, Options{Name: "u", Outlier: &OutlierDetection{ConsecutiveFailures: 3, BaseEjectionTime: 50 * time.Millisecond, MaxEjectionTime: 10 * time.Second, MaxEjectionPercent: 50}},
		eps("a", "b")...)
	failA := func() {
		for n := 0; n < 3; {
			a, err := f.begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			failed := a.e.addr == "a"
			if failed {
				n++
			}
			a.end(codes.Unavailable, failed, false)
		}
	}
	failA()
	st := f.Status()
	if st.Endpoints[0].EjectedUntil == nil || st.Endpoints[0].Ejections != 1 || st.Usable != 1 {
		t.Fatalf("after 3 failures: %+v, want a ejected once", st)
	}
	first := time.Until(*st.Endpoints[0].EjectedUntil)
	for range 100 {
		if got := f.call(t, false); got != "b" {
			t.Fatalf("an ejected endpoint got a call")
		}
	}
	testwait.For(t, "a's return", func() bool { return f.Usable() == 2 })
	failA()
	st = f.Status()
	if st.Endpoints[0].Ejections != 2 || time.Until(*st.Endpoints[0].EjectedUntil) <= first {
		t.Errorf("second ejection: %+v, want a longer one (twice the base)", st.Endpoints[0])
	}
	// b may not be ejected too: 50% of two endpoints are out already.
	for range 10 {
		a, err := f.begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		a.end(codes.Unavailable, true, false)
	}
	if st := f.Status(); st.Endpoints[1].EjectedUntil != nil || f.ejectionsRefused.Load() == 0 {
		t.Errorf("b ejected beyond max_ejection_percent: %+v", st)
	}
}

func TestHealthChecksKeepUnhealthyEndpointsOut(t *testing.T) {
	f := newFake(t, Options{Name: "u", Health: &HealthCheck{Interval: time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2}}, eps("a", "b", "c")...)
	f.setHealthy("a", false)
	testwait.For(t, "a unhealthy", func() bool { return f.Usable() == 2 })
	for range 100 {
		if f.call(t, false) == "a" {
			t.Fatal("an unhealthy endpoint got a call")
		}
	}
	f.setHealthy("a", true)
	testwait.For(t, "a healthy again", func() bool { return f.Usable() == 3 })
}

func TestPanicThreshold(t *testing.T) {
	f := newFake(t, Options{Name: "u", Health: &HealthCheck{Interval: time.Millisecond, UnhealthyThreshold: 1}}, eps("a", "b")...)
	f.setHealthy("a", false)
	f.setHealthy("b", false)
	testwait.For(t, "all unhealthy", func() bool { return f.Usable() == 0 })
	// Below the default 50%, calls go to every endpoint (fail open).
	seen := map[string]bool{}
	for range 10 {
		seen[f.call(t, false)] = true
	}
	if !seen["a"] || !seen["b"] || !f.Status().Panic {
		t.Errorf("panic mode: calls went to %v, want both", seen)
	}

	zero := 0
	g := newFake(t, Options{Name: "u", PanicThreshold: &zero, Health: &HealthCheck{Interval: time.Millisecond, UnhealthyThreshold: 1}}, eps("a")...)
	g.setHealthy("a", false)
	testwait.For(t, "a unhealthy", func() bool { return g.Usable() == 0 })
	if _, err := g.begin(context.Background()); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no usable endpoint") {
		t.Errorf("panic_threshold 0, nothing usable: %v, want UNAVAILABLE", err)
	}
}

func TestSetEndpointsKeepsStateAndDrains(t *testing.T) {
	f := newFake(t, Options{Name: "u"}, eps("a", "b")...)
	var onB attempt
	for onB.e == nil {
		a, err := f.begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a.e.addr == "b" {
			onB = a
		} else {
			a.end(codes.OK, false, false)
		}
	}
	before := f.Status().Endpoints[0].Calls
	if err := f.SetEndpoints([]Endpoint{{Addr: "a", Weight: 2}, {Addr: "c"}}); err != nil {
		t.Fatal(err)
	}
	st := f.Status()
	if len(st.Endpoints) != 2 || st.Endpoints[0].Addr != "a" || st.Endpoints[0].Calls != before || st.Endpoints[0].Weight != 2 || f.closes("a") != 0 {
		t.Errorf("a kept: %+v (closed %d times)", st, f.closes("a"))
	}
	if f.closes("b") != 0 {
		t.Error("b closed while a call was in flight on it")
	}
	for range 10 {
		if f.call(t, false) == "b" {
			t.Fatal("a removed endpoint got a call")
		}
	}
	onB.end(codes.OK, false, false)
	if f.closes("b") != 1 {
		t.Errorf("b closed %d times after its last call, want 1", f.closes("b"))
	}
}

func TestRetryGoesElsewhere(t *testing.T) {
	f := newFake(t, Options{Name: "u"}, eps("a", "b", "c")...)
	for range 50 {
		tried := &router.Tried{}
		ctx := router.WithTried(context.Background(), tried)
		for range 3 {
			a, err := f.begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			a.end(codes.Unavailable, false, false)
		}
		if tried.Endpoints[0] == tried.Endpoints[1] || tried.Endpoints[1] == tried.Endpoints[2] || tried.Endpoints[0] == tried.Endpoints[2] {
			t.Fatalf("attempts went to %v, want three endpoints", tried.Endpoints)
		}
	}
}

func TestBreakerOpensRefusesAndCloses(t *testing.T) {
	f := newFake(t, Options{Name: "u", Breaker: &BreakerConfig{FailureRatio: 0.5, MinRequests: 10, Window: time.Minute, OpenDuration: 50 * time.Millisecond, HalfOpenRequests: 2}}, eps("a")...)
	for range 9 {
		f.call(t, true)
	}
	if f.Status().Breaker != "closed" {
		t.Fatal("opened before min_requests")
	}
	f.call(t, true)
	if f.Status().Breaker != "open" {
		t.Fatalf("breaker %s after 10 failures of 10, want open", f.Status().Breaker)
	}
	calls := f.Status().Endpoints[0].Calls
	_, err := f.begin(context.Background())
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "circuit breaker open") {
		t.Fatalf("open breaker: %v", err)
	}
	if f.Status().Endpoints[0].Calls != calls || f.breaker.rejections.Load() != 1 {
		t.Error("a refused call reached the endpoint, or was not counted")
	}
	var refusal interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &refusal) {
		t.Error("the refusal carries no gRPC status")
	}
	// Half-open: a failed probe opens it again.
	testwait.For(t, "half-open", func() bool { return f.Status().Breaker == "half-open" })
	f.call(t, true)
	if f.Status().Breaker != "open" {
		t.Fatalf("breaker %s after a failed probe, want open", f.Status().Breaker)
	}
	testwait.For(t, "half-open", func() bool { return f.Status().Breaker == "half-open" })
	f.call(t, false)
	f.call(t, false)
	if f.Status().Breaker != "closed" {
		t.Fatalf("breaker %s after two good probes, want closed", f.Status().Breaker)
	}
}

func TestBreakerIgnoresCancelledCalls(t *testing.T) {
	f := newFake(t, Options{Name: "u", Breaker: &BreakerConfig{MinRequests: 2}}, eps("a")...)
	for range 10 {
		a, err := f.begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		a.end(codes.Canceled, false, true)
	}
	if f.Status().Breaker != "closed" {
		t.Error("calls the caller cancelled opened the breaker")
	}
}

func TestOptionsChecked(t *testing.T) {
	bad := -1
	for _, o := range []Options{
		{Balancer: "random"},
		{PanicThreshold: &bad},
		{Outlier: &OutlierDetection{MaxEjectionPercent: 101}},
		{Breaker: &BreakerConfig{FailureRatio: 2}},
		{Health: &HealthCheck{Interval: -time.Second}},
	} {
		if _, err := newCluster("x", o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
