package main

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/authz"
)

// TestChainOrder checks the order wrap gives a route's policies, whatever
// order they are listed in: network rules and limits keyed without identity,
// authentication, the authorisation gate, identity-keyed limits.
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
	s := &securityParts{policies: map[string]*policy{
		"ip":      {name: "ip", phase: phaseNetwork, wrap: record("ip")},
		"ip-rate": {name: "ip-rate", phase: phaseNetwork, wrap: record("ip-rate")},
		"jwt":     {name: "jwt", phase: phaseAuthenticate, wrap: record("jwt"), challenge: "Bearer"},
		"key":     {name: "key", phase: phaseAuthenticate, wrap: record("key")},
		"user":    {name: "user", phase: phaseIdentityLimit, wrap: record("user")},
		"open":    {name: "open", phase: phaseAuthorize, authorize: &authz.Config{Anonymous: true}},
	}, global: []string{"ip"}}
	final := router.HandlerFunc(func(context.Context, *router.Call) error { trace = append(trace, "dispatch"); return nil })
	tests := []struct {
		names []string
		want  []string
		code  codes.Code // for an anonymous call
	}{
		{nil, []string{"ip", "dispatch"}, codes.OK},
		{[]string{"user", "jwt", "ip-rate", "key"}, []string{"ip", "ip-rate", "jwt", "key"}, codes.Unauthenticated}, // the default gate refuses before "user"
		{[]string{"user", "open", "jwt", "ip"}, []string{"ip", "jwt", "user", "dispatch"}, codes.OK},
	}
	for _, tt := range tests {
		trace = nil
		r := &router.Route{Handler: final}
		if err := s.wrap(r, tt.names, true); err != nil {
			t.Fatal(err)
		}
		err := r.Handler.Handle(context.Background(), &router.Call{})
		if status.Code(err) != tt.code {
			t.Errorf("%v: code %v, want %v", tt.names, status.Code(err), tt.code)
		}
		if !reflect.DeepEqual(trace, tt.want) {
			t.Errorf("%v: ran %v, want %v", tt.names, trace, tt.want)
		}
	}
	if err := s.wrap(&router.Route{Handler: final}, []string{"open"}, true); err != nil {
		t.Errorf("anonymous authorize without authentication: %v", err)
	}
	s.policies["admins"] = &policy{name: "admins", phase: phaseAuthorize, authorize: &authz.Config{Scopes: []string{"admin"}}}
	if err := s.wrap(&router.Route{Handler: final}, []string{"admins"}, true); err == nil {
		t.Error("an authorize policy without authentication was accepted")
	}
}
