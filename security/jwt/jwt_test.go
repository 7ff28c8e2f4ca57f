package jwt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/jwt"
)

// Keys shared by the tests (RSA generation is slow).
var (
	rsaKey, rsaKey2 *rsa.PrivateKey
	ecKey           *ecdsa.PrivateKey
	edKey           ed25519.PrivateKey
	hmacSecret      = []byte("0123456789abcdef0123456789abcdef")
	keysOnce        sync.Once
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaKey2, _ = rsa.GenerateKey(rand.Reader, 2048)
		ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, edKey, _ = ed25519.GenerateKey(rand.Reader)
	})
}

// now is the fixed clock of the tests.
var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const iss, aud = "https://id.example", "rosetta"

func claims(extra map[string]any) gojwt.MapClaims {
	c := gojwt.MapClaims{"iss": iss, "aud": aud, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(), "scope": "books.read books.write"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func sign(t testing.TB, m gojwt.SigningMethod, key any, kid string, c gojwt.MapClaims) string {
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

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, _ := k.Bytes()
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
}

// jwksServer serves a key set that a test can replace, and counts fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    []map[string]any
}

func newJWKS(t testing.TB, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]any) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemPublic(t testing.TB, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// run passes a call with tok as bearer token through v and returns the
// identity the next handler saw (nil when not reached) and the error.
func run(v *jwt.Verifier, c *router.Call) (*router.Identity, error) {
	var seen *router.Identity
	reached := false
	err := v.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		reached, seen = true, c.Identity
		return nil
	})).Handle(context.Background(), c)
	if err == nil && !reached {
		return nil, errors.New("next handler not reached")
	}
	return seen, err
}

func bearerCall(tok string) *router.Call {
	return &router.Call{Incoming: metadata.Pairs("authorization", "Bearer "+tok)}
}

// reason returns the ErrorInfo reason of a refusal.
func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

func TestVerify(t *testing.T) {
	keys(t)
	srv := newJWKS(t, rsaJWK("r1", &rsaKey.PublicKey), ecJWK("e1", &ecKey.PublicKey))
	edFile := writeFile(t, "ed.pem", pemPublic(t, edKey.Public()))
	secretFile := writeFile(t, "hs.jwk", []byte(`{"kty":"oct","kid":"h1","k":"`+b64(hmacSecret)+`"}`))
	v, err := jwt.New(jwt.Config{
		IssuerConfig: jwt.IssuerConfig{Issuer: iss, Audience: []string{aud, "other"}, Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA"}, JWKSURL: srv.URL, KeyFiles: []string{edFile}},
		Issuers: []jwt.IssuerConfig{
			{Issuer: "https://hs.example", Audience: []string{aud}, Algorithms: []string{"HS256"}, KeyFiles: []string{secretFile}},
			// A misconfigured issuer allowing HMAC and RSA with an RSA key:
			// the key type still refuses algorithm confusion.
			{Issuer: "https://mixed.example", Audience: []string{aud}, Algorithms: []string{"RS256", "HS256"}, KeyFiles: []string{writeFile(t, "rsa.pem", pemPublic(t, &rsaKey.PublicKey))}},
		},
		Leeway: 30 * time.Second,
	}, jwt.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	good := sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64([]byte(`{"iss":"`+iss+`","aud":"`+aud+`","sub":"admin","exp":9999999999}`)) + "." + parts[2]
	noneTok := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	tests := []struct {
		name   string
		tok    string
		reason string // "" when the token is valid
	}{
		{"RS256", good, ""},
		{"PS256", sign(t, gojwt.SigningMethodPS256, rsaKey, "r1", claims(nil)), ""},
		{"ES256", sign(t, gojwt.SigningMethodES256, ecKey, "e1", claims(nil)), ""},
		{"EdDSA from a PEM file, no kid", sign(t, gojwt.SigningMethodEdDSA, edKey, "", claims(nil)), ""},
		{"HS256 from a JWK file", sign(t, gojwt.SigningMethodHS256, hmacSecret, "h1", claims(map[string]any{"iss": "https://hs.example"})), ""},
		{"expired within leeway", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), ""},
		{"second audience", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"aud": []string{"x", "other"}})), ""},

		{"alg none", noneTok, "TOKEN_SIGNATURE_INVALID"},
		{"alg none on the mixed issuer", sign(t, gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, "", claims(map[string]any{"iss": "https://mixed.example"})), "TOKEN_SIGNATURE_INVALID"},
		{"HS256 signed with the RSA public key", sign(t, gojwt.SigningMethodHS256, rsaPEM, "r1", claims(nil)), "TOKEN_SIGNATURE_INVALID"},
		{"HS256 with the RSA public key, issuer allowing both", sign(t, gojwt.SigningMethodHS256, rsaPEM, "", claims(map[string]any{"iss": "https://mixed.example"})), "TOKEN_KEY_UNKNOWN"},
		{"ES256 key used with wrong alg", sign(t, gojwt.SigningMethodES384, mustEC384(t), "e1", claims(nil)), "TOKEN_SIGNATURE_INVALID"},
		{"expired", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"exp": now.Add(-time.Minute).Unix()})), "TOKEN_EXPIRED"},
		{"not yet valid", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), "TOKEN_NOT_YET_VALID"},
		{"issued in the future", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"iat": now.Add(time.Hour).Unix()})), "TOKEN_NOT_YET_VALID"},
		{"no exp", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"exp": nil})), "TOKEN_CLAIM_MISSING"},
		{"wrong iss", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"iss": "https://evil.example"})), "TOKEN_ISSUER_INVALID"},
		{"wrong aud", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"aud": "someone-else"})), "TOKEN_AUDIENCE_INVALID"},
		{"no aud", sign(t, gojwt.SigningMethodRS256, rsaKey, "r1", claims(map[string]any{"aud": nil})), "TOKEN_CLAIM_MISSING"},
		{"unknown kid", sign(t, gojwt.SigningMethodRS256, rsaKey2, "r9", claims(nil)), "TOKEN_KEY_UNKNOWN"},
		{"known kid, other key", sign(t, gojwt.SigningMethodRS256, rsaKey2, "r1", claims(nil)), "TOKEN_SIGNATURE_INVALID"},
		{"tampered payload", tampered, "TOKEN_SIGNATURE_INVALID"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2][:8]) + parts[2][8:], "TOKEN_SIGNATURE_INVALID"},
		{"truncated: two segments", parts[0] + "." + parts[1], "TOKEN_MALFORMED"},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:100], "TOKEN_SIGNATURE_INVALID"},
		{"non-base64 header", "!!!." + parts[1] + "." + parts[2], "TOKEN_MALFORMED"},
		{"non-base64 payload", parts[0] + ".@@@." + parts[2], "TOKEN_MALFORMED"},
		{"padded base64", parts[0] + "." + parts[1] + "==." + parts[2], "TOKEN_MALFORMED"},
		{"header not JSON", b64([]byte("hello")) + "." + parts[1] + "." + parts[2], "TOKEN_MALFORMED"},
		{"empty", "", "TOKEN_MALFORMED"},
		{"8 KiB junk", strings.Repeat("A", 8<<10), "TOKEN_MALFORMED"},
		{"8 KiB junk with dots", strings.Repeat("A.", 4<<10), "TOKEN_MALFORMED"},
		{"over the size bound", strings.Repeat("A", 9<<10), "TOKEN_TOO_LARGE"},
		{"unknown issuer", sign(t, gojwt.SigningMethodHS256, hmacSecret, "h1", claims(map[string]any{"iss": "https://nobody.example"})), "TOKEN_ISSUER_INVALID"},
		{"HS token for the RSA issuer", sign(t, gojwt.SigningMethodHS256, hmacSecret, "h1", claims(nil)), "TOKEN_SIGNATURE_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bearerCall(tt.tok)
			id, err := run(v, c)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("valid token refused: %v", err)
				}
				if id == nil || id.Subject != "alice" || id.Method != "jwt" || strings.Join(id.Scopes, " ") != "books.read books.write" {
					t.Errorf("identity %+v", id)
				}
				return
			}
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("code %v (%v), want Unauthenticated", status.Code(err), err)
			}
			if got := reason(err); got != tt.reason {
				t.Errorf("reason %q (%v), want %q", got, err, tt.reason)
			}
			if strings.Contains(status.Convert(err).Message(), tt.tok[:min(len(tt.tok), 16)]) && tt.tok != "" {
				t.Errorf("the message quotes the token: %q", status.Convert(err).Message())
			}
			wa := c.ResponseHeader.Get("www-authenticate")
			if len(wa) != 1 || !strings.HasPrefix(wa[0], `Bearer realm="rosetta", error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", wa)
			}
		})
	}
}

func mustEC384(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNoTokenPassesUnauthenticated(t *testing.T) {
	keys(t)
	v, err := jwt.New(jwt.Config{IssuerConfig: jwt.IssuerConfig{Issuer: iss, Audience: []string{aud}, Algorithms: []string{"EdDSA"}, KeyFiles: []string{writeFile(t, "ed.pem", pemPublic(t, edKey.Public()))}}}, jwt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*router.Call{
		{Incoming: metadata.MD{}},
		{Incoming: metadata.Pairs("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")},
		{Incoming: metadata.MD{}, Credentials: &router.Credentials{Username: "u", Password: []byte("plain-password")}},
	} {
		id, err := run(v, c)
		if err != nil || id != nil {
			t.Errorf("%v: identity %v, error %v; want to pass unauthenticated", c.Incoming, id, err)
		}
	}
}

func TestMQTTPassword(t *testing.T) {
	keys(t)
	v, err := jwt.New(jwt.Config{IssuerConfig: jwt.IssuerConfig{Issuer: iss, Audience: []string{aud}, Algorithms: []string{"EdDSA"}, KeyFiles: []string{writeFile(t, "ed.pem", pemPublic(t, edKey.Public()))}}},
		jwt.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, gojwt.SigningMethodEdDSA, edKey, "", claims(nil))
	id, err := run(v, &router.Call{Incoming: metadata.MD{}, Credentials: &router.Credentials{ClientID: "dev1", Password: []byte(tok)}})
	if err != nil || id == nil || id.Subject != "alice" {
		t.Errorf("identity %v, error %v", id, err)
	}
	_, err = run(v, &router.Call{Incoming: metadata.MD{}, Credentials: &router.Credentials{Password: []byte(tok[:len(tok)-4])}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("truncated token as password: %v", err)
	}
}

// TestCredentialsOfACall: one Authorization at most; an MQTT message's
// credential is its CONNECT's, never a user property; the upstream
// receives the token verified, and only when the ingress marked the call.
func TestCredentialsOfACall(t *testing.T) {
	keys(t)
	v, err := jwt.New(jwt.Config{IssuerConfig: jwt.IssuerConfig{Issuer: iss, Audience: []string{aud}, Algorithms: []string{"EdDSA"}, KeyFiles: []string{writeFile(t, "ed.pem", pemPublic(t, edKey.Public()))}}},
		jwt.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, gojwt.SigningMethodEdDSA, edKey, "", claims(nil))
	for _, in := range []metadata.MD{
		{"authorization": {"Bearer " + tok, "Bearer forged.forged.forged"}},
		{"authorization": {"Bearer " + tok}, "grpc-metadata-authorization": {"Bearer forged.forged.forged"}},
	} {
		if _, err := run(v, &router.Call{Incoming: in}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want INVALID_ARGUMENT", in, err)
		}
	}
	// MQTT: an authorization user property is not a credential.
	id, err := run(v, &router.Call{Protocol: router.MQTT, Incoming: metadata.Pairs("authorization", "Bearer "+tok),
		Credentials: &router.Credentials{ClientID: "dev1", Username: "dev1", Password: []byte("plain-password")}})
	if err != nil || id != nil {
		t.Errorf("MQTT with a token user property: identity %v, error %v; want unauthenticated", id, err)
	}
	// Forwarding: the verified token, only when marked.
	for _, marked := range []bool{false, true} {
		c := &router.Call{Incoming: metadata.Pairs("authorization", "bearer   "+tok), Metadata: metadata.MD{}}
		if marked {
			c.Incoming[security.ForwardAuthorization] = []string{"1"}
		}
		if _, err := run(v, c); err != nil {
			t.Fatal(err)
		}
		got := c.Metadata["authorization"]
		if marked && (len(got) != 1 || got[0] != "Bearer "+tok) {
			t.Errorf("marked call forwards %q, want the verified token", got)
		}
		if !marked && len(got) != 0 {
			t.Errorf("unmarked call forwards %q", got)
		}
	}
	// An MQTT password is verified, and never forwarded.
	c := &router.Call{Protocol: router.MQTT, Incoming: metadata.MD{security.ForwardAuthorization: {"1"}}, Metadata: metadata.MD{}, Credentials: &router.Credentials{Password: []byte(tok)}}
	if id, err := run(v, c); err != nil || id == nil || len(c.Metadata["authorization"]) != 0 {
		t.Errorf("MQTT password: identity %v, error %v, metadata %v", id, err, c.Metadata)
	}
}

// TestJWKSRotation rotates the issuer's keys: the new kid is picked up
// without a restart, and a flood of unknown kids fetches the key set at
// most once per minimum interval.
func TestJWKSRotation(t *testing.T) {
	keys(t)
	srv := newJWKS(t, rsaJWK("k1", &rsaKey.PublicKey))
	clk := &clock{t: now}
	v, err := jwt.New(jwt.Config{IssuerConfig: jwt.IssuerConfig{
		Issuer: iss, Audience: []string{aud}, Algorithms: []string{"RS256"}, JWKSURL: srv.URL,
		JWKSMinRefreshInterval: 10 * time.Second, JWKSCacheTTL: time.Hour,
	}}, jwt.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	check := func(tok, wantReason string) {
		t.Helper()
		_, err := run(v, bearerCall(tok))
		if got := reason(err); got != wantReason {
			t.Fatalf("reason %q (%v), want %q", got, err, wantReason)
		}
	}
	long := claims(map[string]any{"exp": now.Add(48 * time.Hour).Unix()})
	old := sign(t, gojwt.SigningMethodRS256, rsaKey, "k1", long)
	check(old, "")
	check(old, "")
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}

	// Bogus kids within the minimum interval: no more fetches.
	for i := range 50 {
		check(sign(t, gojwt.SigningMethodRS256, rsaKey2, "bogus"+string(rune('a'+i%26)), claims(nil)), "TOKEN_KEY_UNKNOWN")
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after a flood of unknown kids, want 1", n)
	}

	// The issuer rotates to k2; once the interval has passed, the first
	// token with k2 refreshes the set.
	srv.set(rsaJWK("k2", &rsaKey2.PublicKey))
	clk.add(11 * time.Second)
	fresh := sign(t, gojwt.SigningMethodRS256, rsaKey2, "k2", long)
	check(fresh, "")
	check(fresh, "")
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	check(old, "TOKEN_KEY_UNKNOWN") // k1 is gone, and the refresh is rate-limited

	// After the TTL the set is fetched again even for known kids.
	clk.add(time.Hour)
	check(fresh, "")
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after the TTL, want 3", n)
	}

	// A failing JWKS keeps the previous keys.
	srv.Close()
	clk.add(time.Hour)
	check(fresh, "")
}

func TestConfigErrors(t *testing.T) {
	keys(t)
	pemFile := writeFile(t, "k.pem", pemPublic(t, &rsaKey.PublicKey))
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	base := jwt.IssuerConfig{Issuer: iss, Audience: []string{aud}, Algorithms: []string{"RS256"}, KeyFiles: []string{pemFile}}
	if _, err := jwt.New(jwt.Config{IssuerConfig: base}, jwt.Options{}); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for name, mutate := range map[string]func(*jwt.Config){
		"no issuer":       func(c *jwt.Config) { c.Issuer = "" },
		"no audience":     func(c *jwt.Config) { c.Audience = nil },
		"no algorithms":   func(c *jwt.Config) { c.Algorithms = nil },
		"alg none":        func(c *jwt.Config) { c.Algorithms = []string{"none"} },
		"no keys":         func(c *jwt.Config) { c.KeyFiles = nil },
		"plain http jwks": func(c *jwt.Config) { c.JWKSURL = "http://id.example/jwks" },
		"missing file":    func(c *jwt.Config) { c.KeyFiles = []string{"/nonexistent"} },
		"small RSA key":   func(c *jwt.Config) { c.KeyFiles = []string{writeFile(t, "s.pem", pemPublic(t, &small.PublicKey))} },
		"short secret": func(c *jwt.Config) {
			c.KeyFiles = []string{writeFile(t, "s.jwk", []byte(`{"kty":"oct","k":"c2hvcnQ"}`))}
		},
		"duplicate issuer": func(c *jwt.Config) { c.Issuers = []jwt.IssuerConfig{base} },
		"negative leeway":  func(c *jwt.Config) { c.Leeway = -time.Second },
	} {
		cfg := jwt.Config{IssuerConfig: base}
		cfg.Algorithms = append([]string(nil), base.Algorithms...)
		mutate(&cfg)
		if _, err := jwt.New(cfg, jwt.Options{}); err == nil {
			t.Errorf("%s: New accepted the configuration", name)
		}
	}
}
