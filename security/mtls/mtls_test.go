package mtls_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/mtls"
)

func TestCerts(t *testing.T) {
	u, _ := url.Parse("spiffe://example.org/device/7")
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "device-7", Organization: []string{"Acme"}}, DNSNames: []string{"d7.example"}, URIs: []*url.URL{u}}
	bare := &x509.Certificate{Subject: pkix.Name{CommonName: "bare"}}
	tests := []struct {
		from string
		cert *x509.Certificate
		want string // subject; "" for no identity
		code codes.Code
	}{
		{"", cert, "device-7", codes.OK},
		{"subject", cert, "CN=device-7,O=Acme", codes.OK},
		{"san_dns", cert, "d7.example", codes.OK},
		{"san_uri", cert, "spiffe://example.org/device/7", codes.OK},
		{"san_email", cert, "", codes.Unauthenticated},
		{"san_uri", bare, "", codes.Unauthenticated},
		{"san_dns", nil, "", codes.OK},
	}
	for _, tt := range tests {
		m, err := mtls.New(mtls.Config{Identity: tt.from})
		if err != nil {
			t.Fatal(err)
		}
		c := &router.Call{}
		if tt.cert != nil {
			c.PeerCertificates = []*x509.Certificate{tt.cert}
		}
		var seen *router.Identity
		err = m.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error { seen = c.Identity; return nil })).Handle(context.Background(), c)
		if status.Code(err) != tt.code {
			t.Errorf("%s: code %v, want %v", tt.from, status.Code(err), tt.code)
		}
		got := ""
		if seen != nil {
			got = seen.Subject
		}
		if got != tt.want {
			t.Errorf("%s: subject %q, want %q", tt.from, got, tt.want)
		}
	}
	if _, err := mtls.New(mtls.Config{Identity: "serial"}); err == nil {
		t.Error("unknown identity source accepted")
	}
}
