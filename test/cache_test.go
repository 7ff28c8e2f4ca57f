package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/security/ratelimit/redistest"
)

// countingUpstream is the example LibraryService served in the test
// process, counting the calls of each method (what the cache must spare),
// answering with the cache-control a test sets, echoing the caller the
// gateway names in x-user-id, and optionally holding every call until the
// test opens a gate.
type countingUpstream struct {
	addr string

	mu           sync.Mutex
	calls        map[string]int
	cacheControl string
	gate         chan struct{} // nil: calls go through
}

const getShelfMethod = "/example.library.v1.LibraryService/GetShelf"

func startCountingUpstream(t testing.TB) *countingUpstream {
	t.Helper()
	u := &countingUpstream{calls: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		u.mu.Lock()
		u.calls[info.FullMethod]++
		cc, gate := u.cacheControl, u.gate
		u.mu.Unlock()
		md, _ := metadata.FromIncomingContext(ctx)
		header := metadata.Pairs("x-served-for", strings.Join(md.Get("x-user-id"), ","))
		if cc != "" {
			header.Set("cache-control", cc)
		}
		_ = grpc.SetHeader(ctx, header)
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return handler(ctx, req)
	}))
	library.Register(srv)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return u
}

// count is the number of calls of method the upstream has received.
func (u *countingUpstream) count(method string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[method]
}

func (u *countingUpstream) setCacheControl(v string) {
	u.mu.Lock()
	u.cacheControl = v
	u.mu.Unlock()
}

// cacheGet is a REST GET of path with headers h (key, value, ...); it
// fails the test unless the answer is 200, and returns it.
func cacheGet(t testing.TB, gw *rosetta, path string, h ...string) *response {
	t.Helper()
	hdr := map[string]string{}
	for i := 0; i+1 < len(h); i += 2 {
		hdr[h[i]] = h[i+1]
	}
	r := do(t, gw.base, request{method: http.MethodGet, path: path, header: hdr})
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	return r
}

// wantCache asserts X-Cache and the start of Cache-Status, and that the
// upstream has received calls calls of GetShelf by now.
func wantCache(t testing.TB, r *response, xcache, cacheStatus string, up *countingUpstream, calls int) {
	t.Helper()
	if got := r.header.Get("X-Cache"); got != xcache {
		t.Errorf("X-Cache %q, want %q", got, xcache)
	}
	if got := r.header.Get("Cache-Status"); !strings.HasPrefix(got, cacheStatus) {
		t.Errorf("Cache-Status %q, want it to start with %q", got, cacheStatus)
	}
	if n := up.count(getShelfMethod); n != calls {
		t.Errorf("the upstream received %d GetShelf calls, want %d", n, calls)
	}
}

// metricValue reads one sample of the admin listener's /metrics (0 when
// absent).
func metricValue(t testing.TB, admin, series string) float64 {
	t.Helper()
	_, body := adminGet(t, admin, "/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func adminPost(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := client.Post("http://"+addr+path, "", nil)
	if err != nil {
		t.Fatalf("admin POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("admin POST %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// TestCacheREST covers the cache as a REST client sees it: a miss then
// hits, Vary, the client's and the upstream's Cache-Control, the TTL capped
// by the upstream's max-age, the purge call, the metrics and `rosetta
// routes`.
func TestCacheREST(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), up.addr, "", `cache: {ttl: 1h, vary: [Accept-Language], max_entry_bytes: 1KiB}
`))
	const shelf = "/v1/shelves/1"
	first := cacheGet(t, gw, shelf)
	wantCache(t, first, "MISS", "rosetta; fwd=miss; stored", up, 1)
	second := cacheGet(t, gw, shelf)
	wantCache(t, second, "HIT", "rosetta; hit; ttl=", up, 1)
	if string(second.body) != string(first.body) {
		t.Errorf("the hit answered %s, the miss %s", second.body, first.body)
	}
	if got := second.header.Get("Grpc-Metadata-X-Served-For"); got != first.header.Get("Grpc-Metadata-X-Served-For") {
		t.Errorf("the hit lost the upstream's response metadata: %q", got)
	}
	calls := 1 // GetShelf calls the upstream has received

	t.Run("Vary", func(t *testing.T) {
		wantCache(t, cacheGet(t, gw, shelf, "Accept-Language", "fr"), "MISS", "rosetta; fwd=miss", up, calls+1)
		wantCache(t, cacheGet(t, gw, shelf, "Accept-Language", "fr"), "HIT", "rosetta; hit", up, calls+1)
		wantCache(t, cacheGet(t, gw, shelf), "HIT", "rosetta; hit", up, calls+1)
		calls++
	})
	t.Run("client no-store", func(t *testing.T) {
		wantCache(t, cacheGet(t, gw, "/v1/shelves/2", "Cache-Control", "no-store"), "MISS", "rosetta; fwd=request", up, calls+1)
		// Nothing was stored: the next plain call misses too.
		wantCache(t, cacheGet(t, gw, "/v1/shelves/2"), "MISS", "rosetta; fwd=miss; stored", up, calls+2)
		calls += 2
	})
	t.Run("client no-cache", func(t *testing.T) {
		// Revalidates: goes upstream although an entry exists, and stores
		// the fresh answer.
		wantCache(t, cacheGet(t, gw, shelf, "Cache-Control", "no-cache"), "MISS", "rosetta; fwd=request; stored", up, calls+1)
		wantCache(t, cacheGet(t, gw, shelf), "HIT", "rosetta; hit", up, calls+1)
		calls++
	})
	t.Run("upstream no-store and private", func(t *testing.T) {
		for _, cc := range []string{"no-store", "private, max-age=60"} {
			up.setCacheControl(cc)
			// Accept-Language makes an entry of each round.
			wantCache(t, cacheGet(t, gw, "/v1/shelves/2", "Accept-Language", cc), "MISS", "rosetta; fwd=miss", up, calls+1)
			wantCache(t, cacheGet(t, gw, "/v1/shelves/2", "Accept-Language", cc), "MISS", "rosetta; fwd=miss", up, calls+2)
			calls += 2
		}
		up.setCacheControl("")
	})
	t.Run("errors are not stored", func(t *testing.T) {
		for range 2 {
			wantStatus(t, get(t, gw.base, "/v1/shelves/404"), 404, codeNotFound, "")
		}
		if n := up.count(getShelfMethod); n != calls+2 {
			t.Errorf("the upstream received %d GetShelf calls, want %d: an error was served from the cache", n, calls+2)
		}
		calls += 2
	})
	t.Run("TTL capped by the upstream's max-age", func(t *testing.T) {
		up.setCacheControl("max-age=1")
		wantCache(t, cacheGet(t, gw, shelf, "Accept-Language", "ttl"), "MISS", "rosetta; fwd=miss; stored", up, calls+1)
		up.setCacheControl("")
		calls++
		// The entry expires after a second: wait for the miss, whatever
		// the machine's speed, and count the hits before it.
		waitFor(t, "the entry to expire", func() bool {
			return cacheGet(t, gw, shelf, "Accept-Language", "ttl").header.Get("X-Cache") == "MISS"
		})
		calls++
		if n := up.count(getShelfMethod); n != calls {
			t.Errorf("the upstream received %d GetShelf calls, want %d", n, calls)
		}
	})
	t.Run("client max-age", func(t *testing.T) {
		// The entry is older than 0s: max-age=0 never takes it.
		wantCache(t, cacheGet(t, gw, shelf, "Cache-Control", "max-age=0"), "MISS", "rosetta; fwd=request", up, calls+1)
		wantCache(t, cacheGet(t, gw, shelf, "Cache-Control", "max-age=3600"), "HIT", "rosetta; hit", up, calls+1)
		calls++
	})
	t.Run("too large", func(t *testing.T) {
		// A page of books is larger than max_entry_bytes (1KiB).
		before := up.count("/example.library.v1.LibraryService/ListBooks")
		for range 2 {
			r := cacheGet(t, gw, "/v1/shelves/1/books?page_size=100")
			if r.header.Get("X-Cache") != "MISS" || len(r.body) < 1<<10 {
				t.Fatalf("a %d-byte answer: X-Cache %q, want MISS beyond max_entry_bytes", len(r.body), r.header.Get("X-Cache"))
			}
		}
		if n := up.count("/example.library.v1.LibraryService/ListBooks") - before; n != 2 {
			t.Errorf("%d ListBooks calls upstream, want 2", n)
		}
		if v := metricValue(t, admin, `rosetta_cache_not_stored_total{method="example.library.v1.LibraryService/ListBooks",reason="too_large"}`); v != 2 {
			t.Errorf("not_stored too_large = %v, want 2", v)
		}
	})
	t.Run("purge", func(t *testing.T) {
		wantCache(t, cacheGet(t, gw, shelf), "HIT", "rosetta; hit", up, calls)
		if code, body := adminPost(t, admin, "/admin/cache/purge?prefix=example.library.v1.LibraryService/ListBooks"); code != 200 || body != `{"purged":0}` {
			t.Fatalf("purge of another method: %d %s", code, body)
		}
		wantCache(t, cacheGet(t, gw, shelf), "HIT", "rosetta; hit", up, calls)
		code, body := adminPost(t, admin, "/admin/cache/purge?prefix=example.library.v1.LibraryService/GetShelf")
		if code != 200 || body == `{"purged":0}` {
			t.Fatalf("purge: %d %s", code, body)
		}
		wantCache(t, cacheGet(t, gw, shelf), "MISS", "rosetta; fwd=miss; stored", up, calls+1)
		calls++
		if code, _ := adminGet(t, admin, "/admin/cache/purge"); code != http.StatusMethodNotAllowed {
			t.Errorf("GET /admin/cache/purge: %d, want 405", code)
		}
	})
	t.Run("metrics and routes", func(t *testing.T) {
		hits := metricValue(t, admin, `rosetta_cache_requests_total{method="example.library.v1.LibraryService/GetShelf",result="hit"}`)
		misses := metricValue(t, admin, `rosetta_cache_requests_total{method="example.library.v1.LibraryService/GetShelf",result="miss"}`)
		bypass := metricValue(t, admin, `rosetta_cache_requests_total{method="example.library.v1.LibraryService/GetShelf",result="bypass"}`)
		if hits < 8 || bypass != 1 || int(misses+bypass) != calls {
			t.Errorf("hits %v, misses %v, bypass %v; want ≥8 hits, 1 bypass and %d upstream calls", hits, misses, bypass, calls)
		}
		if v := metricValue(t, admin, "rosetta_cache_entries"); v < 1 {
			t.Errorf("rosetta_cache_entries %v", v)
		}
		_, routes := adminGet(t, admin, "/routes")
		if !strings.Contains(routes, "cache(memory, ttl=1h0m0s, vary=accept-language, key per identity)") {
			t.Errorf("/routes does not show the cache step of GetShelf:\n%s", routes)
		}
		// CreateBook has side effects: no cache step.
		if regexp.MustCompile(`CreateBook[^}]*cache\(`).MatchString(routes) {
			t.Errorf("CreateBook is cached:\n%s", routes)
		}
	})
}

// TestCacheCoalescing sends 100 identical calls while the upstream holds
// the first: the other 99 wait for it (the metric counts them joining)
// and, once it is released, all 100 get its answer from one upstream call.
func TestCacheCoalescing(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	gate := make(chan struct{})
	up.mu.Lock()
	up.gate = gate
	up.mu.Unlock()
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), up.addr, "    cache: {ttl: 1h}\n", ""))
	const n = 100
	answers := make(chan *response, n)
	for range n {
		go func() {
			hr, _ := http.NewRequest(http.MethodGet, gw.base+"/v1/shelves/1", nil)
			resp, err := client.Do(hr)
			if err != nil {
				answers <- &response{status: -1, body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- &response{status: resp.StatusCode, header: resp.Header, body: b}
		}()
	}
	waitFor(t, "99 calls to join the first", func() bool {
		return metricValue(t, admin, `rosetta_cache_coalesced_total{method="example.library.v1.LibraryService/GetShelf"}`) == n-1
	})
	if c := up.count(getShelfMethod); c != 1 {
		t.Fatalf("%d upstream calls in flight, want 1", c)
	}
	close(gate)
	collapsed := 0
	var first string
	for range n {
		r := <-answers
		if r.status != http.StatusOK {
			t.Fatalf("a coalesced call: %d %s", r.status, r.body)
		}
		if first == "" {
			first = string(r.body)
		} else if string(r.body) != first {
			t.Errorf("answers differ: %s and %s", r.body, first)
		}
		if strings.HasSuffix(r.header.Get("Cache-Status"), "; collapsed") {
			collapsed++
		}
	}
	if c := up.count(getShelfMethod); c != 1 {
		t.Errorf("%d upstream calls for %d identical misses, want 1", c, n)
	}
	if collapsed != n-1 {
		t.Errorf("%d answers say collapsed, want %d", collapsed, n-1)
	}
}

// TestCacheIdentity checks that on an authenticated method one caller's
// answer is never served to another: the key holds the JWT subject.
func TestCacheIdentity(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	is := startIssuer(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    policies: [bearer]\n    cache: {ttl: 1h}\n", fmt.Sprintf(`policies:
  bearer:
    jwt: {issuer: %q, audience: [rosetta], algorithms: [RS256], jwks_url: %q}
security:
  identity_headers: {x-user-id: subject}
`, testIssuer, is.url)))
	token := func(sub string) string {
		return "Bearer " + signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(map[string]any{"sub": sub}))
	}
	alice, bob := token("alice"), token("bob")
	servedFor := func(r *response) string { return r.header.Get("Grpc-Metadata-X-Served-For") }

	r := cacheGet(t, gw, "/v1/shelves/1", "Authorization", alice)
	wantCache(t, r, "MISS", "rosetta; fwd=miss; stored", up, 1)
	r = cacheGet(t, gw, "/v1/shelves/1", "Authorization", bob)
	wantCache(t, r, "MISS", "rosetta; fwd=miss; stored", up, 2)
	if servedFor(r) != "bob" {
		t.Errorf("bob got the answer made for %q", servedFor(r))
	}
	for _, who := range []struct{ name, token string }{{"alice", alice}, {"bob", bob}, {"alice", token("alice")}} {
		r := cacheGet(t, gw, "/v1/shelves/1", "Authorization", who.token)
		wantCache(t, r, "HIT", "rosetta; hit", up, 2)
		if servedFor(r) != who.name {
			t.Errorf("%s got the answer made for %q", who.name, servedFor(r))
		}
	}
	// A refused call is never answered from the cache.
	const codeUnauthenticated = 16
	wantStatus(t, get(t, gw.base, "/v1/shelves/1"), http.StatusUnauthorized, codeUnauthenticated, "")
}

// TestCacheProtocols calls one method over REST, Connect, gRPC and gRPC-Web:
// all four are served by the entry the first stored.
func TestCacheProtocols(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    cache: {ttl: 1h}\n", ""))
	connect := func() *response {
		return do(t, gw.base, request{method: http.MethodPost, path: getShelfMethod, body: `{"name":"shelves/2"}`,
			header: map[string]string{"Connect-Protocol-Version": "1"}})
	}
	r := connect()
	if r.status != 200 {
		t.Fatalf("Connect: %d %s", r.status, r.body)
	}
	wantCache(t, r, "MISS", "rosetta; fwd=miss; stored", up, 1)

	conn := gw.grpcConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var header metadata.MD
	shelf, err := libraryv1.NewLibraryServiceClient(conn).GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/2"}, grpc.Header(&header))
	if err != nil || shelf.GetTheme() != "science" {
		t.Fatalf("gRPC GetShelf: %v, %v", shelf, err)
	}
	if got := header.Get("x-cache"); len(got) != 1 || got[0] != "HIT" {
		t.Errorf("gRPC x-cache %q, want HIT", got)
	}
	if got := header.Get("cache-status"); len(got) != 1 || !strings.HasPrefix(got[0], "rosetta; hit") {
		t.Errorf("gRPC cache-status %q, want a hit", got)
	}
	wantCache(t, cacheGet(t, gw, "/v1/shelves/2"), "HIT", "rosetta; hit", up, 1)
	wantCache(t, connect(), "HIT", "rosetta; hit", up, 1)
	frame := append([]byte{0, 0, 0, 0, 11}, "\n\x09shelves/2"...)
	r = do(t, gw.base, request{method: http.MethodPost, path: getShelfMethod, body: string(frame),
		header: map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}})
	if r.status != 200 {
		t.Fatalf("gRPC-Web: %d %s", r.status, r.body)
	}
	wantCache(t, r, "HIT", "rosetta; hit", up, 1)
}

// TestCacheRedisShared runs two gateways on one Redis: an answer stored
// through the first is a hit on the second, and a purge on either
// removes it for both.
func TestCacheRedisShared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	up := startCountingUpstream(t)
	cfg := libraryConfig(descriptorSetSchema(), up.addr, "", fmt.Sprintf(`cache: {store: redis, ttl: 1h}
redis: {addr: %q, timeout: 5s}   # a loaded machine must not turn lookups into misses
`, srv.Addr))
	adminA, adminB := freePort(t), freePort(t)
	a := startRosettaListen(t, fmt.Sprintf("admin: %q", adminA), cfg)
	b := startRosettaListen(t, fmt.Sprintf("admin: %q", adminB), cfg)
	wantCache(t, cacheGet(t, a, "/v1/shelves/1"), "MISS", "rosetta; fwd=miss; stored", up, 1)
	wantCache(t, cacheGet(t, b, "/v1/shelves/1"), "HIT", "rosetta; hit", up, 1)
	wantCache(t, cacheGet(t, a, "/v1/shelves/1"), "HIT", "rosetta; hit", up, 1)
	if code, body := adminPost(t, adminB, "/admin/cache/purge"); code != 200 || body != `{"purged":1}` {
		t.Fatalf("purge: %d %s", code, body)
	}
	wantCache(t, cacheGet(t, a, "/v1/shelves/1"), "MISS", "rosetta; fwd=miss; stored", up, 2)
	wantCache(t, cacheGet(t, b, "/v1/shelves/1"), "HIT", "rosetta; hit", up, 2)
}

// TestCacheCheck: `rosetta check` refuses cache settings that cannot
// work, naming them.
func TestCacheCheck(t *testing.T) {
	t.Parallel()
	base := func(service, extra string) string {
		return fmt.Sprintf("listen: {http: %q}\n", freePort(t)) + libraryConfig(descriptorSetSchema(), "127.0.0.1:1", service, extra)
	}
	for _, c := range []struct{ name, cfg, want string }{
		{"unknown store", base("", "cache: {store: disk}\n"), `cache.store "disk"`},
		{"redis without redis", base("", "cache: {store: redis}\n"), "cache.store redis: set redis.addr"},
		{"entry beyond the store", base("", "cache: {max_bytes: 1KiB, max_entry_bytes: 2KiB}\n"), "cache.max_entry_bytes"},
		{"unknown key", base("", "cache: {ttl: 1s, size: 3}\n"), "field size not found"},
		{"bad vary", base("    cache: {ttl: 1s, vary: [\"a b\"]}\n", ""), `cache.vary: "a b" is not a header name`},
		{"stream", base("", "routes:\n  - get: /s/{parent=shelves/*}\n    call: example.library.v1.LibraryService/StreamBooks\n    cache: {ttl: 1s}\n"), "only unary methods"},
		{"two settings", base("", "routes:\n  - get: /a/{name=shelves/*}\n    call: example.library.v1.LibraryService/GetShelf\n    cache: {ttl: 1s}\n  - get: /b/{name=shelves/*}\n    call: example.library.v1.LibraryService/GetShelf\n    cache: {ttl: 2s}\n"), "different cache settings"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runRosetta(t, "check", "-config", writeConfig(t, c.cfg))
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("check: exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", code, c.want, stdout, stderr)
			}
		})
	}
	// `rosetta routes` shows the cache step where it applies.
	code, stdout, stderr := runRosetta(t, "routes", "-config", writeConfig(t, base("    cache: {ttl: 30s, vary: [Accept-Language]}\n", "")))
	if code != 0 {
		t.Fatalf("routes: exit %d\n%s", code, stderr)
	}
	if want := "example.library.v1.LibraryService/GetShelf\n  ways:  gRPC, gRPC-Web, Connect, WebSocket; REST GET /v1/{name=shelves/*}; REST HEAD /v1/{name=shelves/*}\n  chain: observe → cors(same-origin) → query-token → mqtt-owner → cache(memory, ttl=30s, vary=accept-language, key per identity) → dispatch"; !strings.Contains(stdout, want) {
		t.Errorf("routes lacks %q:\n%s", want, stdout)
	}
	if strings.Contains(stdout, "CreateBook\n  ways:  gRPC, gRPC-Web, Connect, WebSocket; REST POST /v1/{parent=shelves/*}/books\n  chain: observe → cors(same-origin) → query-token → mqtt-owner → validate → cache") {
		t.Errorf("CreateBook, which has side effects, is cached:\n%s", stdout)
	}
}

// TestCacheAcrossReload: the in-memory entries survive a reload that keeps
// the cache section's store settings (and a new binding of the method is
// served by them), and are dropped with a store whose settings change.
func TestCacheAcrossReload(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	admin := freePort(t)
	cfg := libraryConfig(descriptorSetSchema(), up.addr, "", "cache: {ttl: 1h, max_bytes: 1MiB}\n")
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), cfg)
	wantCache(t, cacheGet(t, gw, "/v1/shelves/1"), "MISS", "rosetta; fwd=miss; stored", up, 1)
	reload := func(content string) {
		t.Helper()
		if err := os.WriteFile(gw.config, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, body := postReload(t, admin); code != 200 {
			t.Fatalf("reload: %d %s", code, body)
		}
	}
	first, err := os.ReadFile(gw.config)
	if err != nil {
		t.Fatal(err)
	}
	reload(string(first) + "routes:\n  - get: /v2/{name=shelves/*}\n    call: example.library.v1.LibraryService/GetShelf\n")
	wantCache(t, cacheGet(t, gw, "/v2/shelves/1"), "HIT", "rosetta; hit", up, 1)
	wantCache(t, cacheGet(t, gw, "/v1/shelves/1"), "HIT", "rosetta; hit", up, 1)
	reload(strings.Replace(string(first), "max_bytes: 1MiB", "max_bytes: 2MiB", 1))
	wantCache(t, cacheGet(t, gw, "/v1/shelves/1"), "MISS", "rosetta; fwd=miss; stored", up, 2)
}

// TestCacheWebSocket calls a cached unary method over WebSocket twice: the
// second call is answered from the cache (the upstream is called once, the
// hit counted), with the same result, and the entry is the one a REST call
// of the method finds.
func TestCacheWebSocket(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), up.addr, "    cache: {ttl: 1h}\n", ""))
	getShelf := func() map[string]any {
		c := dialWS(t, gw, "GetShelf", nil)
		c.send(`{"name":"shelves/1"}`)
		r := result(t, c.recv())
		c.finish(codes.OK)
		return r
	}
	first, second := getShelf(), getShelf()
	if fmt.Sprint(second) != fmt.Sprint(first) || first["theme"] == nil {
		t.Errorf("the second call answered %v, the first %v", second, first)
	}
	if n := up.count(getShelfMethod); n != 1 {
		t.Errorf("the upstream received %d GetShelf calls, want 1", n)
	}
	if hits := metricValue(t, admin, `rosetta_cache_requests_total{method="example.library.v1.LibraryService/GetShelf",result="hit"}`); hits != 1 {
		t.Errorf("%v cache hits, want 1", hits)
	}
	wantCache(t, cacheGet(t, gw, "/v1/shelves/1"), "HIT", "rosetta; hit", up, 1)
}

// TestCacheMQTT publishes the same message twice on an uplink rule calling
// a cached method: the second is answered from the cache (the upstream is
// called once, the hit counted), and both replies carry the same answer.
func TestCacheMQTT(t *testing.T) {
	t.Parallel()
	up := startCountingUpstream(t)
	admin, broker := freePort(t), freePort(t)
	startRosettaListen(t, fmt.Sprintf("admin: %q, mqtt: %q", admin, broker), libraryConfig(descriptorSetSchema(), up.addr, "    cache: {ttl: 1h}\n", anonymous+`
routes:
  - mqtt: library/shelf/get
    call: example.library.v1.LibraryService/GetShelf
    reply: library/shelf/reply
`))
	sub := subscribe(t, broker, "mqttv5", "library/shelf/reply")
	for range 2 {
		if out, code := publish(t, broker, "mqttv5", "-q", "1", "-t", "library/shelf/get", "-m", `{"name":"shelves/1"}`); code != 0 {
			t.Fatalf("mosquitto_pub: %d\n%s", code, out)
		}
	}
	first, second := sub.next(t, 1), sub.next(t, 2)
	if second != first || !strings.Contains(first, `"theme"`) {
		t.Errorf("the second reply is %s, the first %s", second, first)
	}
	if n := up.count(getShelfMethod); n != 1 {
		t.Errorf("the upstream received %d GetShelf calls, want 1", n)
	}
	if hits := metricValue(t, admin, `rosetta_cache_requests_total{method="example.library.v1.LibraryService/GetShelf",result="hit"}`); hits != 1 {
		t.Errorf("%v cache hits, want 1", hits)
	}
}
