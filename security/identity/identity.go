// Package identity forwards who the caller is to the upstream, as the
// metadata entries (headers) the configuration names, after removing any
// copies of them the client sent.
//
// A value is sent percent-encoded (see Encode): a token's claims may hold
// any Unicode, and CR, LF or a non-ASCII byte cannot travel in a header or
// gRPC metadata. Printable ASCII but '%' is sent as it is, so the common
// value is unchanged; an upstream reads any value with a URL
// percent-decoder (Go url.PathUnescape, JavaScript decodeURIComponent).
package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rosettagw/rosetta/router"
)

// Headers sets identity metadata.
type Headers struct {
	headers []header
}

type header struct {
	key    string
	source string
	claim  []string // the claim's path, for "claim:" sources
}

// Wrap is the policy as a router.Middleware. It must run on every route,
// authenticated or not, so that a client can never send these headers
// itself.
func (h *Headers) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		for _, hd := range h.headers {
			delete(c.Metadata, hd.key)
		}
		if id := c.Identity; id != nil {
			if c.Metadata == nil {
				c.Metadata = map[string][]string{}
			}
			for _, hd := range h.headers {
				if v, ok := hd.value(id); ok {
					c.Metadata[hd.key] = []string{Encode(v)}
				}
			}
		}
		return next.Handle(ctx, c)
	})
}

// Encode percent-encodes (as %XX, upper-case hex) each byte of v that is
// not printable ASCII (below 0x20, 0x7F and above, so each byte of a
// non-ASCII UTF-8 character) and '%' itself; every other byte is kept.
func Encode(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '%' {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func (hd *header) value(id *router.Identity) (string, bool) {
	switch hd.source {
	case "subject":
		return id.Subject, id.Subject != ""
	case "method":
		return id.Method, true
	case "scopes":
		return strings.Join(id.Scopes, " "), len(id.Scopes) > 0
	}
	var v any = id.Claims
	for _, part := range hd.claim {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[part]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case float64, bool, json.Number:
		return fmt.Sprint(x), true
	}
	b, err := json.Marshal(v)
	return string(b), err == nil
}
