package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/ratelimit"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

// scrape returns the /metrics text of m.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	resp, body := get(t, New(Options{Metrics: m, Ready: func() bool { return true }}), "GET", "/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	return body
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

func TestAdminMiddlewareCountsByProtocolRouteAndCode(t *testing.T) {
	m := NewMetrics()
	var outcome func(c *router.Call) error
	h := router.Chain(router.HandlerFunc(func(_ context.Context, c *router.Call) error { return outcome(c) }),
		middleware(m, "GET /v1/books/{id}"))
	call := func(p router.Protocol, f func(c *router.Call) error) {
		outcome = f
		h.Handle(context.Background(), &router.Call{Protocol: p})
	}
	ok := func(c *router.Call) error { c.Reply = &router.Reply{}; return nil }
	call(router.HTTP, ok)
	call(router.HTTP, ok)
	call(router.HTTP, func(*router.Call) error { return status.Error(codes.NotFound, "no such book") })
	call(router.GRPC, func(*router.Call) error { return status.Error(codes.ResourceExhausted, "slow down") })
	call(router.MQTT, func(c *router.Call) error { c.Reply = &router.Reply{HTTPStatus: 503}; return nil })
	call(router.HTTP, func(c *router.Call) error { c.Reply = &router.Reply{HTTPStatus: 418}; return nil })
	call(router.HTTP, func(*router.Call) error { return status.Error(codes.Code(77), "odd upstream") })
	call(router.Protocol("carrier-pigeon"), ok)

	wantLines(t, scrape(t, m),
		`rosetta_calls_total{code="OK",protocol="http",route="GET /v1/books/{id}"} 2`,
		`rosetta_calls_total{code="NotFound",protocol="http",route="GET /v1/books/{id}"} 1`,
		`rosetta_calls_total{code="ResourceExhausted",protocol="grpc",route="GET /v1/books/{id}"} 1`,
		`rosetta_calls_total{code="Unavailable",protocol="mqtt",route="GET /v1/books/{id}"} 1`,
		`rosetta_calls_total{code="FailedPrecondition",protocol="http",route="GET /v1/books/{id}"} 1`,
		`rosetta_calls_total{code="Unknown",protocol="http",route="GET /v1/books/{id}"} 1`,
		`rosetta_calls_total{code="OK",protocol="carrier-pigeon",route="GET /v1/books/{id}"} 1`,
		`rosetta_call_duration_seconds_count{protocol="http",route="GET /v1/books/{id}"} 5`,
		`rosetta_call_duration_seconds_count{protocol="grpc",route="GET /v1/books/{id}"} 1`,
	)
}

func TestAdminMiddlewarePassesTheOutcomeOn(t *testing.T) {
	m := NewMetrics()
	want := status.Error(codes.PermissionDenied, "no")
	h := middleware(m, "r")(router.HandlerFunc(func(context.Context, *router.Call) error { return want }))
	if err := h.Handle(context.Background(), &router.Call{Protocol: router.HTTP}); err != want {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestAdminLimiterCollectorWithARealLimiter(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{LimitConfig: ratelimit.LimitConfig{Rate: "1/h", Burst: 1}, Key: "global"}, ratelimit.Options{Name: "tight"})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	m.SetCollectors([]prometheus.Collector{l.Collector()})
	h := l.Wrap(router.Dispatch)
	route := &router.Route{Handler: router.Dispatch, Invoker: nopInvoker{}}
	for range 3 {
		h.Handle(context.Background(), &router.Call{Route: route, Protocol: router.HTTP, Decode: func() ([]byte, error) { return nil, nil }})
	}
	wantLines(t, scrape(t, m),
		`rosetta_ratelimit_decisions_total{decision="allowed",policy="tight"} 1`,
		`rosetta_ratelimit_decisions_total{decision="refused",policy="tight"} 2`,
	)
}

type nopInvoker struct{}

func (nopInvoker) Invoke(context.Context, string, []byte, metadata.MD) (*router.Reply, error) {
	return &router.Reply{}, nil
}

func TestAdminCollectorsAreReplaced(t *testing.T) {
	m := NewMetrics()
	var n atomic.Uint64
	m.SetCollectors([]prometheus.Collector{prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "old_total", Help: "x"}, func() float64 { return float64(n.Load()) })})
	n.Store(4)
	wantLines(t, scrape(t, m), `old_total 4`)
	m.SetCollectors([]prometheus.Collector{prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "new_total", Help: "x"}, func() float64 { return 1 })})
	out := scrape(t, m)
	wantLines(t, out, `new_total 1`)
	if strings.Contains(out, "old_total") {
		t.Errorf("the replaced collector is still scraped:\n%s", out)
	}
}

func TestAdminEndpoints(t *testing.T) {
	var ready atomic.Bool
	type row struct{ Method, Template string }
	h := New(Options{Metrics: NewMetrics(), Ready: ready.Load, Routes: func() any { return []row{{"GET", "/v1/books"}} }})

	if resp, body := get(t, h, "GET", "/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, h, "GET", "/readyz"); resp.StatusCode != 503 {
		t.Errorf("/readyz before ready = %d, want 503", resp.StatusCode)
	}
	ready.Store(true)
	if resp, _ := get(t, h, "GET", "/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz when ready = %d, want 200", resp.StatusCode)
	}
	resp, body := get(t, h, "GET", "/routes")
	var rows []row
	if err := json.Unmarshal([]byte(body), &rows); err != nil || resp.Header.Get("Content-Type") != "application/json" || len(rows) != 1 || rows[0].Template != "/v1/books" {
		t.Errorf("/routes = %q (%v), rows %v", body, err, rows)
	}
	if _, body := get(t, h, "GET", "/metrics"); !strings.Contains(body, "\ngo_goroutines ") || !strings.Contains(body, "\nprocess_cpu_seconds_total ") {
		t.Errorf("/metrics lacks the runtime and process collectors:\n%s", body)
	}

	resp, body = get(t, h, "GET", "/nope")
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":5`) {
		t.Errorf("/nope = %d %s, want 404 with a NOT_FOUND status", resp.StatusCode, body)
	}
	resp, body = get(t, h, "POST", "/healthz")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(body, `"code":12`) {
		t.Errorf("POST /healthz = %d %v %s, want 405 with Allow", resp.StatusCode, resp.Header, body)
	}
}

// BenchmarkAdminMiddleware is the cost the call counter adds to a call.
func BenchmarkAdminMiddleware(b *testing.B) {
	m := NewMetrics()
	h := middleware(m, "GET /v1/{parent=shelves/*}/books")(router.HandlerFunc(func(context.Context, *router.Call) error { return nil }))
	c := &router.Call{Protocol: router.HTTP}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.Handle(ctx, c)
	}
}

func TestAdminMiddlewareConcurrentCalls(t *testing.T) {
	m := NewMetrics()
	h := middleware(m, "r")(router.HandlerFunc(func(context.Context, *router.Call) error { return nil }))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				h.Handle(context.Background(), &router.Call{Protocol: router.WebSocket})
			}
		})
	}
	wg.Wait()
	wantLines(t, scrape(t, m), `rosetta_calls_total{code="OK",protocol="websocket",route="r"} 800`)
}

// TestPurge: POST /admin/cache/purge passes the prefix on and answers the
// count; a failure keeps its gRPC code; other methods are 405.
func TestPurge(t *testing.T) {
	var got string
	purgeErr := error(nil)
	h := New(Options{Metrics: NewMetrics(), Ready: func() bool { return true }, Purge: func(_ context.Context, prefix string) (int, error) {
		got = prefix
		return 3, purgeErr
	}})
	resp, body := get(t, h, "POST", "/admin/cache/purge?prefix=pkg.S/")
	if resp.StatusCode != 200 || body != `{"purged":3}` || got != "pkg.S/" {
		t.Errorf("purge: %d %s, prefix %q", resp.StatusCode, body, got)
	}
	purgeErr = status.Error(codes.FailedPrecondition, "no response cache is configured")
	if resp, body := get(t, h, "POST", "/admin/cache/purge"); resp.StatusCode != 400 || !strings.Contains(body, `"code":9`) || got != "" {
		t.Errorf("purge without a cache: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, h, "GET", "/admin/cache/purge"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET purge: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// middleware counts the calls of a chain as the gateway's first step does.
func middleware(m *Metrics, route string) router.Middleware {
	rm := m.Route(route)
	return func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			start := time.Now()
			err := next.Handle(ctx, c)
			rm.Observe(c.Protocol, CodeOf(c, err), time.Since(start))
			return err
		})
	}
}
