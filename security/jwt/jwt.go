// Package jwt is the jwt policy: it verifies a bearer token (from the
// Authorization header, or the MQTT CONNECT password) against the configured
// issuers and sets the call's identity from its claims.
//
// The algorithms accepted are fixed per issuer and never taken from the
// token; iss, aud, exp, nbf and iat are checked with a configurable leeway;
// keys come from files or from cached JWKS URLs. A call without a token
// passes unauthenticated (the authz policy decides whether it may); a call
// with a bad token is refused with UNAUTHENTICATED and a WWW-Authenticate
// challenge naming the error.
package jwt

import (
	"context"
	"errors"
	"strings"

	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// MaxTokenBytes bounds the tokens the policy parses; longer ones are
// refused unread.
const MaxTokenBytes = 8 << 10

// maxKidlessCandidates bounds the keys a token without a kid is tried
// against, so that a large key set cannot multiply the cost of a bad token.
const maxKidlessCandidates = 4

// Verifier verifies bearer tokens.
type Verifier struct {
	issuers    []*issuer
	byIss      map[string]*issuer
	scopeClaim string
	realm      string
}

type issuer struct {
	parser *gojwt.Parser
	static []key
	remote *remoteKeys
}

// Challenge is the WWW-Authenticate challenge for a call without
// credentials.
func (v *Verifier) Challenge() string { return `Bearer realm="` + v.realm + `"` }

// Wrap is the verifier as a router.Middleware.
func (v *Verifier) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		tok, found, fromHeader, err := bearer(c)
		if err != nil {
			return err
		}
		if !found {
			return next.Handle(ctx, c)
		}
		id, reason, msg := v.verify(ctx, tok)
		if id == nil {
			if c.ResponseHeader == nil {
				c.ResponseHeader = map[string][]string{}
			}
			c.ResponseHeader.Append("www-authenticate", v.Challenge()+`, error="invalid_token", error_description="`+msg+`"`)
			return security.Deny(codes.Unauthenticated, reason, "invalid bearer token: "+msg)
		}
		if c.Identity == nil {
			c.Identity = id
		}
		if fromHeader && len(c.Incoming[security.ForwardAuthorization]) > 0 {
			// The one authorization value an upstream ever receives: the
			// token just verified (the ingresses forward none).
			if c.Metadata == nil {
				c.Metadata = map[string][]string{}
			}
			c.Metadata["authorization"] = []string{"Bearer " + tok}
		}
		return next.Handle(ctx, c)
	})
}

// bearer finds the call's token: an Authorization Bearer header, or an MQTT
// password that looks like a JWT; fromHeader says which. An MQTT message's
// credential is its CONNECT's: what its user properties say is not read.
// A call with more than one Authorization value (a Grpc-Metadata copy
// counts) is refused with INVALID_ARGUMENT.
func bearer(c *router.Call) (tok string, found, fromHeader bool, err error) {
	if c.Protocol != router.MQTT {
		h := c.Incoming.Get("authorization")
		if len(h)+len(c.Incoming.Get("grpc-metadata-authorization")) > 1 {
			return "", false, false, security.Deny(codes.InvalidArgument, "CREDENTIALS_AMBIGUOUS", "more than one authorization credential: send one",
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "authorization", Description: "sent more than once"}}})
		}
		if len(h) > 0 {
			scheme, tok, ok := strings.Cut(h[0], " ")
			if ok && strings.EqualFold(scheme, "bearer") {
				return strings.TrimSpace(tok), true, true, nil
			}
		}
	}
	if c.Credentials != nil && strings.IndexByte(string(c.Credentials.Password), '.') >= 0 {
		return string(c.Credentials.Password), true, false, nil
	}
	return "", false, false, nil
}

// verify checks tok and returns the identity it proves, or the reason and
// message of its refusal.
func (v *Verifier) verify(ctx context.Context, tok string) (*router.Identity, string, string) {
	if len(tok) > MaxTokenBytes {
		return nil, "TOKEN_TOO_LARGE", "token too large"
	}
	is := v.issuers[0]
	if len(v.issuers) > 1 {
		claims := gojwt.MapClaims{}
		if _, _, err := gojwt.NewParser().ParseUnverified(tok, claims); err != nil {
			return nil, "TOKEN_MALFORMED", "malformed token"
		}
		iss, _ := claims["iss"].(string)
		if is = v.byIss[iss]; is == nil {
			return nil, "TOKEN_ISSUER_INVALID", "unknown issuer"
		}
	}
	claims := gojwt.MapClaims{}
	_, err := is.parser.ParseWithClaims(tok, claims, func(t *gojwt.Token) (any, error) { return is.key(ctx, t) })
	if err != nil {
		reason, msg := refusal(err)
		return nil, reason, msg
	}
	sub, _ := claims["sub"].(string)
	return &router.Identity{Subject: sub, Scopes: v.scopes(claims), Claims: claims, Method: "jwt"}, "", ""
}

// errUnknownKey is returned when no key fits a token's kid and algorithm.
var errUnknownKey = errors.New("no key for the token's kid and algorithm")

// key returns the keys that may have signed t: those with its kid (or
// without a kid) fit for its algorithm. A kid the keys lack refreshes a JWKS.
func (is *issuer) key(ctx context.Context, t *gojwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var remote []key
	if is.remote != nil {
		remote = is.remote.get(ctx, false)
	}
	set := candidates(kid, alg, is.static, remote)
	if len(set.Keys) == 0 && is.remote != nil {
		set = candidates(kid, alg, is.static, is.remote.get(ctx, true))
	}
	switch len(set.Keys) {
	case 0:
		return nil, errUnknownKey
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

func candidates(kid, alg string, lists ...[]key) gojwt.VerificationKeySet {
	var set gojwt.VerificationKeySet
	for _, keys := range lists {
		for _, k := range keys {
			if (k.kid == "" || kid == "" || k.kid == kid) && k.fits(alg) && len(set.Keys) < maxKidlessCandidates {
				set.Keys = append(set.Keys, k.pub)
			}
		}
	}
	return set
}

// refusal names why a token was refused, without quoting it.
func refusal(err error) (reason, msg string) {
	switch {
	case errors.Is(err, gojwt.ErrTokenMalformed):
		return "TOKEN_MALFORMED", "malformed token"
	case errors.Is(err, errUnknownKey):
		return "TOKEN_KEY_UNKNOWN", "unknown signing key"
	case errors.Is(err, gojwt.ErrTokenSignatureInvalid), errors.Is(err, gojwt.ErrTokenUnverifiable):
		return "TOKEN_SIGNATURE_INVALID", "signature invalid or algorithm not allowed"
	case errors.Is(err, gojwt.ErrTokenExpired):
		return "TOKEN_EXPIRED", "token expired"
	case errors.Is(err, gojwt.ErrTokenNotValidYet), errors.Is(err, gojwt.ErrTokenUsedBeforeIssued):
		return "TOKEN_NOT_YET_VALID", "token not valid yet"
	case errors.Is(err, gojwt.ErrTokenInvalidIssuer):
		return "TOKEN_ISSUER_INVALID", "wrong issuer"
	case errors.Is(err, gojwt.ErrTokenInvalidAudience):
		return "TOKEN_AUDIENCE_INVALID", "wrong audience"
	case errors.Is(err, gojwt.ErrTokenRequiredClaimMissing):
		return "TOKEN_CLAIM_MISSING", "a required claim is missing"
	}
	return "TOKEN_INVALID", "invalid token"
}

// scopes reads the scope claim: a space-separated string or a list.
func (v *Verifier) scopes(claims gojwt.MapClaims) []string {
	name := v.scopeClaim
	if name == "" {
		name = "scope"
		if _, ok := claims[name]; !ok {
			name = "scp"
		}
	}
	switch s := claims[name].(type) {
	case string:
		return strings.Fields(s)
	case []any:
		out := make([]string, 0, len(s))
		for _, x := range s {
			if str, ok := x.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}
