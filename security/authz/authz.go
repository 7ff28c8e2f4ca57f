// Package authz is the authorize policy: it runs after the authentication
// policies and refuses a call without an identity (UNAUTHENTICATED, unless
// anonymous access is configured) or without the required scopes or roles
// (PERMISSION_DENIED).
package authz

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Gate authorises calls.
type Gate struct {
	cfg        Config
	challenges []string
}

// Wrap is the gate as a router.Middleware.
func (g *Gate) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		if err := g.check(c); err != nil {
			return err
		}
		return next.Handle(ctx, c)
	})
}

func (g *Gate) check(c *router.Call) error {
	id := c.Identity
	if id == nil {
		if g.cfg.Anonymous {
			return nil
		}
		if len(g.challenges) > 0 {
			if c.ResponseHeader == nil {
				c.ResponseHeader = map[string][]string{}
			}
			c.ResponseHeader.Append("www-authenticate", g.challenges...)
		}
		return security.Deny(codes.Unauthenticated, "CREDENTIALS_MISSING", "credentials required")
	}
	for _, s := range g.cfg.Scopes {
		if !slices.Contains(id.Scopes, s) {
			return security.Deny(codes.PermissionDenied, "INSUFFICIENT_SCOPE", "the caller lacks the scope "+s)
		}
	}
	if len(g.cfg.Roles) > 0 {
		held := roles(id.Claims, g.cfg.RolesClaim)
		if !slices.ContainsFunc(g.cfg.Roles, func(r string) bool { return slices.Contains(held, r) }) {
			return security.Deny(codes.PermissionDenied, "INSUFFICIENT_ROLE", "the caller holds none of the roles "+strings.Join(g.cfg.Roles, ", "))
		}
	}
	return nil
}

// roles reads the claim at path (dots walk into objects).
func roles(claims map[string]any, path string) []string {
	var v any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	switch r := v.(type) {
	case string:
		return strings.Fields(r)
	case []any:
		out := make([]string, 0, len(r))
		for _, x := range r {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
