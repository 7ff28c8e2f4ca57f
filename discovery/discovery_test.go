package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rosettagw/rosetta/internal/testwait"
)

// watchTimeout bounds the wait for one expected set.
const watchTimeout = 30 * time.Second

// watcher runs Run on a source and records every set it hands over.
type watcher struct {
	sets    chan []Endpoint
	metrics *Metrics
}

func watch(t *testing.T, src Source, opts Options) *watcher {
	t.Helper()
	w := &watcher{sets: make(chan []Endpoint, 64), metrics: NewMetrics()}
	opts.Upstream, opts.Metrics = "lib", w.metrics
	opts.Backoff = 50 * time.Millisecond
	opts.MaxBackoff = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, src, opts, func(eps []Endpoint) { w.sets <- eps })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// next waits for the next set.
func (w *watcher) next(t *testing.T) []Endpoint {
	t.Helper()
	select {
	case eps := <-w.sets:
		return eps
	case <-time.After(watchTimeout):
		t.Fatalf("no new set of endpoints within %v", watchTimeout)
		return nil
	}
}

// want waits for the next set and compares it ("addr/weight" items, in
// address order).
func (w *watcher) want(t *testing.T, want ...string) {
	t.Helper()
	if got := show(w.next(t)); !slices.Equal(got, want) {
		t.Fatalf("set %v, want %v", got, want)
	}
}

func show(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%s/%d", e.Addr, e.Weight))
	}
	return out
}

// errors counts the watch's errors of a reason.
func (w *watcher) errors(kind, reason string) float64 {
	return testutil.ToFloat64(w.metrics.errors.WithLabelValues("lib", kind, reason))
}

// waitErrors waits until the watch has counted an error of a reason.
func (w *watcher) waitErrors(t *testing.T, kind, reason string) {
	t.Helper()
	testwait.For(t, reason+" error", func() bool { return w.errors(kind, reason) > 0 })
}

// quiet asserts that no new set arrived.
func (w *watcher) quiet(t *testing.T) {
	t.Helper()
	select {
	case eps := <-w.sets:
		t.Fatalf("unexpected set %v", show(eps))
	default:
	}
}

// flaky fails its first Watch, then hands over its list.
type flaky struct {
	calls int
	list  []Endpoint
}

func (*flaky) Kind() string { return "flaky" }

func (f *flaky) Watch(ctx context.Context, update func([]Endpoint)) error {
	f.calls++
	if f.calls == 1 {
		return errors.New("down")
	}
	update(f.list)
	update(f.list) // the same set again is not handed over twice
	update(nil)    // an empty answer keeps the set
	<-ctx.Done()
	return nil
}

// TestRunBoundsAndRetries: Run retries a failed source, bounds a set to
// MaxEndpoints (counting the cut), sorts and deduplicates it, and never
// hands over an empty set or the same set twice.
func TestRunBoundsAndRetries(t *testing.T) {
	src := &flaky{list: []Endpoint{{Addr: "c:1"}, {Addr: "a:1", Weight: 3}, {Addr: "b:1"}, {Addr: "a:1"}}}
	w := watch(t, src, Options{MaxEndpoints: 2})
	w.want(t, "a:1/3", "b:1/1")
	w.waitErrors(t, "flaky", "empty")
	w.quiet(t)
	if w.errors("flaky", "lookup") != 1 || w.errors("flaky", "truncated") != 1 {
		t.Errorf("errors: lookup %v, truncated %v; want 1 and 1", w.errors("flaky", "lookup"), w.errors("flaky", "truncated"))
	}
	if n := testutil.ToFloat64(w.metrics.endpoints.WithLabelValues("lib")); n != 2 {
		t.Errorf("rosetta_discovery_endpoints %v, want 2", n)
	}
}

// TestStatic hands over its list once.
func TestStatic(t *testing.T) {
	w := watch(t, Static{{Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:1", Weight: 2}}, Options{})
	w.want(t, "127.0.0.1:1/2", "127.0.0.1:2/1")
	w.quiet(t)
}
