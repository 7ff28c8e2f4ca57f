package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// browserTimeout bounds the whole page run in Chromium, start-up included:
// a guard against a hang, far above what the run takes on a machine whose
// cores are kept busy by other work (the explorer's run took over 90 s
// with a load average of 23 on two cores).
const browserTimeout = 5 * time.Minute

// TestBrowser loads a page bundled from npm packages (test/browser) in
// headless Chromium: it calls the gateway with @connectrpc/connect-web's
// Connect and gRPC-Web transports, gRPC-Web in binary and in JSON (unary,
// server streaming and an error)
// and runs a bidirectional stream over the browser's WebSocket, cross-origin,
// then posts its results back to the test.
func TestBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed; scripts/test.sh installs it (apt-get install -y chromium)")
	}
	bundle := bundlePage(t)

	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(repoRoot, "test", "browser", "index.html"))
	})
	mux.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(bundle)
	})
	mux.HandleFunc("GET /library.binpb", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(repoRoot, "proto", "library.binpb"))
	})
	mux.HandleFunc("POST /results", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		select {
		case results <- b:
		default:
		}
	})
	page := httptest.NewServer(mux)
	defer page.Close()

	lib := startLibrary(t)
	// One cors policy serves REST, gRPC-Web, Connect and WebSocket.
	browser := fmt.Sprintf("security: {policies: [browser]}\npolicies:\n  browser: {cors: {allowed_origins: [%q]}}\n", page.URL)
	ros := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", browser))

	profile := t.TempDir()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+profile, page.URL+"/?gateway="+ros.base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers are stopped with it
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()

	var body []byte
	select {
	case body = <-results:
	case <-time.After(browserTimeout):
		t.Fatalf("the page posted no results within %v\nchromium:\n%s\nrosetta:\n%s", browserTimeout, stderr.String(), ros.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("results are not JSON: %v\n%s", err, body)
	}
	if e, ok := got["error"]; ok {
		t.Fatalf("the page failed: %v\nresults: %s\nrosetta:\n%s", e, body, ros.stderr)
	}
	shelf2 := []any{"shelves/2/books/cosmos", "shelves/2/books/the-selfish-gene", "shelves/2/books/a-brief-history-of-time", "shelves/2/books/the-structure-of-scientific-revolutions"}
	want := map[string]any{
		"connectUnary": "Dune", "connectStream": shelf2, "connectError": float64(5),
		"grpcWebUnary": "Dune", "grpcWebStream": shelf2, "grpcWebError": float64(5),
		"grpcWebJsonUnary": "Dune", "grpcWebJsonStream": shelf2, "grpcWebJsonError": float64(5),
		"wsEchoes": []any{"hello", "from chromium"}, "wsStatus": float64(0), "wsClose": float64(1000),
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// bundlePage bundles test/browser/page.js with esbuild from the npm
// packages that scripts/test.sh installs (npm ci), without a network fetch.
func bundlePage(t *testing.T) []byte {
	t.Helper()
	dir := filepath.Join(repoRoot, "test", "browser")
	esbuild := filepath.Join(dir, "node_modules", ".bin", "esbuild")
	if _, err := os.Stat(esbuild); err != nil {
		t.Fatalf("the page's npm packages are not installed; scripts/test.sh runs npm ci in %s: %v", dir, err)
	}
	out := filepath.Join(t.TempDir(), "page.js")
	cmd := exec.Command(esbuild, "page.js", "--bundle", "--format=esm", "--target=es2020", "--outfile="+out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
