// Package apikey is the api_key policy: it authenticates a call by a key sent
// in a header, in a query parameter when the configuration allows it, or as
// an MQTT CONNECT password, looked up by its SHA-256 hash, so that the
// configuration never holds a key itself.
package apikey

import (
	"context"
	"crypto/sha256"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Keys authenticates calls by API key.
type Keys struct {
	header string
	query  string // "" when keys in the query are not accepted
	realm  string
	byHash map[[32]byte]*KeyConfig
}

// Challenge is the WWW-Authenticate challenge for a call without
// credentials.
func (k *Keys) Challenge() string { return `ApiKey realm="` + k.realm + `", header="` + k.header + `"` }

// CredentialParams names the query parameter the policy reads keys from,
// if any: the ingress keeps it out of the request decoded and sent upstream.
func (k *Keys) CredentialParams() []string {
	if k.query == "" {
		return nil
	}
	return []string{k.query}
}

// Wrap is the policy as a router.Middleware. A key in the header, or else
// in the configured query parameter, must be known (UNAUTHENTICATED
// otherwise). An MQTT password is tried as a key and left for other
// policies when it is not one; when the CONNECT also has a username, it must
// be the key's identity. A call without a key passes unauthenticated, for
// the authz policy to judge.
func (k *Keys) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		// The key is never forwarded, whichever way it came.
		delete(c.Metadata, k.header)
		var kc *KeyConfig
		var v []string
		if c.Protocol != router.MQTT { // an MQTT message's credential is its CONNECT's
			v = c.Incoming.Get(k.header)
			n := len(v) + len(c.Incoming.Get("grpc-metadata-"+k.header))
			if k.query != "" {
				q := c.QueryParams()[k.query]
				n += len(q)
				if len(v) == 0 {
					v = q
				}
			}
			if n > 1 {
				return security.Deny(codes.InvalidArgument, "CREDENTIALS_AMBIGUOUS", "more than one API key: send one",
					&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: k.header, Description: "sent more than once"}}})
			}
		}
		if len(v) > 0 {
			if kc = k.byHash[sha256.Sum256([]byte(v[0]))]; kc == nil {
				if c.ResponseHeader == nil {
					c.ResponseHeader = map[string][]string{}
				}
				c.ResponseHeader.Append("www-authenticate", k.Challenge()+`, error="invalid_key"`)
				return security.Deny(codes.Unauthenticated, "API_KEY_INVALID", "unknown API key")
			}
		} else if cr := c.Credentials; cr != nil && len(cr.Password) > 0 {
			if kc = k.byHash[sha256.Sum256(cr.Password)]; kc != nil && cr.Username != "" && cr.Username != kc.Identity {
				return security.Deny(codes.Unauthenticated, "API_KEY_INVALID", "the API key does not belong to this username")
			}
		}
		if kc != nil && c.Identity == nil {
			c.Identity = &router.Identity{Subject: kc.Identity, Scopes: kc.Scopes, Method: "api_key"}
		}
		return next.Handle(ctx, c)
	})
}
