// Package owner is the chain step of the MQTT topic-owner rule: an uplink
// rule may name a segment of its topic filter as the owner
// ("devices/{device_id}/telemetry" with owner: device_id), and a device may
// then publish only to its own topics. The ingress puts the segment's
// value in Call.Owner; the step compares it with who the caller is.
package owner

import (
	"context"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Step refuses, with PERMISSION_DENIED, a call whose Owner is set and is
// not its caller. Calls without an Owner pass.
func Step(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		if c.Owner != "" {
			if who := router.DeviceName(c.PeerCertificates, c.Credentials); who != c.Owner {
				return security.Deny(codes.PermissionDenied, "NOT_OWNER", who+" may not publish to a topic of "+c.Owner)
			}
		}
		return next.Handle(ctx, c)
	})
}
