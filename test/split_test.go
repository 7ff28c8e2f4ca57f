package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// splitGateway is a gateway serving the LibraryService split between two
// library-servers named stable and canary.
type splitGateway struct {
	*rosetta
	admin string
	head  string // the listen section the harness wrote
}

// splitService is the service entry of a split with the given weights, the
// canary pinned by X-Canary: 1 and by the cookie canary=1.
func splitService(stableW, canaryW int, sticky string) string {
	return fmt.Sprintf(`    split:
      - {upstream: stable, weight: %d}
      - {upstream: canary, weight: %d, pin: {header: X-Canary, cookie: canary}}
%s`, stableW, canaryW, sticky)
}

func startSplit(t *testing.T, service, extra string) *splitGateway {
	t.Helper()
	stable, canary := startNamedLibrary(t, "stable"), startNamedLibrary(t, "canary")
	admin := freePort(t)
	cfg := fmt.Sprintf(`schemas:
%supstreams:
  stable: {grpc: {targets: [%q]}, timeout: 5s}
  canary: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: example.library.v1.LibraryService
%s%s`, descriptorSetSchema(), stable, canary, service, extra)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), cfg)
	head, _, _ := strings.Cut(readFile(t, gw.config), "\n")
	return &splitGateway{rosetta: gw, admin: admin, head: head}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// servedBy makes one REST call and returns who answered it.
func servedBy(t testing.TB, base string, header map[string]string) string {
	t.Helper()
	return servedAt(t, base, "/v1/shelves/1", header)
}

// servedAt makes one REST GET of path and returns who answered it.
func servedAt(t testing.TB, base, path string, header map[string]string) string {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	return resp.Header.Get("Grpc-Metadata-X-Served-By")
}

// countServed makes n calls, 8 at a time, and counts who answered.
func countServed(t *testing.T, base string, n int) map[string]int {
	t.Helper()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		next   = make(chan struct{})
	)
	for range 8 {
		wg.Go(func() {
			for range next {
				who := servedBy(t, base, nil)
				mu.Lock()
				counts[who]++
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return counts
}

// TestSplitWeights: a 90/10 split measured over 10,000 calls through the
// binary is exact (smooth weighted round-robin), the metric agrees, the
// routes table shows the split, and a reload that changes the weights
// applies without a restart.
func TestSplitWeights(t *testing.T) {
	gw := startSplit(t, splitService(90, 10, ""), "")
	counts := countServed(t, gw.base, 10000)
	t.Logf("10000 calls at 90/10: %v", counts)
	if counts["stable"] != 9000 || counts["canary"] != 1000 {
		t.Errorf("10000 calls at 90/10 went %v, want stable 9000 and canary 1000", counts)
	}
	_, metrics := adminGet(t, gw.admin, "/metrics")
	for _, want := range []string{
		`rosetta_split_requests_total{service="example.library.v1.LibraryService",upstream="stable"} 9000`,
		`rosetta_split_requests_total{service="example.library.v1.LibraryService",upstream="canary"} 1000`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, out, errOut := runRosetta(t, "routes", "-config", gw.config)
	if want := "split(stable 90, canary 10; pin header x-canary or cookie canary = 1 → canary)"; code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "split → dispatch") {
		t.Errorf("rosetta routes (exit %d) does not show %q and the split step:\n%s%s", code, want, out, errOut)
	}

	// A reload to 50/50 applies to the next calls, without a restart.
	if err := os.WriteFile(gw.config, []byte(gw.head+"\n"+strings.Replace(strings.SplitN(readFile(t, gw.config), "\n", 2)[1], "weight: 90}", "weight: 50}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// 50 and 10: the canary's share becomes 1/6.
	waitFor(t, "the reloaded weights", func() bool {
		c := countServed(t, gw.base, 600)
		return c["stable"] == 500 && c["canary"] == 100
	})
	if gw.exited() {
		t.Fatal("the gateway restarted")
	}
}

// TestSplitPins: X-Canary: 1 and the cookie canary=1 always reach the
// pinned upstream, whatever the weights; other values follow the split.
func TestSplitPins(t *testing.T) {
	gw := startSplit(t, splitService(100, 0, ""), "")
	for i := range 50 {
		if who := servedBy(t, gw.base, map[string]string{"X-Canary": "1"}); who != "canary" {
			t.Fatalf("call %d with X-Canary: 1 served by %q", i, who)
		}
		if who := servedBy(t, gw.base, map[string]string{"Cookie": "theme=dark; canary=1"}); who != "canary" {
			t.Fatalf("call %d with the canary cookie served by %q", i, who)
		}
		if who := servedBy(t, gw.base, map[string]string{"X-Canary": "0", "Cookie": "canary=never"}); who != "stable" {
			t.Fatalf("call %d with X-Canary: 0 served by %q", i, who)
		}
	}
	// A stream is placed the same way.
	if who := servedAt(t, gw.base, "/v1/shelves/1/books:stream", map[string]string{"X-Canary": "1"}); who != "canary" {
		t.Fatalf("a stream with X-Canary: 1 served by %q", who)
	}
	if who := servedAt(t, gw.base, "/v1/shelves/1/books:stream", nil); who != "stable" {
		t.Fatalf("a stream served by %q", who)
	}
}

// TestSplitSticky: with sticky assignment each JWT subject stays on one
// upstream across calls (and the subject wins over the header), a header
// key is sticky too, and the users spread over both upstreams.
func TestSplitSticky(t *testing.T) {
	secret := []byte("split-secret-split-secret-0123456789")
	key := filepath.Join(t.TempDir(), "hmac.jwk")
	if err := os.WriteFile(key, fmt.Appendf(nil, `{"kty":"oct","kid":"k","alg":"HS256","k":%q}`, b64url(secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startSplit(t, splitService(50, 50, "    sticky: {header: X-User}\n    policies: [bearer]\n"), fmt.Sprintf(`policies:
  bearer: {jwt: {issuer: https://id.test, audience: [rosetta], algorithms: [HS256], key_files: [%q]}}
`, key))
	token := func(sub string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "https://id.test", "aud": "rosetta", "sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	users := map[string]int{}
	for u := range 100 {
		h := map[string]string{"Authorization": "Bearer " + token(fmt.Sprint("user-", u))}
		first := servedBy(t, gw.base, h)
		users[first]++
		for i := range 5 {
			h["X-User"] = fmt.Sprint("header-", i) // the identity, not the header, is the key
			if who := servedBy(t, gw.base, h); who != first {
				t.Fatalf("user-%d: call %d served by %q, the first by %q", u, i+2, who, first)
			}
		}
	}
	t.Logf("100 users at 50/50: %v", users)
	if users["stable"] < 20 || users["canary"] < 20 {
		t.Errorf("100 users at 50/50 were placed %v", users)
	}
}
