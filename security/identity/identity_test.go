package identity_test

import (
	"context"
	"net/url"
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/identity"
)

func TestHeaders(t *testing.T) {
	h, err := identity.New(identity.Config{
		"X-User-Id": "subject", "x-auth-method": "method", "x-scopes": "scopes",
		"x-email": "claim:email", "x-tenant": "claim:org.tenant", "x-admin": "claim:admin", "x-groups": "claim:groups", "x-missing": "claim:nope",
	})
	if err != nil {
		t.Fatal(err)
	}
	run := func(c *router.Call) metadata.MD {
		var md metadata.MD
		h.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error { md = c.Metadata; return nil })).Handle(context.Background(), c)
		return md
	}
	spoofed := func() metadata.MD {
		return metadata.MD{"x-user-id": {"mallory"}, "x-scopes": {"admin"}, "x-missing": {"spoofed"}, "x-request-id": {"r1"}}
	}

	md := run(&router.Call{Metadata: spoofed()})
	if want := (metadata.MD{"x-request-id": {"r1"}}); !reflect.DeepEqual(md, want) {
		t.Errorf("anonymous call: metadata %v, want %v (client copies stripped)", md, want)
	}

	md = run(&router.Call{Metadata: spoofed(), Identity: &router.Identity{Subject: "alice", Method: "jwt", Scopes: []string{"a", "b"}, Claims: map[string]any{
		"email": "alice@example.com", "org": map[string]any{"tenant": "acme"}, "admin": true, "groups": []any{"x", "y"},
	}}})
	want := metadata.MD{
		"x-request-id": {"r1"}, "x-user-id": {"alice"}, "x-auth-method": {"jwt"}, "x-scopes": {"a b"},
		"x-email": {"alice@example.com"}, "x-tenant": {"acme"}, "x-admin": {"true"}, "x-groups": {`["x","y"]`},
	}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("metadata\n got %v\nwant %v", md, want)
	}

	md = run(&router.Call{Identity: &router.Identity{Subject: "svc", Method: "api_key"}})
	if want := (metadata.MD{"x-user-id": {"svc"}, "x-auth-method": {"api_key"}}); !reflect.DeepEqual(md, want) {
		t.Errorf("api key identity: %v, want %v", md, want)
	}

	for _, bad := range []identity.Config{{"x-a": "password"}, {"grpc-status": "subject"}, {"x-a": "claim:"}} {
		if _, err := identity.New(bad); err == nil {
			t.Errorf("New(%v) accepted", bad)
		}
	}
}

func TestEncode(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                 "alice",
		"a b/c:d@e.f":           "a b/c:d@e.f",
		"50%":                   "50%25",
		"José":                  "Jos%C3%A9",
		"evil\r\nX-Admin: true": "evil%0D%0AX-Admin: true",
		"\x00\x7f\xff":          "%00%7F%FF",
	} {
		if got := identity.Encode(in); got != want {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
		if dec, err := url.PathUnescape(identity.Encode(in)); err != nil || dec != in {
			t.Errorf("PathUnescape(Encode(%q)) = %q, %v", in, dec, err)
		}
	}
	h, _ := identity.New(identity.Config{"x-user-id": "subject", "x-email": "claim:email"})
	var md metadata.MD
	h.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error { md = c.Metadata; return nil })).Handle(context.Background(),
		&router.Call{Identity: &router.Identity{Subject: "Zoë", Claims: map[string]any{"email": "a\nb@example.com"}}})
	if want := (metadata.MD{"x-user-id": {"Zo%C3%AB"}, "x-email": {"a%0Ab@example.com"}}); !reflect.DeepEqual(md, want) {
		t.Errorf("metadata %v, want %v", md, want)
	}
}
