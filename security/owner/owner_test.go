package owner_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/owner"
)

func TestStep(t *testing.T) {
	reached := 0
	h := owner.Step(router.HandlerFunc(func(context.Context, *router.Call) error { reached++; return nil }))
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "dev-cert"}}
	tests := []struct {
		name string
		call router.Call
		code codes.Code
	}{
		{"no owner", router.Call{Credentials: &router.Credentials{Username: "x"}}, codes.OK},
		{"username matches", router.Call{Owner: "dev-1", Credentials: &router.Credentials{Username: "dev-1", ClientID: "c"}}, codes.OK},
		{"username differs", router.Call{Owner: "dev-1", Credentials: &router.Credentials{Username: "dev-2", ClientID: "dev-1"}}, codes.PermissionDenied},
		{"client id without username", router.Call{Owner: "dev-1", Credentials: &router.Credentials{ClientID: "dev-1"}}, codes.OK},
		{"certificate wins", router.Call{Owner: "dev-cert", PeerCertificates: []*x509.Certificate{cert}, Credentials: &router.Credentials{Username: "dev-1"}}, codes.OK},
		{"anonymous", router.Call{Owner: "dev-1"}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		reached = 0
		err := h.Handle(context.Background(), &tt.call)
		if status.Code(err) != tt.code || (err == nil) != (reached == 1) {
			t.Errorf("%s: code %v (reached %d), want %v", tt.name, status.Code(err), reached, tt.code)
		}
	}
}
