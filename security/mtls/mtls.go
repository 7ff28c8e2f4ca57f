// Package mtls is the mtls policy: it names the caller after the client
// certificate the listener verified (see package servertls for listeners
// that ask for one).
package mtls

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Certs authenticates calls by client certificate.
type Certs struct {
	from string
}

// Wrap is the policy as a router.Middleware. A call without a certificate
// passes unauthenticated, for the authz policy to judge; a certificate
// without the configured name is refused with UNAUTHENTICATED.
func (m *Certs) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		if len(c.PeerCertificates) == 0 {
			return next.Handle(ctx, c)
		}
		name := m.name(c.PeerCertificates[0])
		if name == "" {
			return security.Deny(codes.Unauthenticated, "CERTIFICATE_IDENTITY_MISSING", "the client certificate has no "+m.from)
		}
		if c.Identity == nil {
			c.Identity = &router.Identity{Subject: name, Method: "mtls"}
		}
		return next.Handle(ctx, c)
	})
}

func (m *Certs) name(cert *x509.Certificate) string {
	switch m.from {
	case "subject":
		return cert.Subject.String()
	case "san_dns":
		return first(cert.DNSNames)
	case "san_email":
		return first(cert.EmailAddresses)
	case "san_uri":
		if len(cert.URIs) > 0 {
			return cert.URIs[0].String()
		}
		return ""
	}
	return cert.Subject.CommonName
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}
