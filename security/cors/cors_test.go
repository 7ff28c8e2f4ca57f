package cors_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/cors"
)

func TestHandler(t *testing.T) {
	strict, err := cors.New(cors.Config{AllowedOrigins: []string{"https://app.example"}, AllowedMethods: []string{"GET", "post"},
		AllowedHeaders: []string{"Authorization", "X-Request-Id"}, ExposedHeaders: []string{"x-request-id"}, AllowCredentials: true, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	open, err := cors.New(cors.Config{AllowedOrigins: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	reached := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++; w.WriteHeader(299) })
	h := cors.Handler(next, func(method string, r *http.Request) *cors.Policy {
		switch {
		case r.URL.Path == "/strict" && (method == "GET" || method == "POST" || method == "DELETE"):
			return strict
		case r.URL.Path == "/open":
			return open
		}
		return nil
	})
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		want               map[string]string // response headers; "" means absent
		forwarded          bool
	}{
		{"allowed preflight", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, X-Request-Id"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "authorization, x-request-id", "Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "3600"}, false},
		{"gRPC-Web and Connect headers always allowed", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-grpc-web, x-user-agent, grpc-timeout, connect-protocol-version, connect-timeout-ms"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example"}, false},
		{"content-type always allowed", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "content-type"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example"}, false},
		{"origin refused", "OPTIONS", "/strict", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, 403,
			map[string]string{"Access-Control-Allow-Origin": "", "Content-Type": "application/json"}, false},
		{"origin suffix refused", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example.evil", "Access-Control-Request-Method": "GET"}, 403, nil, false},
		{"method refused", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"}, 403,
			map[string]string{"Access-Control-Allow-Origin": ""}, false},
		{"header refused", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-secret"}, 403,
			map[string]string{"Access-Control-Allow-Origin": ""}, false},
		{"wildcard preflight", "OPTIONS", "/open", map[string]string{"Origin": "https://any.example", "Access-Control-Request-Method": "PUT"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": ""}, false},
		{"route without policy", "OPTIONS", "/other", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}, 299, nil, true},
		{"plain OPTIONS", "OPTIONS", "/strict", map[string]string{"Origin": "https://app.example"}, 299, nil, true},
		{"actual request, allowed", "GET", "/strict", map[string]string{"Origin": "https://app.example"}, 299,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example", "Access-Control-Expose-Headers": "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, X-Request-Id", "Vary": "Origin"}, true},
		{"actual request, refused origin", "GET", "/strict", map[string]string{"Origin": "https://evil.example"}, 299,
			map[string]string{"Access-Control-Allow-Origin": "", "Vary": "Origin"}, true},
		{"no origin", "GET", "/strict", nil, 299, map[string]string{"Access-Control-Allow-Origin": "", "Vary": ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached = 0
			r := httptest.NewRequest(tt.method, tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if (reached == 1) != tt.forwarded {
				t.Errorf("next reached %d times, want forwarded = %v", reached, tt.forwarded)
			}
			for k, v := range tt.want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if w.Code == 403 && !strings.Contains(w.Body.String(), `"code":7`) {
				t.Errorf("refusal body %s, want a PERMISSION_DENIED status", w.Body)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]cors.Config{
		"no origins":           {},
		"wildcard credentials": {AllowedOrigins: []string{"*"}, AllowCredentials: true},
		"origin with path":     {AllowedOrigins: []string{"https://a.example/x"}},
		"origin without host":  {AllowedOrigins: []string{"app.example"}},
		"wildcard headers":     {AllowedOrigins: []string{"https://a.example"}, AllowedHeaders: []string{"*"}},
		"negative max age":     {AllowedOrigins: []string{"https://a.example"}, MaxAge: -time.Second},
	} {
		if _, err := cors.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOriginPatterns(t *testing.T) {
	p, err := cors.New(cors.Config{AllowedOrigins: []string{"https://app.example", "https://*.example.org", "http://localhost:*"}})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://app.example":      true,
		"https://APP.example":      true,
		"http://app.example":       false, // another scheme
		"https://a.example.org":    true,
		"https://example.org":      false,
		"http://localhost:5173":    true,
		"http://localhost":         false,
		"https://evil.example":     false,
		"https://app.example.evil": false,
		"null":                     false,
	} {
		if got := p.AllowsOrigin(origin); got != want {
			t.Errorf("AllowsOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
	if _, err := cors.New(cors.Config{AllowedOrigins: []string{"*.example.org"}}); err == nil {
		t.Error("a pattern without a scheme was accepted")
	}
}

// TestCheck is the chain step: a call from a page of another origin is
// refused unless the policy allows that origin, on every protocol; a page
// of the gateway's own origin and a client without Origin always pass.
func TestCheck(t *testing.T) {
	p, err := cors.New(cors.Config{AllowedOrigins: []string{"https://app.example"}})
	if err != nil {
		t.Fatal(err)
	}
	next := router.HandlerFunc(func(context.Context, *router.Call) error { return nil })
	for _, tt := range []struct {
		name   string
		policy *cors.Policy
		proto  router.Protocol
		in     metadata.MD
		code   codes.Code
	}{
		{"no origin", nil, router.HTTP, metadata.MD{"host": {"gw:8080"}}, codes.OK},
		{"same origin", nil, router.WebSocket, metadata.MD{"origin": {"http://gw:8080"}, "host": {"gw:8080"}}, codes.OK},
		{"same origin over HTTP/2", nil, router.GRPCWeb, metadata.MD{"origin": {"https://gw"}, ":authority": {"gw"}}, codes.OK},
		{"other origin without a policy", nil, router.WebSocket, metadata.MD{"origin": {"https://app.example"}, "host": {"gw:8080"}}, codes.PermissionDenied},
		{"allowed origin", p, router.WebSocket, metadata.MD{"origin": {"https://app.example"}, "host": {"gw:8080"}}, codes.OK},
		{"foreign origin", p, router.HTTP, metadata.MD{"origin": {"https://evil.example"}, "host": {"gw:8080"}}, codes.PermissionDenied},
		{"foreign origin over gRPC-Web", p, router.GRPCWeb, metadata.MD{"origin": {"https://evil.example"}, "host": {"gw:8080"}}, codes.PermissionDenied},
	} {
		err := cors.Check(tt.policy)(next).Handle(context.Background(), &router.Call{Protocol: tt.proto, Incoming: tt.in})
		if status.Code(err) != tt.code {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.code)
		}
	}
}
