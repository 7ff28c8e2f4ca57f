// Package ipfilter is the ip_filter policy: it lets a call through or refuses
// it with PERMISSION_DENIED by its client address.
package ipfilter

import (
	"context"
	"net/netip"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/clientip"
)

// Filter allows and denies client addresses.
type Filter struct {
	ips         *clientip.Resolver
	allow, deny []netip.Prefix
}

// Wrap is the filter as a router.Middleware.
func (f *Filter) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		if err := f.Check(f.ips.ClientIP(c)); err != nil {
			return err
		}
		return next.Handle(ctx, c)
	})
}

// Check returns nil when a may pass and the PERMISSION_DENIED error
// otherwise. An invalid (unknown) address never passes.
func (f *Filter) Check(a netip.Addr) error {
	if !a.IsValid() {
		return security.Deny(codes.PermissionDenied, "CLIENT_ADDRESS_UNKNOWN", "the client address is unknown")
	}
	a = a.Unmap().WithZone("")
	if contains(f.deny, a) || len(f.allow) > 0 && !contains(f.allow, a) {
		return security.Deny(codes.PermissionDenied, "IP_DENIED", "the client address is not allowed")
	}
	return nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
