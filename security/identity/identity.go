// Package identity forwards who the caller is to the upstream, as the
// metadata entries (headers) the configuration names, after removing any
// copies of them the client sent.
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
					c.Metadata[hd.key] = []string{v}
				}
			}
		}
		return next.Handle(ctx, c)
	})
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
