package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/security/ratelimit/redistest"
)

// callCount is the number of calls the observed upstream has seen.
func (u *observedUpstream) callCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, calls := range u.calls {
		n += len(calls)
	}
	return n
}

// issuer signs test tokens and publishes its keys as a JWKS whose fetches
// it counts; a test can rotate the keys.
type issuer struct {
	url     string // the JWKS URL
	fetches atomic.Int64

	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey

	mu   sync.Mutex
	keys []map[string]any
}

const testIssuer = "https://id.rosetta.test"

func startIssuer(t testing.TB) *issuer {
	t.Helper()
	is := &issuer{}
	var err error
	if is.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	is.keys = []map[string]any{rsaJWK("r1", &is.rsa.PublicKey), ecJWK("e1", &is.ec.PublicKey)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		json.NewEncoder(w).Encode(map[string]any{"keys": is.keys})
	}))
	t.Cleanup(srv.Close)
	is.url = srv.URL + "/jwks.json"
	return is
}

// rotate replaces the published keys by rsa2 under kid r2.
func (is *issuer) rotate() {
	is.mu.Lock()
	is.keys = []map[string]any{rsaJWK("r2", &is.rsa2.PublicKey)}
	is.mu.Unlock()
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64url(k.N.Bytes()), "e": b64url(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, _ := k.Bytes()
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64url(b[1:33]), "y": b64url(b[33:])}
}

// claims are valid claims for the gateway's audience, changed by extra (a
// nil value deletes the claim).
func claims(extra map[string]any) gojwt.MapClaims {
	now := time.Now()
	c := gojwt.MapClaims{"iss": testIssuer, "aud": "rosetta", "sub": "alice", "email": "alice@example.com",
		"scope": "library.read", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func signToken(t testing.TB, m gojwt.SigningMethod, key any, kid string, c gojwt.MapClaims) string {
	t.Helper()
	tok := gojwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attack is a token the gateway must refuse.
type attack struct{ name, token string }

// attacks are the tokens every ingress must refuse, each for its own reason.
func (is *issuer) attacks(t testing.TB) []attack {
	good := signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(nil))
	parts := strings.Split(good, ".")
	der, _ := x509.MarshalPKIXPublicKey(&is.rsa.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	tampered, _ := json.Marshal(claims(map[string]any{"sub": "admin", "scope": "library.admin"}))
	return []attack{
		{"alg none", b64url([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."},
		{"HS256 signed with the RS256 public key", signToken(t, gojwt.SigningMethodHS256, pubPEM, "r1", claims(nil))},
		{"expired", signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))},
		{"not yet valid", signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}))},
		{"wrong iss", signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(map[string]any{"iss": "https://evil.test"}))},
		{"wrong aud", signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(map[string]any{"aud": "someone-else"}))},
		{"unknown kid", signToken(t, gojwt.SigningMethodRS256, other, "nope", claims(nil))},
		{"tampered payload", parts[0] + "." + b64url(tampered) + "." + parts[2]},
		{"truncated", parts[0] + "." + parts[1]},
		{"non-base64 segments", parts[0] + ".%%%." + parts[2]},
		{"8 KiB junk", strings.Repeat("x", 8<<10)},
	}
}

// securityConfig serves the library at target behind the jwt policy, with
// identity headers, a route whose method (ListBooks) needs the admin scope
// and one whose method (GetBook) admits anonymous callers: policies named
// on a route guard its method however it is reached.
func securityConfig(target string, is *issuer, extraPolicies string) string {
	return libraryConfig(descriptorSetSchema(), target, "    policies: [bearer]\n", fmt.Sprintf(`routes:
  - get: /v1/admin/{parent=shelves/*}
    call: example.library.v1.LibraryService/ListBooks
    policies: [admins]
  - get: /v1/public/{name=shelves/*/books/*}
    call: example.library.v1.LibraryService/GetBook
    policies: [anyone]
policies:
  bearer:
    jwt: {issuer: %q, audience: [rosetta], algorithms: [RS256, ES256], jwks_url: %q, jwks_min_refresh_interval: 100ms, leeway: 5s}
  admins: {authorize: {scopes: [library.admin]}}
  anyone: {authorize: {anonymous: true}}
%ssecurity:
  identity_headers: {x-user-id: subject, x-user-scopes: scopes, x-user-email: "claim:email"}
`, testIssuer, is.url, extraPolicies))
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// wantRefused asserts a refusal with the HTTP status and gRPC code, and that
// the upstream saw no call.
func wantRefused(t *testing.T, r *response, up *observedUpstream, before, httpStatus, code int) {
	t.Helper()
	wantStatus(t, r, httpStatus, code, "")
	if n := up.callCount(); n != before {
		t.Errorf("the upstream saw %d calls, want %d: a refused call reached it", n, before)
	}
}

// TestSecurityJWTOverREST drives the jwt policy through the REST ingress
// of the real binary.
func TestSecurityJWTOverREST(t *testing.T) {
	t.Parallel()
	is := startIssuer(t)
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, securityConfig(up.addr, is, ""))
	const getShelf = "/example.library.v1.LibraryService/GetShelf"

	t.Run("valid tokens", func(t *testing.T) {
		for _, tok := range []string{
			signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(nil)),
			signToken(t, gojwt.SigningMethodES256, is.ec, "e1", claims(nil)),
		} {
			h := bearer(tok)
			h["Grpc-Metadata-X-User-Id"] = "mallory" // a client's copy is dropped
			h["Grpc-Metadata-X-User-Scopes"] = "library.admin"
			wantJSON(t, do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: h}), `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
			md := up.last(t, getShelf)
			for k, want := range map[string][]string{"x-user-id": {"alice"}, "x-user-scopes": {"library.read"}, "x-user-email": {"alice@example.com"}} {
				if got := md.Get(k); !reflect.DeepEqual(got, want) {
					t.Errorf("upstream metadata %s = %q, want %q", k, got, want)
				}
			}
		}
	})

	t.Run("no token", func(t *testing.T) {
		before := up.callCount()
		r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Grpc-Metadata-X-User-Id": "alice"}})
		wantRefused(t, r, up, before, http.StatusUnauthorized, int(codes.Unauthenticated))
		if got := r.header.Get("Www-Authenticate"); got != `Bearer realm="rosetta"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})

	for _, a := range is.attacks(t) {
		t.Run(a.name, func(t *testing.T) {
			before := up.callCount()
			r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: bearer(a.token)})
			wantRefused(t, r, up, before, http.StatusUnauthorized, int(codes.Unauthenticated))
			if got := r.header.Get("Www-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q, want an invalid_token error", got)
			}
			// Even a route open to anonymous callers refuses a bad token.
			r = do(t, gw.base, request{method: "GET", path: "/v1/public/shelves/1/books/dune", header: bearer(a.token)})
			wantRefused(t, r, up, before, http.StatusUnauthorized, int(codes.Unauthenticated))
		})
	}

	t.Run("scopes", func(t *testing.T) {
		before := up.callCount()
		r := do(t, gw.base, request{method: "GET", path: "/v1/admin/shelves/1", header: bearer(signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(nil)))})
		wantRefused(t, r, up, before, http.StatusForbidden, int(codes.PermissionDenied))
		// The scope guards the method on its annotation binding too.
		r = do(t, gw.base, request{method: "GET", path: "/v1/shelves/1/books", header: bearer(signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(nil)))})
		wantRefused(t, r, up, before, http.StatusForbidden, int(codes.PermissionDenied))
		admin := signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(map[string]any{"scope": "library.read library.admin"}))
		if r := do(t, gw.base, request{method: "GET", path: "/v1/admin/shelves/1", header: bearer(admin)}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"books"`) {
			t.Errorf("admin: %d %s", r.status, r.body)
		}
	})

	t.Run("anonymous route", func(t *testing.T) {
		for _, path := range []string{"/v1/public/shelves/1/books/dune", "/v1/shelves/1/books/dune"} { // the method is open on its every binding
			if r := get(t, gw.base, path); r.status != http.StatusOK || !strings.Contains(string(r.body), `"title":"Dune"`) {
				t.Errorf("%s: %d %s", path, r.status, r.body)
			}
			if got := up.last(t, "/example.library.v1.LibraryService/GetBook").Get("x-user-id"); len(got) != 0 {
				t.Errorf("anonymous call forwarded x-user-id %q", got)
			}
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		is.rotate()
		tok := signToken(t, gojwt.SigningMethodRS256, is.rsa2, "r2", claims(nil))
		before := up.callCount()
		waitFor(t, "the rotated key to be accepted", func() bool {
			r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: bearer(tok)})
			if r.status != http.StatusOK && r.status != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			return r.status == http.StatusOK
		})
		if up.callCount() != before+1 {
			t.Errorf("the upstream saw %d calls, want %d", up.callCount(), before+1)
		}
		r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: bearer(signToken(t, gojwt.SigningMethodRS256, is.rsa, "r1", claims(nil)))})
		wantRefused(t, r, up, before+1, http.StatusUnauthorized, int(codes.Unauthenticated))
	})
}

// TestSecurityJWTOverGRPC drives the same policy through the gRPC,
// gRPC-Web and WebSocket ingresses: a rule written once guards a method
// however it is reached.
func TestSecurityJWTOverGRPC(t *testing.T) {
	t.Parallel()
	is := startIssuer(t)
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, securityConfig(up.addr, is, ""))
	conn := gw.grpcConn(t)
	client := libraryv1.NewLibraryServiceClient(conn)
	good := signToken(t, gojwt.SigningMethodES256, is.ec, "e1", claims(nil))

	grpcCall := func(tok string) (*libraryv1.Shelf, error) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok, "x-user-id", "mallory")
		}
		return client.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"})
	}
	grpcWebCall := func(tok string) (int, string) {
		msg := []byte{0x0a, 0x09}
		msg = append(msg, "shelves/1"...)
		h := map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		r := post(t, gw, "GetShelf", append(envelope(msg), msg...), h)
		if r.status != http.StatusOK {
			return r.status, ""
		}
		if s := r.header.Get("Grpc-Status"); s != "" {
			return r.status, s
		}
		_, payloads := frames(t, r.body)
		last := string(payloads[len(payloads)-1])
		for line := range strings.SplitSeq(last, "\r\n") {
			if v, ok := strings.CutPrefix(line, "grpc-status:"); ok {
				return r.status, strings.TrimSpace(v)
			}
		}
		return r.status, ""
	}

	t.Run("gRPC", func(t *testing.T) {
		s, err := grpcCall(good)
		if err != nil || s.GetName() != "shelves/1" {
			t.Fatalf("GetShelf with a valid token: %v, %v", s, err)
		}
		if got := up.last(t, "/example.library.v1.LibraryService/GetShelf").Get("x-user-id"); !reflect.DeepEqual(got, []string{"alice"}) {
			t.Errorf("upstream x-user-id %q, want [alice]", got)
		}
		before := up.callCount()
		if _, err := grpcCall(""); status.Code(err) != codes.Unauthenticated {
			t.Errorf("no token: %v, want Unauthenticated", err)
		}
		for _, a := range is.attacks(t) {
			if _, err := grpcCall(a.token); status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s: %v, want Unauthenticated", a.name, err)
			}
		}
		if n := up.callCount(); n != before {
			t.Errorf("the upstream saw %d refused calls", n-before)
		}
	})

	t.Run("gRPC-Web", func(t *testing.T) {
		if code, st := grpcWebCall(good); code != 200 || st != "0" {
			t.Fatalf("valid token: HTTP %d, grpc-status %q", code, st)
		}
		before := up.callCount()
		if code, st := grpcWebCall(""); code != 200 || st != "16" {
			t.Errorf("no token: HTTP %d, grpc-status %q; want 200 and 16", code, st)
		}
		for _, a := range is.attacks(t) {
			if code, st := grpcWebCall(a.token); code != 200 || st != "16" {
				t.Errorf("%s: HTTP %d, grpc-status %q; want 200 and 16", a.name, code, st)
			}
		}
		if n := up.callCount(); n != before {
			t.Errorf("the upstream saw %d refused calls", n-before)
		}
	})

	t.Run("WebSocket", func(t *testing.T) {
		// The chain runs on the upgrade request: a refused call is never
		// upgraded.
		dial := func(tok string) (*ws.Conn, *http.Response, error) {
			opts := &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPHeader: http.Header{}}
			if tok != "" {
				opts.HTTPHeader.Set("Authorization", "Bearer "+tok)
			}
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			return ws.Dial(ctx, wsURL(gw, "GetShelf"), opts)
		}
		conn, _, err := dial(good)
		if err != nil {
			t.Fatalf("valid token: %v", err)
		}
		c := &wsCall{t: t, conn: conn, ctx: context.Background()}
		c.send(`{"name":"shelves/1"}`)
		if r := result(t, c.recv()); r["name"] != "shelves/1" {
			t.Fatalf("valid token: %v", r)
		}
		c.finish(codes.OK)
		conn.CloseNow()
		before := up.callCount()
		for _, a := range append(is.attacks(t), attack{"no token", ""}) {
			conn, resp, err := dial(a.token)
			if err == nil {
				conn.CloseNow()
				t.Errorf("%s: upgraded", a.name)
				continue
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: %v, want HTTP 401", a.name, err)
			}
		}
		if n := up.callCount(); n != before {
			t.Errorf("the upstream saw %d refused calls", n-before)
		}
	})
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestSecurityNetwork covers IP rules (and X-Forwarded-For spoofing),
// API keys, CORS preflights and request limits over REST.
func TestSecurityNetwork(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	routes := func(policies string) string {
		// One method per policy: a policy guards its method everywhere.
		return fmt.Sprintf(`routes:
  - get: /v1/lan/{parent=shelves/*}
    call: example.library.v1.LibraryService/ListBooks
    policies: [lan]
  - get: /v1/local/{parent=shelves/*}
    call: example.library.v1.LibraryService/BatchGetBooks
    policies: [local]
  - get: /v1/v6/{parent=shelves/*}
    call: example.library.v1.LibraryService/StreamBooks
    policies: [v6]
  - get: /v1/keyed/{name=shelves/*/books/*}
    call: example.library.v1.LibraryService/GetBook
    policies: [key]
policies:
  lan: {ip_filter: {allow: [10.0.0.0/8]}}
  local: {ip_filter: {allow: ["::ffff:127.0.0.1"], deny: [10.0.0.0/8]}}
  v6: {ip_filter: {allow: ["2001:db8::/32"]}}
  key: {api_key: {keys: [{sha256: %s, identity: svc-reports, scopes: [library.read]}]}}
  web:
    cors: {allowed_origins: ["https://app.example"], allowed_headers: [Authorization], exposed_headers: [X-Request-Id], max_age: 10m}
%s`, sha256Hex("k3y-for-reports"), policies)
	}
	cfg := func(security string) string {
		return libraryConfig(descriptorSetSchema(), up.addr, "    policies: [web]\n", routes("")+`security:
  identity_headers: {x-user-id: subject}
  limits: {max_url_bytes: 2048, max_header_bytes: 4096}
`+security+`http: {max_body_bytes: 1KiB}
`)
	}
	direct := startRosetta(t, cfg(""))
	proxied := startRosetta(t, cfg("  trusted_proxies: [127.0.0.1/32]\n"))

	t.Run("ip rules", func(t *testing.T) {
		tests := []struct {
			gw     *rosetta
			path   string
			header map[string]string
			ok     bool
		}{
			{direct, "/v1/local/shelves/1", nil, true},                                                           // IPv4 peer, IPv4-mapped rule
			{direct, "/v1/lan/shelves/1", nil, false},                                                            // not in 10/8
			{direct, "/v1/lan/shelves/1", map[string]string{"X-Forwarded-For": "10.1.2.3"}, false},               // spoofed from an untrusted peer
			{direct, "/v1/lan/shelves/1", map[string]string{"Forwarded": "for=10.1.2.3"}, false},                 // the same with Forwarded
			{direct, "/v1/local/shelves/1", map[string]string{"X-Forwarded-For": "10.1.2.3"}, true},              // the peer still counts
			{proxied, "/v1/lan/shelves/1", map[string]string{"X-Forwarded-For": "10.1.2.3"}, true},               // through a trusted proxy
			{proxied, "/v1/lan/shelves/1", map[string]string{"X-Forwarded-For": "10.1.2.3, 203.0.113.9"}, false}, // the nearest untrusted hop counts
			{proxied, "/v1/local/shelves/1", map[string]string{"X-Forwarded-For": "10.1.2.3"}, false},            // deny list
			{proxied, "/v1/v6/shelves/1", map[string]string{"X-Forwarded-For": "[2001:db8::7]:443"}, true},
			{proxied, "/v1/v6/shelves/1", map[string]string{"X-Forwarded-For": "2001:db9::7"}, false},
			{proxied, "/v1/v6/shelves/1", map[string]string{"X-Forwarded-For": "2001:db8::7%eth0"}, false},  // malformed: unknown client
			{proxied, "/v1/v6/shelves/1", map[string]string{"Forwarded": `for="[2001:db8::7]:443"`}, false}, // not the configured header (TestAttackClientIP)
			{proxied, "/v1/lan/shelves/1", map[string]string{"X-Forwarded-For": "::ffff:10.9.9.9"}, true},   // mapped, unmapped
		}
		for i, tt := range tests {
			before := up.callCount()
			r := do(t, tt.gw.base, request{method: "GET", path: tt.path, header: tt.header})
			if tt.ok {
				if r.status != http.StatusOK {
					t.Errorf("case %d (%s %v): status %d, want 200\n%s", i, tt.path, tt.header, r.status, r.body)
				}
				continue
			}
			wantRefused(t, r, up, before, http.StatusForbidden, int(codes.PermissionDenied))
		}
	})

	t.Run("api key", func(t *testing.T) {
		if r := do(t, direct.base, request{method: "GET", path: "/v1/keyed/shelves/1/books/dune", header: map[string]string{"X-Api-Key": "k3y-for-reports"}}); r.status != http.StatusOK || !strings.Contains(string(r.body), `"title":"Dune"`) {
			t.Errorf("with the key: %d %s", r.status, r.body)
		}
		if got := up.last(t, "/example.library.v1.LibraryService/GetBook").Get("x-user-id"); !reflect.DeepEqual(got, []string{"svc-reports"}) {
			t.Errorf("x-user-id %q, want [svc-reports]", got)
		}
		for _, h := range []map[string]string{{"X-Api-Key": "guess"}, {"X-Api-Key": sha256Hex("k3y-for-reports")}, nil} {
			before := up.callCount()
			r := do(t, direct.base, request{method: "GET", path: "/v1/keyed/shelves/1/books/dune", header: h})
			wantRefused(t, r, up, before, http.StatusUnauthorized, int(codes.Unauthenticated))
			if got := r.header.Get("Www-Authenticate"); !strings.HasPrefix(got, `ApiKey realm="rosetta", header="x-api-key"`) {
				t.Errorf("WWW-Authenticate %q", got)
			}
		}
	})

	t.Run("cors", func(t *testing.T) {
		preflight := func(origin, method, headers string) *response {
			h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
			if headers != "" {
				h["Access-Control-Request-Headers"] = headers
			}
			return do(t, direct.base, request{method: "OPTIONS", path: "/v1/shelves/1", header: h})
		}
		before := up.callCount()
		r := preflight("https://app.example", "GET", "authorization")
		if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			r.header.Get("Access-Control-Allow-Methods") != "GET" || r.header.Get("Access-Control-Allow-Headers") != "authorization" ||
			r.header.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("allowed preflight: %d %v", r.status, r.header)
		}
		for _, bad := range []struct{ origin, method, headers string }{
			{"https://evil.example", "GET", ""},
			{"https://app.example", "GET", "x-secret"},
		} {
			r := preflight(bad.origin, bad.method, bad.headers)
			wantStatus(t, r, http.StatusForbidden, int(codes.PermissionDenied), "")
			if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("refused preflight %v carries Access-Control-Allow-Origin %q", bad, got)
			}
		}
		if n := up.callCount(); n != before {
			t.Errorf("preflights reached the upstream (%d calls)", n-before)
		}
		r = do(t, direct.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Origin": "https://app.example"}})
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
			t.Errorf("allowed origin's GET: %d %v", r.status, r.header)
		}
		r = do(t, direct.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Origin": "https://evil.example"}})
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("refused origin's GET carries Access-Control-Allow-Origin")
		}
	})

	t.Run("limits", func(t *testing.T) {
		before := up.callCount()
		wantStatus(t, get(t, direct.base, "/v1/shelves/"+strings.Repeat("a", 3000)), http.StatusRequestURITooLong, int(codes.InvalidArgument), "")
		wantStatus(t, do(t, direct.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"X-Big": strings.Repeat("b", 5000)}}),
			http.StatusRequestHeaderFieldsTooLarge, int(codes.InvalidArgument), "")
		big := `{"theme":"` + strings.Repeat("x", 4096) + `"}`
		for _, chunked := range []bool{false, true} {
			r := do(t, direct.base, request{method: "POST", path: "/v1/shelves/1/books", body: big, chunked: chunked})
			wantStatus(t, r, http.StatusRequestEntityTooLarge, int(codes.ResourceExhausted), "")
		}
		if n := up.callCount(); n != before {
			t.Errorf("oversize requests reached the upstream (%d calls)", n-before)
		}
	})
}

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	cert, key := issueCert(t, "test CA", 1, nil)
	return &testCA{cert, key}
}

// issueCert makes a certificate for 127.0.0.1 signed by ca (self-signed, a
// CA, when ca is nil).
func issueCert(t testing.TB, cn string, serial int64, ca *testCA) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	parent, parentKey := tmpl, key
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		parent, parentKey = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// writeCert writes a certificate and its key as PEM files.
func writeCert(t testing.TB, certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSecurityConnsPerClient bounds the connections of one client: beyond
// max_conns_per_client a new connection is closed at once; once the client
// closes its connections it is served again.
func TestSecurityConnsPerClient(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", "security: {limits: {max_conns_per_client: 3}}\n"))
	addr := strings.TrimPrefix(gw.base, "http://")
	var conns []net.Conn
	eof := make(chan struct{}, 4)
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				eof <- struct{}{}
			}
		}()
	}
	select {
	case <-eof:
	case <-time.After(startTimeout):
		t.Error("4 connections held open, and the gateway closed none (max_conns_per_client: 3)")
	}
	for _, c := range conns {
		c.Close()
	}
	fresh := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "a request once the connections are closed", func() bool {
		resp, err := fresh.Get(gw.base + "/v1/shelves/1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestSecurityTLS serves over TLS with optional client certificates: the
// mtls policy names the caller after its certificate, a caller without one
// is refused, gRPC works over TLS, and a new server certificate is picked
// up without a restart.
func TestSecurityTLS(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	srvCert, srvKey := issueCert(t, "gateway", 100, ca)
	writeCert(t, certFile, keyFile, srvCert, srvKey)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600)
	cliCert, cliKey := issueCert(t, "device-7", 101, ca)

	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    policies: [certs]\n", fmt.Sprintf(`policies:
  certs: {mtls: {identity: subject_cn}}
security:
  tls: {cert_file: %q, key_file: %q, client_ca_file: %q, client_auth: optional}
  identity_headers: {x-user-id: subject, x-auth-method: method}
`, certFile, keyFile, caFile)))
	addr := strings.TrimPrefix(gw.base, "http://")
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	withCert := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}}}
	httpsGet := func(cfg *tls.Config) *response {
		c := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get("https://" + addr + "/v1/shelves/1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return &response{status: resp.StatusCode, header: resp.Header, body: b}
	}

	wantJSON(t, httpsGet(withCert), `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
	md := up.last(t, "/example.library.v1.LibraryService/GetShelf")
	if !reflect.DeepEqual(md.Get("x-user-id"), []string{"device-7"}) || !reflect.DeepEqual(md.Get("x-auth-method"), []string{"mtls"}) {
		t.Errorf("upstream identity metadata %v", md)
	}
	before := up.callCount()
	wantRefused(t, httpsGet(&tls.Config{RootCAs: roots}), up, before, http.StatusUnauthorized, int(codes.Unauthenticated))

	// gRPC over TLS (HTTP/2 by ALPN) with the client certificate.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(withCert)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if s, err := libraryv1.NewLibraryServiceClient(conn).GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/2"}); err != nil || s.GetName() != "shelves/2" {
		t.Errorf("gRPC over TLS: %v, %v", s, err)
	}

	// A new certificate on disk is served without a restart.
	next, nextKey := issueCert(t, "gateway", 200, ca)
	writeCert(t, certFile, keyFile, next, nextKey)
	waitFor(t, "the new server certificate", func() bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() == 200
	})
}

// TestSecurityJWTOverMQTT guards an uplink rule with the jwt policy: the
// token is the CONNECT password. A valid token's message reaches the
// upstream; each attack is refused (PUBACK reason 0x87 for MQTT 5) and
// never reaches it.
func TestSecurityJWTOverMQTT(t *testing.T) {
	t.Parallel()
	is := startIssuer(t)
	up := startIoTUpstream(t)
	broker := freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, "mqtt: {allow_anonymous: true}", fmt.Sprintf(`  - mqtt: secure/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    reply: secure/{device_id}/reply
    policies: [bearer]
policies:
  bearer:
    jwt: {issuer: %q, audience: [rosetta], algorithms: [RS256, ES256], jwks_url: %q}
`, testIssuer, is.url)))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	good := signToken(t, gojwt.SigningMethodES256, is.ec, "e1", claims(nil))
	replies := subscribe(t, broker, "mqttv5", "secure/dev1/reply")
	out, code := publish(t, broker, "mqttv5", "-u", "dev1", "-P", good, "-q", "1", "-t", "secure/dev1/telemetry", "-m", `{"id":"ok1","reading":{"temperature":20}}`)
	if code != 0 || !strings.Contains(out, "RC:0)") {
		t.Fatalf("valid token: status %d\n%s", code, out)
	}
	wantPayload(t, replies.next(t, 1), `{"deviceId":"dev1","id":"ok1","count":"1"}`)
	_, before := up.counts()
	for _, v := range mqttVersions {
		for _, a := range append(is.attacks(t), attack{"no token", ""}) {
			args := []string{"-u", "dev1", "-q", "1", "-t", "secure/dev1/telemetry", "-m", `{"id":"attack","reading":{"temperature":20}}`}
			if a.token != "" {
				args = append(args, "-P", a.token)
			}
			out, _ := publish(t, broker, v, args...)
			if v == "mqttv5" && !strings.Contains(out, "received PUBACK (Mid: 1, RC:135)") {
				t.Errorf("%s: want PUBACK reason 135 (not authorized)\n%s", a.name, out)
			}
		}
	}
	if _, calls := up.counts(); calls != before {
		t.Errorf("the upstream saw %d refused messages", calls-before)
	}
}

// TestSecurityCheck: `rosetta check` validates the policies and lists every
// problem, naming the policy.
func TestSecurityCheck(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, libraryConfig(descriptorSetSchema(), "127.0.0.1:1", "    policies: [bearer, nosuch]\n", `policies:
  bearer: {jwt: {issuer: https://id.example, algorithms: [none], jwks_url: "http://id.example/jwks"}}
  both: {ip_filter: {allow: [10.0.0.0/8]}, cors: {allowed_origins: ["*"]}}
  lan: {ip_filter: {allow: [10.0.0.0/33]}}
  admins: {authorize: {scopes: [admin]}}
security:
  policies: [admins]
  trusted_proxies: [not-a-cidr]
  identity_headers: {x-user: password}
  limits: {json_depth: 20000}
`))
	code, _, stderr := runRosetta(t, "check", "-config", path)
	if code != 1 {
		t.Fatalf("rosetta check: exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"policies.bearer", "policies.both", "policies.lan", "security.trusted_proxies", "security.identity_headers", "security.limits.json_depth", `unknown policy "nosuch"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not mention %s:\n%s", want, stderr)
		}
	}
}

// TestRateLimitShared runs two gateways sharing one Redis limit: across a
// flood of requests from concurrent clients to both, they admit no more
// than the burst plus the rate over the time taken, and no refusal asks to
// wait longer than one emission interval (a limiter admitting less than the
// rate would). Refusals are 429 with Retry-After, the RateLimit headers and
// a RESOURCE_EXHAUSTED status with a RetryInfo; refused calls never reach
// the upstream.
//
// The count of admitted calls has no lower bound: the limiter admits the
// rate only while calls keep arriving, and on a busy machine the clients or
// the gateways stall for longer than the burst lasts (seen: 557 admitted
// where the rate over the flooded window gave 581).
func TestRateLimitShared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	up := startObservedUpstream(t, "")
	// A burst of a second's worth rides out the stalls of a loaded machine
	// (capacity not used for longer than the burst lasts is lost).
	const rate, burst = 50.0, 50
	cfg := libraryConfig(descriptorSetSchema(), up.addr, "    policies: [shared]\n", fmt.Sprintf(`policies:
  shared: {rate_limit: {rate: 50/s, burst: %d, key: global, store: redis, replicas: 2}}
redis: {addr: %q, timeout: 5s}   # a loaded machine must not push decisions to the local fallback
`, burst, srv.Addr))
	gws := []*rosetta{startRosetta(t, cfg), startRosetta(t, cfg)}

	var mu sync.Mutex
	admitted, refused := 0, 0
	var firstRefusal *response
	var longestRetry time.Duration // of every refusal's RetryInfo
	// The decisions all fall between the first send and the last answer
	// (the outer window); the inner window, from the first answer to the
	// last send, is flooded throughout.
	var firstSend, lastSend, firstAnswer, lastAnswer time.Time
	const clients, perClient = 8, 150
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perClient {
				sent := time.Now()
				r := get(t, gws[(i+j)%2].base, "/v1/shelves/1")
				answered := time.Now()
				mu.Lock()
				if firstSend.IsZero() || sent.Before(firstSend) {
					firstSend = sent
				}
				if sent.After(lastSend) {
					lastSend = sent
				}
				if firstAnswer.IsZero() || answered.Before(firstAnswer) {
					firstAnswer = answered
				}
				if answered.After(lastAnswer) {
					lastAnswer = answered
				}
				switch r.status {
				case http.StatusOK:
					admitted++
				case http.StatusTooManyRequests:
					refused++
					if firstRefusal == nil {
						firstRefusal = r
					}
					longestRetry = max(longestRetry, retryDelay(t, r))
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if admitted+refused != clients*perClient {
		t.Fatalf("%d answers, want %d", admitted+refused, clients*perClient)
	}
	outer, inner := lastAnswer.Sub(firstSend).Seconds(), lastSend.Sub(firstAnswer).Seconds()
	hi := float64(burst) + rate*outer
	t.Logf("%d admitted, %d refused; windows %.3fs..%.3fs; the rate over the flooded window %.1f, the bound %.1f; longest RetryInfo %v",
		admitted, refused, inner, outer, rate*inner, hi, longestRetry)
	if float64(admitted) > hi {
		t.Errorf("%d admitted, want at most %.1f (the burst and the rate over %.3fs)", admitted, hi, outer)
	}
	// A refused call may go again once the next emission interval starts:
	// never later than one interval (Redis counts in microseconds).
	if interval := time.Duration(float64(time.Second) / rate); longestRetry > interval+10*time.Microsecond {
		t.Errorf("a refusal's RetryInfo asks to wait %v, longer than one emission interval %v", longestRetry, interval)
	}
	if n := up.callCount(); n != admitted {
		t.Errorf("the upstream saw %d calls, want the %d admitted", n, admitted)
	}
	if firstRefusal == nil {
		t.Fatal("no request was refused")
	}
	r := firstRefusal
	st := wantStatus(t, r, http.StatusTooManyRequests, int(codes.ResourceExhausted), "")
	if r.header.Get("Retry-After") == "" || r.header.Get("Ratelimit-Policy") != `"default";q=50;w=1` || !strings.HasPrefix(r.header.Get("Ratelimit"), `"default";r=0;t=`) {
		t.Errorf("429 headers %v", r.header)
	}
	hasRetryInfo := false
	for _, d := range st.Details {
		hasRetryInfo = hasRetryInfo || strings.Contains(string(d), "google.rpc.RetryInfo")
	}
	if !hasRetryInfo {
		t.Errorf("no RetryInfo detail: %s", r.body)
	}
	// An admitted answer carries the headers too.
	waitFor(t, "an admitted request", func() bool {
		r := get(t, gws[0].base, "/v1/shelves/1")
		if r.status == http.StatusOK && r.header.Get("Ratelimit-Policy") == "" {
			t.Fatalf("admitted answer without RateLimit-Policy: %v", r.header)
		}
		return r.status == http.StatusOK
	})
}

// retryDelay returns the RetryInfo delay of a refusal's google.rpc.Status.
func retryDelay(t testing.TB, r *response) time.Duration {
	var st struct {
		Details []struct {
			Type       string `json:"@type"`
			RetryDelay string `json:"retryDelay"`
		} `json:"details"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Errorf("refusal body is not a google.rpc.Status: %v\n%s", err, r.body)
		return 0
	}
	for _, d := range st.Details {
		if d.Type == "type.googleapis.com/google.rpc.RetryInfo" {
			delay, err := time.ParseDuration(d.RetryDelay)
			if err != nil {
				t.Errorf("RetryInfo delay %q: %v", d.RetryDelay, err)
			}
			return delay
		}
	}
	return 0
}

// TestRateLimitProtocols checks the refusal of a local limit over gRPC and
// MQTT: RESOURCE_EXHAUSTED, and PUBACK reason 0x97 (quota exceeded) for MQTT
// 5 devices, whose connection stays up.
func TestRateLimitProtocols(t *testing.T) {
	t.Parallel()
	t.Run("gRPC", func(t *testing.T) {
		up := startObservedUpstream(t, "")
		gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    policies: [tight]\n", `policies:
  tight: {rate_limit: {rate: 2/h, key: header:x-tenant}}
`))
		conn := gw.grpcConn(t)
		c := libraryv1.NewLibraryServiceClient(conn)
		var got []codes.Code
		var header metadata.MD
		for range 3 {
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme"), requestTimeout)
			_, err := c.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"}, grpc.Header(&header))
			cancel()
			got = append(got, status.Code(err))
		}
		if fmt.Sprint(got) != fmt.Sprint([]codes.Code{codes.OK, codes.OK, codes.ResourceExhausted}) {
			t.Errorf("codes %v", got)
		}
		if up.callCount() != 2 {
			t.Errorf("the upstream saw %d calls, want 2", up.callCount())
		}
		if v := header.Get("ratelimit-policy"); len(v) != 1 || v[0] != `"default";q=2;w=3600` {
			t.Errorf("ratelimit-policy header metadata %q", v)
		}
	})
	t.Run("WebSocket messages", func(t *testing.T) {
		up := startObservedUpstream(t, "")
		gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    policies: [chatty]\n", `policies:
  chatty: {rate_limit: {rate: 3/h}}
`))
		// The connection takes one unit, which covers the first message;
		// each further message takes one.
		c := dialWS(t, gw, "Chat", nil)
		for _, m := range []string{"one", "two", "three"} {
			c.send(`{"message": "` + m + `"}`)
			if r := result(t, c.recv()); r["message"] != m {
				t.Fatalf("echo %v, want %s", r, m)
			}
		}
		c.send(`{"message": "four"}`)
		c.finish(codes.ResourceExhausted)
	})
	t.Run("MQTT", func(t *testing.T) {
		up := startIoTUpstream(t)
		broker := freePort(t)
		startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, "mqtt: {allow_anonymous: true}", `  - mqtt: limited/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    policies: [per-device]
policies:
  per-device: {rate_limit: {rate: 1/h, key: client_id}}
`))
		waitFor(t, "the embedded broker", func() bool {
			c, err := net.Dial("tcp", broker)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		host, port, _ := net.SplitHostPort(broker)
		// One connection, two messages: the second is over the limit.
		cmd := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-d", "-i", "dev-9", "-u", "dev-9", "-q", "1", "-t", "limited/dev-9/telemetry", "-l")
		cmd.Stdin = strings.NewReader(`{"id":"r1","reading":{"temperature":1}}` + "\n" + `{"id":"r2","reading":{"temperature":1}}` + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "received PUBACK (Mid: 1, RC:0)") || !strings.Contains(string(out), "received PUBACK (Mid: 2, RC:151)") {
			t.Errorf("want PUBACK 0 then 151 (quota exceeded)\n%s", out)
		}
		if up.seen("r1") != 1 || up.seen("r2") != 0 {
			t.Errorf("upstream saw r1 %d times and r2 %d times, want 1 and 0", up.seen("r1"), up.seen("r2"))
		}
	})
}

// TestSecurityAPIKeyQuery checks API keys sent in the query string over
// REST: accepted only where the policy names the parameter, never seen by
// the upstream (gRPC or plain HTTP) and never logged.
func TestSecurityAPIKeyQuery(t *testing.T) {
	t.Parallel()
	const key = "qu3ry-k3y-for-reports"
	up := startObservedUpstream(t, "")
	var mu sync.Mutex
	var hookQueries []string
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hookQueries = append(hookQueries, r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(hooks.Close)
	keys := fmt.Sprintf("keys: [{sha256: %s, identity: svc-reports, scopes: [library.read]}]", sha256Hex(key))
	cfg := libraryConfig(descriptorSetSchema(), up.addr, "", fmt.Sprintf(`routes:
  - get: /v1/query/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
    policies: [query-key]
  - get: /v1/query/{parent=shelves/*}/books
    call: example.library.v1.LibraryService/ListBooks
    policies: [query-key]
  - get: /v1/header/{name=shelves/*/books/*}
    call: example.library.v1.LibraryService/GetBook
    policies: [header-key]
  - get: /hooks/{id}
    upstream: hooks
    policies: [query-key]
policies:
  query-key: {api_key: {query_param: api_key, %s}}
  header-key: {api_key: {%s}}
security:
  identity_headers: {x-user-id: subject}
`, keys, keys))
	cfg = edit(t, cfg, "upstreams:\n", fmt.Sprintf("upstreams:\n  hooks: {http: {url: %q}, timeout: 5s}\n", hooks.URL))
	gw := startRosetta(t, cfg)
	const shelf1 = `{"name":"shelves/1","theme":"fiction","bookCount":4}`

	// wantUpstreamClean asserts that the latest gRPC call's metadata holds
	// neither the key nor the parameter.
	wantUpstreamClean := func(t *testing.T, method string) {
		t.Helper()
		md := up.last(t, method)
		if got := md.Get("x-user-id"); !reflect.DeepEqual(got, []string{"svc-reports"}) {
			t.Errorf("x-user-id %q, want [svc-reports]", got)
		}
		for k, vs := range md {
			if strings.Contains(k, "api_key") || strings.Contains(strings.Join(vs, ","), key) {
				t.Errorf("the upstream saw the key in metadata %s: %q", k, vs)
			}
		}
	}

	t.Run("allowed", func(t *testing.T) {
		for _, q := range []string{"api_key=" + key, "%61pi_key=" + key} { // the name escaped or not
			wantJSON(t, get(t, gw.base, "/v1/query/shelves/1?"+q), shelf1)
			wantUpstreamClean(t, "/example.library.v1.LibraryService/GetShelf")
		}
		// The other parameters are still decoded, and the key is not an
		// unknown parameter.
		page := wantJSON(t, get(t, gw.base, "/v1/query/shelves/1/books?pageSize=1&api_key="+key), "{}", "books", "nextPageToken", "totalSize")
		if n := len(bookNames(t, page)); n != 1 {
			t.Errorf("%d books with pageSize=1, want 1", n)
		}
		wantUpstreamClean(t, "/example.library.v1.LibraryService/ListBooks")
	})

	t.Run("plain HTTP upstream", func(t *testing.T) {
		r := get(t, gw.base, "/hooks/7?x=1&api_key="+key+"&y=%20")
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200\n%s", r.status, r.body)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"x=1&y=%20"}; !reflect.DeepEqual(hookQueries, want) {
			t.Errorf("the HTTP upstream saw the queries %q, want %q", hookQueries, want)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, path := range []string{
			"/v1/query/shelves/1?api_key=guess",              // unknown key
			"/v1/query/shelves/1?api_key=" + sha256Hex(key),  // its hash
			"/v1/header/shelves/1/books/dune?api_key=" + key, // the policy reads only the header
		} {
			before := up.callCount()
			r := get(t, gw.base, path)
			wantRefused(t, r, up, before, http.StatusUnauthorized, int(codes.Unauthenticated))
			if strings.Contains(string(r.body), key) {
				t.Errorf("%s: the answer quotes the key: %s", path, r.body)
			}
		}
		if r := do(t, gw.base, request{method: "GET", path: "/v1/header/shelves/1/books/dune", header: map[string]string{"X-Api-Key": key}}); r.status != http.StatusOK {
			t.Errorf("the key in the header: %d %s", r.status, r.body)
		}
	})

	t.Run("WebSocket", func(t *testing.T) {
		wsGW := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    policies: [query-key]\n",
			fmt.Sprintf("policies:\n  query-key: {api_key: {query_param: api_key, %s}}\nsecurity: {identity_headers: {x-user-id: subject}}\n", keys)))
		dial := func(query string) (*ws.Conn, *http.Response, error) {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			return ws.Dial(ctx, wsURL(wsGW, "GetShelf")+query, &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
		}
		conn, _, err := dial("?api_key=" + key)
		if err != nil {
			t.Fatalf("key in the query: %v", err)
		}
		c := &wsCall{t: t, conn: conn, ctx: context.Background()}
		c.send(`{"name":"shelves/1"}`)
		if r := result(t, c.recv()); r["name"] != "shelves/1" {
			t.Fatalf("key in the query: %v", r)
		}
		c.finish(codes.OK)
		conn.CloseNow()
		wantUpstreamClean(t, "/example.library.v1.LibraryService/GetShelf")
		before := up.callCount()
		for _, q := range []string{"?api_key=guess", ""} {
			conn, resp, err := dial(q)
			if err == nil {
				conn.CloseNow()
				t.Errorf("%q: upgraded", q)
			} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%q: %v, want HTTP 401", q, err)
			}
		}
		if n := up.callCount(); n != before {
			t.Errorf("the upstream saw %d refused calls", n-before)
		}
		waitLogged(t, wsGW, "/ws/example.library.v1.LibraryService/GetShelf")
		if out := wsGW.stderr.String(); strings.Contains(out, key) {
			t.Errorf("rosetta's stderr holds the key:\n%s", out)
		}
	})

	t.Run("never logged", func(t *testing.T) {
		waitLogged(t, gw, "/v1/header/shelves/1")
		for name, out := range map[string]string{"stderr": gw.stderr.String(), "stdout": gw.stdout.String()} {
			if strings.Contains(out, key) || strings.Contains(out, sha256Hex(key)) {
				t.Errorf("rosetta's %s holds the key:\n%s", name, out)
			}
		}
	})
}

// waitLogged waits until rosetta's stderr has an access-log line for path:
// the line is written once the answer is sent.
func waitLogged(t *testing.T, gw *rosetta, path string) {
	t.Helper()
	waitFor(t, "an access-log line for "+path, func() bool {
		return strings.Contains(gw.stderr.String(), `"path":"`+path)
	})
}

// bookAt is a Book JSON document whose messages nest depth levels deep:
// each Book in the extra Any adds two (the Any and the Book in it), a
// publish time one.
func bookAt(depth int) string {
	switch depth {
	case 1:
		return `{"title":"Deep"}`
	case 2:
		return `{"title":"Deep","publishTime":"2020-01-01T00:00:00Z"}`
	}
	inner := bookAt(depth - 2)
	return `{"title":"Deep","extra":{"@type":"type.googleapis.com/example.library.v1.Book",` + inner[1:] + `}`
}

// TestSecurityJSONDepth checks security.limits.json_depth over REST: a
// request body nested one level too deep is refused before the upstream.
func TestSecurityJSONDepth(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", "security: {limits: {json_depth: 8}}\n"))
	r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books", body: bookAt(8)})
	if r.status != http.StatusOK {
		t.Fatalf("8 levels: status %d, want 200\n%s", r.status, r.body)
	}
	before := up.callCount()
	r = do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books", body: bookAt(9)})
	st := wantStatus(t, r, http.StatusBadRequest, int(codes.InvalidArgument), "book*")
	if !strings.Contains(st.Message, "deeper than 8") {
		t.Errorf("message %q does not name the nesting bound", st.Message)
	}
	if n := up.callCount(); n != before {
		t.Errorf("the upstream saw the refused call")
	}
}
