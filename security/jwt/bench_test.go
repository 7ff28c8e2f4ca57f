package jwt_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/clientip"
	"github.com/rosettagw/rosetta/security/ipfilter"
	"github.com/rosettagw/rosetta/security/jwt"
)

// benchChain builds an IP rule and a JWT policy in front of a handler that
// does nothing, and a function making a fresh call from an allowed peer.
func benchChain(b *testing.B, jwksURL, alg string) (router.Handler, func() *router.Call) {
	b.Helper()
	ips := clientip.New(nil)
	f, err := ipfilter.New(ipfilter.Config{Allow: []string{"10.0.0.0/8", "192.0.2.0/24"}, Deny: []string{"192.0.2.66"}}, ips)
	if err != nil {
		b.Fatal(err)
	}
	v, err := jwt.New(jwt.Config{IssuerConfig: jwt.IssuerConfig{Issuer: iss, Audience: []string{aud}, Algorithms: []string{alg}, JWKSURL: jwksURL}},
		jwt.Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	h := router.Chain(router.HandlerFunc(func(context.Context, *router.Call) error { return nil }), f.Wrap, v.Wrap)
	peer := netip.MustParseAddrPort("192.0.2.10:5555")
	return h, func() *router.Call { return &router.Call{Peer: peer, Incoming: metadata.MD{}} }
}

// BenchmarkChain measures the policy chain of a protected route: an IP
// rule, then a JWT verified with a cached key.
func BenchmarkChain(b *testing.B) {
	keys(b)
	for _, alg := range []struct {
		name   string
		method gojwt.SigningMethod
		key    any
		jwk    map[string]any
	}{
		{"RS256", gojwt.SigningMethodRS256, rsaKey, rsaJWK("k", &rsaKey.PublicKey)},
		{"ES256", gojwt.SigningMethodES256, ecKey, ecJWK("k", &ecKey.PublicKey)},
	} {
		b.Run(alg.name, func(b *testing.B) {
			srv := newJWKS(b, alg.jwk)
			h, call := benchChain(b, srv.URL, alg.method.Alg())
			tok := "Bearer " + sign(b, alg.method, alg.key, "k", claims(nil))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c := call()
				c.Incoming["authorization"] = []string{tok}
				if err := h.Handle(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
