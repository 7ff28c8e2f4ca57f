// Package querytoken is the chain step of the WebSocket query-token rule.
// Browsers cannot set headers on a WebSocket, so a page may offer its
// bearer token as the access_token query parameter; a URL is logged by
// proxies and kept in browser history, so the gateway refuses such a token
// unless the configuration (websocket.allow_query_token) accepts it. The
// rule is one step of every method's chain, before authentication, so it
// holds however the WebSocket route was built.
package querytoken

import (
	"context"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Param is the query parameter a WebSocket client may carry its token in.
const Param = "access_token"

// Step returns the rule's step. With allow, a WebSocket call's access_token
// becomes its Authorization ("Bearer TOKEN") for the authentication
// policies; a call that also has an Authorization header (or subprotocol
// token) is refused with INVALID_ARGUMENT, as is, without allow, any
// WebSocket call carrying one. forward lets the jwt policy send the token
// upstream once it verified it, as an Authorization header would be (see
// security.ForwardAuthorization); nothing sends it unverified. Calls of
// other protocols pass untouched.
func Step(allow, forward bool) router.Middleware {
	return func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			if c.Protocol != router.WebSocket || !c.QueryParams().Has(Param) {
				return next.Handle(ctx, c)
			}
			if !allow {
				return security.Deny(codes.InvalidArgument, "QUERY_TOKEN_REFUSED", "a token in the query string is not accepted; send it in the Authorization header or as the subprotocol rosetta.bearer.TOKEN")
			}
			if len(c.QueryParams()[Param]) > 1 || len(c.Incoming["authorization"]) > 0 {
				return security.Deny(codes.InvalidArgument, "CREDENTIALS_AMBIGUOUS", "more than one authorization credential: send one")
			}
			if token := c.QueryParams().Get(Param); token != "" {
				c.Incoming["authorization"] = []string{"Bearer " + token}
				if forward {
					c.Incoming[security.ForwardAuthorization] = []string{"1"}
				} else {
					delete(c.Incoming, security.ForwardAuthorization)
				}
			}
			return next.Handle(ctx, c)
		})
	}
}
