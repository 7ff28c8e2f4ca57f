package test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/examples/library"
)

// flakyUpstream is the example LibraryService failing every odd call of
// each method with UNAVAILABLE, as a replica going away does.
type flakyUpstream struct {
	addr  string
	mu    sync.Mutex
	calls map[string]int
}

func startFlakyUpstream(t *testing.T) *flakyUpstream {
	t.Helper()
	u := &flakyUpstream{calls: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		u.mu.Lock()
		u.calls[info.FullMethod]++
		n := u.calls[info.FullMethod]
		u.mu.Unlock()
		if n%2 == 1 {
			return nil, status.Error(codes.Unavailable, "going away")
		}
		return handler(ctx, req)
	}))
	library.Register(srv)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return u
}

func (u *flakyUpstream) count(method string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls["/example.library.v1.LibraryService/"+method]
}

// TestRetrySafeCalls: with an upstream retry policy, a call safe to repeat
// (a GET binding) is retried on UNAVAILABLE and succeeds; one that is not
// (a POST of a method without an idempotency level) is tried once.
func TestRetrySafeCalls(t *testing.T) {
	t.Parallel()
	up := startFlakyUpstream(t)
	cfg := libraryConfig(descriptorSetSchema(), up.addr, "", "")
	cfg = edit(t, cfg, "timeout: 5s}", "timeout: 5s, retry: {attempts: 3, backoff: 1ms}}")
	gw := startRosetta(t, cfg)
	if r := get(t, gw.base, "/v1/shelves/1"); r.status != http.StatusOK {
		t.Errorf("GET: %d %s, want 200 after a retry", r.status, r.body)
	}
	if n := up.count("GetShelf"); n != 2 {
		t.Errorf("the upstream saw %d GetShelf calls, want 2", n)
	}
	r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books", body: `{"title":"Once"}`})
	wantStatus(t, r, http.StatusServiceUnavailable, 14, "")
	if n := up.count("CreateBook"); n != 1 {
		t.Errorf("the upstream saw %d CreateBook calls, want 1: a call with side effects is not retried", n)
	}
}
