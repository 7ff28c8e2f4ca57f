package authz_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/authz"
)

func TestGate(t *testing.T) {
	alice := &router.Identity{Subject: "alice", Scopes: []string{"read", "write"}, Claims: map[string]any{
		"roles":        []any{"editor"},
		"realm_access": map[string]any{"roles": []any{"admin", "auditor"}},
		"groups":       "ops dev",
	}}
	tests := []struct {
		name string
		cfg  authz.Config
		id   *router.Identity
		want codes.Code
	}{
		{"identity required", authz.Config{}, nil, codes.Unauthenticated},
		{"identity present", authz.Config{}, alice, codes.OK},
		{"anonymous", authz.Config{Anonymous: true}, nil, codes.OK},
		{"scopes held", authz.Config{Scopes: []string{"read", "write"}}, alice, codes.OK},
		{"scope missing", authz.Config{Scopes: []string{"read", "admin"}}, alice, codes.PermissionDenied},
		{"scopes without identity", authz.Config{Scopes: []string{"read"}}, nil, codes.Unauthenticated},
		{"role held", authz.Config{Roles: []string{"viewer", "editor"}}, alice, codes.OK},
		{"role missing", authz.Config{Roles: []string{"viewer"}}, alice, codes.PermissionDenied},
		{"nested roles claim", authz.Config{Roles: []string{"auditor"}, RolesClaim: "realm_access.roles"}, alice, codes.OK},
		{"string roles claim", authz.Config{Roles: []string{"dev"}, RolesClaim: "groups"}, alice, codes.OK},
		{"missing roles claim", authz.Config{Roles: []string{"dev"}, RolesClaim: "nope.deeper"}, alice, codes.PermissionDenied},
		{"roles of a keyed caller", authz.Config{Roles: []string{"editor"}}, &router.Identity{Subject: "svc", Method: "api_key"}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := authz.New(tt.cfg, []string{`Bearer realm="r"`})
			if err != nil {
				t.Fatal(err)
			}
			reached := false
			c := &router.Call{Identity: tt.id}
			err = g.Wrap(router.HandlerFunc(func(context.Context, *router.Call) error { reached = true; return nil })).Handle(context.Background(), c)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			if reached != (tt.want == codes.OK) {
				t.Errorf("next reached = %v", reached)
			}
			if wa := c.ResponseHeader.Get("www-authenticate"); (tt.want == codes.Unauthenticated) != (len(wa) == 1 && wa[0] == `Bearer realm="r"`) {
				t.Errorf("WWW-Authenticate %q", wa)
			}
		})
	}
	if _, err := authz.New(authz.Config{Anonymous: true, Scopes: []string{"x"}}, nil); err == nil {
		t.Error("anonymous with scopes accepted")
	}
}
