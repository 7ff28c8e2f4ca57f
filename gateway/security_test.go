package gateway

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/authz"
)

// TestChainOrder checks the order chain gives a method's policies,
// whatever order they are listed in: network rules and limits keyed without
// identity, authentication, the authorisation gate, identity-keyed limits.
func TestChainOrder(t *testing.T) {
	var trace []string
	record := func(name string) router.Middleware {
		return func(next router.Handler) router.Handler {
			return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
				trace = append(trace, name)
				return next.Handle(ctx, c)
			})
		}
	}
	anonymous := func(challenges []string) (router.Middleware, error) {
		g, err := authz.New(authz.Config{Anonymous: true}, challenges)
		if err != nil {
			return nil, err
		}
		return g.Wrap, nil
	}
	g := &builder{Generation: &Generation{cfg: &Config{}, sec: &securityParts{policies: map[string]*security.Policy{
		"ip":      {Phase: security.PhaseNetwork, Wrap: record("ip")},
		"ip-rate": {Phase: security.PhaseNetwork, Wrap: record("ip-rate")},
		"jwt":     {Phase: security.PhaseAuthenticate, Wrap: record("jwt"), Challenge: "Bearer"},
		"key":     {Phase: security.PhaseAuthenticate, Wrap: record("key")},
		"user":    {Phase: security.PhaseIdentityLimit, Wrap: record("user")},
		"open":    {Phase: security.PhaseAuthorize, Authorize: anonymous, Anonymous: true},
	}}}}
	final := router.HandlerFunc(func(context.Context, *router.Call) error { trace = append(trace, "dispatch"); return nil })
	tests := []struct {
		names []string
		want  []string
		code  codes.Code // for an anonymous call
	}{
		{[]string{"ip"}, []string{"ip", "dispatch"}, codes.OK},
		{[]string{"ip", "user", "jwt", "ip-rate", "key"}, []string{"ip", "ip-rate", "jwt", "key"}, codes.Unauthenticated}, // the default gate refuses before "user"
		{[]string{"ip", "user", "open", "jwt", "ip"}, []string{"ip", "jwt", "user", "dispatch"}, codes.OK},
	}
	for _, tt := range tests {
		trace = nil
		h, _, _, _, err := g.chain(&chainSpec{name: "m", names: tt.names, final: final})
		if err != nil {
			t.Fatal(err)
		}
		err = h.Handle(context.Background(), &router.Call{Incoming: metadata.MD{}, Metadata: metadata.MD{}})
		if status.Code(err) != tt.code {
			t.Errorf("%v: code %v, want %v", tt.names, status.Code(err), tt.code)
		}
		if !reflect.DeepEqual(trace, tt.want) {
			t.Errorf("%v: ran %v, want %v", tt.names, trace, tt.want)
		}
	}
	if _, _, _, _, err := g.chain(&chainSpec{names: []string{"open"}, final: final}); err != nil {
		t.Errorf("anonymous authorize without authentication: %v", err)
	}
	g.sec.policies["admins"] = &security.Policy{Phase: security.PhaseAuthorize, Authorize: anonymous}
	if _, _, _, _, err := g.chain(&chainSpec{names: []string{"admins"}, final: final}); err == nil {
		t.Error("an authorize policy without authentication was accepted")
	}
}
