package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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
