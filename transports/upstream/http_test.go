package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/internal/testwait"
)

func TestHTTPInvoke(t *testing.T) {
	var gotURI, gotMethod, gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotURI, gotMethod, gotHeader = r.RequestURI, r.Method, r.Header.Get("X-Request-Id")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPConfig{URL: srv.URL + "/base/"})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := h.Invoke(context.Background(), "POST /v1/things/a%20b%2Fc?x=1", []byte(`{}`), metadata.Pairs("x-request-id", "r1"))
	if err != nil {
		t.Fatal(err)
	}
	if gotURI != "/base/v1/things/a%20b%2Fc?x=1" || gotMethod != "POST" || gotHeader != "r1" {
		t.Errorf("upstream saw %s %s (X-Request-Id %q), want POST /base/v1/things/a%%20b%%2Fc?x=1 (r1)", gotMethod, gotURI, gotHeader)
	}
	if reply.HTTPStatus != http.StatusCreated || string(reply.Message) != `{"ok":true}` || reply.ContentType != "application/json" {
		t.Errorf("reply = %d %q %q", reply.HTTPStatus, reply.ContentType, reply.Message)
	}
}

func TestHTTPInvokeErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	h, err := NewHTTP(HTTPConfig{URL: addr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Invoke(context.Background(), "GET /x", nil, nil); status.Code(err) != codes.Unavailable {
		t.Errorf("unreachable upstream: %v, want UNAVAILABLE", err)
	}
	if _, err := h.Invoke(context.Background(), "GET /bad%zz", nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad escape: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := NewHTTP(HTTPConfig{URL: "ftp://x"}); err == nil {
		t.Error("NewHTTP accepted an ftp URL")
	}
}

// TestHTTPEndpointsAndHealth: calls spread over the targets with the URL's
// scheme and path, each reply names its endpoint, and a target whose health
// path answers 503 gets no calls.
func TestHTTPEndpointsAndHealth(t *testing.T) {
	var sick atomic.Bool
	var calls [2]atomic.Int64
	servers := make([]*httptest.Server, 2)
	for i := range servers {
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/up" {
				if i == 1 && sick.Load() {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
				return
			}
			if r.URL.Path != "/base/x" {
				t.Errorf("upstream saw %s", r.URL.Path)
			}
			calls[i].Add(1)
		}))
		defer servers[i].Close()
	}
	addr := func(i int) string { return strings.TrimPrefix(servers[i].URL, "http://") }
	h, err := NewHTTP(HTTPConfig{URL: "http://ignored.example/base", Targets: []Endpoint{{Addr: addr(0)}, {Addr: addr(1)}},
		Options: Options{Name: "web", Health: &HealthCheck{Interval: time.Millisecond, Path: "/up", UnhealthyThreshold: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	seen := map[string]bool{}
	for range 10 {
		reply, err := h.Invoke(context.Background(), "GET /x", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[reply.Endpoint] = true
	}
	if !seen[addr(0)] || !seen[addr(1)] || calls[0].Load() != 5 || calls[1].Load() != 5 {
		t.Errorf("round robin over two targets: endpoints %v, calls %d and %d", seen, calls[0].Load(), calls[1].Load())
	}
	sick.Store(true)
	testwait.For(t, "the sick target unhealthy", func() bool { return h.Usable() == 1 })
	before := calls[1].Load()
	for range 10 {
		if _, err := h.Invoke(context.Background(), "GET /x", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if calls[1].Load() != before {
		t.Error("an unhealthy HTTP target got calls")
	}
}
