package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// upstreamState is /admin/upstreams' answer, the parts the tests read.
type upstreamState struct {
	Name      string `json:"name"`
	Balancer  string `json:"balancer"`
	Breaker   string `json:"breaker"`
	Usable    int    `json:"usable"`
	Endpoints []struct {
		Addr         string     `json:"addr"`
		Healthy      bool       `json:"healthy"`
		EjectedUntil *time.Time `json:"ejected_until"`
		Calls        uint64     `json:"calls"`
		Failures     uint64     `json:"failures"`
	} `json:"endpoints"`
}

// upstreams reads /admin/upstreams.
func upstreams(t testing.TB, admin string) map[string]upstreamState {
	t.Helper()
	code, body := adminGet(t, admin, "/admin/upstreams")
	if code != http.StatusOK {
		t.Fatalf("/admin/upstreams: %d %s", code, body)
	}
	var list []upstreamState
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("/admin/upstreams: %v: %s", err, body)
	}
	out := map[string]upstreamState{}
	for _, u := range list {
		out[u.Name] = u
	}
	return out
}

// endpointState finds one endpoint of an upstream in /admin/upstreams.
func endpointState(t testing.TB, admin, up, addr string) (healthy, ejected bool, calls uint64) {
	t.Helper()
	for _, e := range upstreams(t, admin)[up].Endpoints {
		if e.Addr == addr {
			return e.Healthy, e.EjectedUntil != nil, e.Calls
		}
	}
	t.Fatalf("/admin/upstreams has no endpoint %s in %s", addr, up)
	return
}

// TestReplicaKilledUnderLoad kills one of two library-server replicas while
// calls flow: the calls (GETs, safe to retry) do not fail, as retries go to
// the other replica within the budget; outlier detection ejects the dead
// one, its health check marks it unhealthy, and once it is restarted the
// health check brings it back and it takes calls again.
func TestReplicaKilledUnderLoad(t *testing.T) {
	t.Parallel()
	_, a := startLibraryAt(t, "127.0.0.1:0")
	bProc, b := startLibraryAt(t, "127.0.0.1:0")
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), fmt.Sprintf(`schemas:
%supstreams:
  library:
    grpc: {targets: [%q, %q]}
    timeout: 5s
    retry: {attempts: 3, backoff: 1ms}
    health_check: {interval: 200ms, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1}
    outlier_detection: {consecutive_failures: 2, base_ejection_time: 1m, max_ejection_percent: 50}
services:
  - name: example.library.v1.LibraryService
    upstream: library
`, descriptorSetSchema(), a, b))

	// Steady load: three callers, each one call at a time.
	var ok, failed atomic.Int64
	var failures sync.Map
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(gw.base + "/v1/shelves/1")
				if err != nil {
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					failures.Store(resp.Status, true)
				}
			}
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	waitFor(t, "calls on both replicas", func() bool {
		_, _, ca := endpointState(t, admin, "library", a)
		_, _, cb := endpointState(t, admin, "library", b)
		return ca > 20 && cb > 20
	})

	bProc.cmd.Process.Kill()
	<-bProc.done
	waitFor(t, "the dead replica ejected", func() bool {
		_, ejected, _ := endpointState(t, admin, "library", b)
		return ejected
	})
	_, metrics := adminGet(t, admin, "/metrics")
	if want := fmt.Sprintf(`rosetta_upstream_endpoint_ejected{endpoint=%q,upstream="library"} 1`, b); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
	waitFor(t, "the dead replica unhealthy", func() bool {
		healthy, _, _ := endpointState(t, admin, "library", b)
		return !healthy
	})
	if code, body := adminGet(t, admin, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with one replica of two up: %d %s, want 200", code, body)
	}
	okBefore := ok.Load()
	waitFor(t, "calls served by the live replica", func() bool { return ok.Load() > okBefore+50 })

	startLibraryAt(t, b)
	waitFor(t, "the restarted replica healthy and back", func() bool {
		healthy, ejected, _ := endpointState(t, admin, "library", b)
		return healthy && !ejected
	})
	_, _, callsB := endpointState(t, admin, "library", b)
	waitFor(t, "calls on the restarted replica", func() bool {
		_, _, c := endpointState(t, admin, "library", b)
		return c > callsB+10
	})
	stop()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		var seen []string
		failures.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
		t.Errorf("%d of %d calls failed (%v); with three callers the retry budget's floor of 3 allows every retry", n, n+ok.Load(), seen)
	}
}

// faultyUpstream is an in-process LibraryService that counts its calls,
// fails them with UNAVAILABLE while failing is set, and holds them while
// hold is set (until release is closed).
type faultyUpstream struct {
	addr    string
	calls   atomic.Int64
	failing atomic.Bool
	hold    bool
	release chan struct{}
	// remaining is the time left before the last call's deadline, -1
	// for a call without one.
	remaining atomic.Int64
}

func startFaultyUpstream(t *testing.T, hold bool) *faultyUpstream {
	t.Helper()
	u := &faultyUpstream{hold: hold, release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		u.calls.Add(1)
		u.remaining.Store(-1)
		if dl, ok := ctx.Deadline(); ok {
			u.remaining.Store(int64(time.Until(dl)))
		}
		if u.hold {
			select {
			case <-u.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if u.failing.Load() {
			return nil, status.Error(codes.Unavailable, "failing on purpose")
		}
		return handler(ctx, req)
	}))
	library.Register(srv)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return u
}

// TestCircuitBreaker: on a failing upstream the breaker opens; while open it
// answers UNAVAILABLE at once without a call reaching the upstream; once
// the upstream recovers, a half-open probe succeeds and it closes.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	up := startFaultyUpstream(t, false)
	up.failing.Store(true)
	admin := freePort(t)
	cfg := edit(t, libraryConfig(descriptorSetSchema(), up.addr, "", ""), "timeout: 5s}",
		"timeout: 5s, circuit_breaker: {failure_ratio: 0.5, min_requests: 4, window: 1m, open_duration: 300ms, half_open_requests: 1}}")
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), cfg)
	refused := func(r *response) bool {
		return r.status == http.StatusServiceUnavailable && strings.Contains(string(r.body), "circuit breaker")
	}
	waitFor(t, "the breaker to open", func() bool { return refused(get(t, gw.base, "/v1/shelves/1")) })

	refusals := 0
	for range 20 {
		before := up.calls.Load()
		r := get(t, gw.base, "/v1/shelves/1")
		if refused(r) {
			refusals++
			wantStatus(t, r, http.StatusServiceUnavailable, codeUnavailable, "")
			if after := up.calls.Load(); after != before {
				t.Fatalf("a call the open breaker refused reached the upstream (%d calls, then %d)", before, after)
			}
		}
	}
	_, metrics := adminGet(t, admin, "/metrics")
	if !strings.Contains(metrics, `rosetta_upstream_breaker_rejections_total{upstream="library"}`) {
		t.Error("metrics lack rosetta_upstream_breaker_rejections_total")
	}
	t.Logf("%d of 20 calls refused while open", refusals)

	up.failing.Store(false)
	waitFor(t, "the breaker to close after recovery", func() bool {
		return get(t, gw.base, "/v1/shelves/1").status == http.StatusOK && upstreams(t, admin)["library"].Breaker == "closed"
	})
}

// TestLeastRequestPrefersIdleEndpoint: one endpoint holds every call it
// gets; with least_request, once it has one in flight the calls go to the
// other (round robin would send it half).
func TestLeastRequestPrefersIdleEndpoint(t *testing.T) {
	t.Parallel()
	slow, fast := startFaultyUpstream(t, true), startFaultyUpstream(t, false)
	cfg := fmt.Sprintf(`schemas:
%supstreams:
  library: {grpc: {targets: [%q, %q]}, timeout: 30s, balancer: least_request}
services:
  - name: example.library.v1.LibraryService
    upstream: library
`, descriptorSetSchema(), slow.addr, fast.addr)
	gw := startRosetta(t, cfg)
	var wg sync.WaitGroup
	const calls = 30
	for i := range calls {
		wg.Add(1)
		done := make(chan struct{})
		fastBefore := fast.calls.Load()
		go func() {
			defer wg.Done()
			defer close(done)
			get(t, gw.base, "/v1/shelves/1")
		}()
		// One call at a time reaches an upstream; one the fast endpoint
		// took is over before the next starts, so the fast endpoint has
		// none in flight and only the held calls make a difference.
		waitFor(t, "the call to reach an upstream", func() bool { return slow.calls.Load()+fast.calls.Load() == int64(i+1) })
		if fast.calls.Load() > fastBefore {
			<-done
		}
	}
	close(slow.release)
	wg.Wait()
	if n := slow.calls.Load(); n > 1 {
		t.Errorf("the endpoint holding its calls got %d of %d, want at most 1 (the first, on a tie)", n, calls)
	}
}

// TestWeightedSplit: targets weighted 1 and 3 get a quarter and three
// quarters of the calls, counted by the upstreams themselves.
func TestWeightedSplit(t *testing.T) {
	t.Parallel()
	light, heavy := startFaultyUpstream(t, false), startFaultyUpstream(t, false)
	admin := freePort(t)
	cfg := fmt.Sprintf(`schemas:
%supstreams:
  library:
    grpc: {targets: [{addr: %q, weight: 1}, {addr: %q, weight: 3}]}
    balancer: weighted
services:
  - name: example.library.v1.LibraryService
    upstream: library
`, descriptorSetSchema(), light.addr, heavy.addr)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), cfg)
	const calls = 400
	for range calls {
		if r := get(t, gw.base, "/v1/shelves/1"); r.status != http.StatusOK {
			t.Fatalf("GET: %d %s", r.status, r.body)
		}
	}
	l, h := light.calls.Load(), heavy.calls.Load()
	if l < 92 || l > 108 || l+h != calls {
		t.Errorf("weights 1:3 over %d calls: %d and %d, want 100 and 300 (±2%%)", calls, l, h)
	}
	if u := upstreams(t, admin)["library"]; u.Balancer != "weighted" || len(u.Endpoints) != 2 {
		t.Errorf("/admin/upstreams: %+v", u)
	}
	code, out, _ := runRosetta(t, "routes", "-config", gw.config)
	if code != 0 || !strings.Contains(out, "weighted") {
		t.Errorf("rosetta routes (exit %d) does not show the balancer:\n%s", code, out)
	}
}

// TestReadyzNamesDownUpstream: an upstream whose only endpoint fails its
// health checks makes /readyz answer 503 naming it.
func TestReadyzNamesDownUpstream(t *testing.T) {
	t.Parallel()
	dead := freePort(t)
	admin := freePort(t)
	cfg := edit(t, libraryConfig(descriptorSetSchema(), dead, "", ""), "timeout: 5s}",
		"timeout: 5s, health_check: {interval: 100ms, unhealthy_threshold: 1}}")
	startRosettaListen(t, fmt.Sprintf("admin: %q", admin), cfg)
	waitFor(t, "/readyz to report the upstream down", func() bool {
		code, body := adminGet(t, admin, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "library")
	})
}

// TestCallerDeadline: the caller's deadline (grpc-timeout over gRPC,
// Grpc-Timeout over REST, Connect-Timeout-Ms over Connect) reaches the
// upstream when it is shorter than the gateway's own timeout, and the
// gateway's shortens a longer one: never lengthened.
func TestCallerDeadline(t *testing.T) {
	t.Parallel()
	up := startFaultyUpstream(t, false)
	gw := startRosetta(t, edit(t, libraryConfig(descriptorSetSchema(), up.addr, "", ""), "timeout: 5s}", "timeout: 2s}"))
	const short, gateway = 500 * time.Millisecond, 2 * time.Second

	conn := gw.grpcConn(t)
	client := libraryv1.NewLibraryServiceClient(conn)
	viaGRPC := func(d time.Duration) func() error {
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			_, err := client.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"})
			return err
		}
	}
	viaHTTP := func(req request) func() error {
		return func() error {
			if r := do(t, gw.base, req); r.status != http.StatusOK {
				return fmt.Errorf("%d %s", r.status, r.body)
			}
			return nil
		}
	}
	rest := func(timeout string) func() error {
		return viaHTTP(request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Grpc-Timeout": timeout}})
	}
	connect := func(ms string) func() error {
		return viaHTTP(request{method: "POST", path: "/example.library.v1.LibraryService/GetShelf", body: `{"name":"shelves/1"}`,
			header: map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1", "Connect-Timeout-Ms": ms}})
	}
	for _, tc := range []struct {
		name string
		call func() error
		max  time.Duration
	}{
		{"gRPC shorter", viaGRPC(short), short},
		{"gRPC longer", viaGRPC(time.Minute), gateway},
		{"REST shorter", rest("500m"), short},
		{"REST longer", rest("60S"), gateway},
		{"REST none", rest(""), gateway},
		{"Connect shorter", connect("500"), short},
		{"Connect longer", connect("60000"), gateway},
	} {
		if err := tc.call(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := time.Duration(up.remaining.Load()); got <= 0 || got > tc.max {
			t.Errorf("%s: the upstream's deadline was %v away, want within %v", tc.name, got, tc.max)
		}
	}
}

// TestReloadKeepsInFlightCalls: a reload that changes an upstream's endpoint
// settings builds a new client; a call in flight on the old one finishes
// normally (the old generation holds its client until its last call, and a
// closed client's endpoints close only once their calls end), and the next
// calls go through the new one.
func TestReloadKeepsInFlightCalls(t *testing.T) {
	t.Parallel()
	up := startFaultyUpstream(t, true)
	admin := freePort(t)
	cfg := libraryConfig(descriptorSetSchema(), up.addr, "", "reload: {watch: false}\n")
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), cfg)
	held := make(chan *response, 1)
	go func() { held <- get(t, gw.base, "/v1/shelves/1") }()
	waitFor(t, "the call to reach the upstream", func() bool { return up.calls.Load() == 1 })

	changed := edit(t, cfg, "timeout: 5s}", "timeout: 5s, balancer: least_request, outlier_detection: {consecutive_failures: 3}}")
	if err := os.WriteFile(gw.config, []byte(fmt.Sprintf("listen: {http: %q, admin: %q}\n%s", strings.TrimPrefix(gw.base, "http://"), admin, changed)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, admin); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if b := upstreams(t, admin)["library"].Balancer; b != "least_request" {
		t.Fatalf("after the reload the upstream balances %s, want least_request", b)
	}
	close(up.release)
	if r := <-held; r.status != http.StatusOK {
		t.Errorf("the call in flight across the reload: %d %s, want 200", r.status, r.body)
	}
	if r := get(t, gw.base, "/v1/shelves/1"); r.status != http.StatusOK {
		t.Errorf("a call after the reload: %d %s", r.status, r.body)
	}
}
