// Package cors is the one cross-origin policy of every browser protocol
// (REST, gRPC-Web, Connect, WebSocket): it answers browsers' CORS preflight
// requests in the gateway, adds the CORS response headers to the answers of
// allowed origins, and its step of a method's chain (Check) refuses calls
// from origins it does not allow, which is what guards WebSocket, a
// protocol browsers do not apply CORS to. Preflights are never forwarded
// upstream.
package cors

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Policy is the CORS policy of some routes.
type Policy struct {
	anyOrigin   bool
	origins     map[string]bool
	patterns    []string
	methods     map[string]bool
	headers     map[string]bool
	expose      string
	credentials bool
	maxAge      string
}

// Lookup returns the policy of the route that takes method on r's path
// (SameOrigin for a route without one), or nil when there is no such
// route.
type Lookup func(method string, r *http.Request) *Policy

// Handler answers the preflights of the routes lookup finds a policy for,
// and adds CORS headers to next's answers to allowed origins. Requests for
// routes without a policy go to next untouched.
func Handler(next http.Handler, lookup Lookup) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		reqMethod := r.Header.Get("Access-Control-Request-Method")
		if r.Method == http.MethodOptions && reqMethod != "" {
			if p := lookup(reqMethod, r); p != nil {
				p.preflight(w, r, origin, reqMethod)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if p := lookup(r.Method, r); p != nil {
			h := w.Header()
			h.Add("Vary", "Origin")
			if p.AllowsOrigin(origin) {
				p.allowOrigin(h, origin)
				if p.expose != "" {
					h.Set("Access-Control-Expose-Headers", p.expose)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// AllowsOrigin reports whether the policy allows pages of origin to call.
func (p *Policy) AllowsOrigin(origin string) bool {
	if p.anyOrigin {
		return true
	}
	o := strings.ToLower(origin)
	if p.origins[o] {
		return true
	}
	for _, pat := range p.patterns {
		if ok, _ := path.Match(pat, o); ok {
			return true
		}
	}
	return false
}

// Check is the chain step of a method guarded by p (nil: SameOrigin): a
// call whose Origin is neither the gateway's own nor one p allows is
// refused with PERMISSION_DENIED before any other policy runs, on every
// protocol; a call without an Origin (not from a browser page) passes.
func Check(p *Policy) router.Middleware {
	if p == nil {
		p = SameOrigin
	}
	return func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			if origin := first(c.Incoming["origin"]); origin != "" && !sameOrigin(origin, c) && !p.AllowsOrigin(origin) {
				return security.Deny(codes.PermissionDenied, "CORS_ORIGIN_DENIED", "origin "+origin+" may not call this method")
			}
			return next.Handle(ctx, c)
		})
	}
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// sameOrigin reports whether origin's host is the host the call was sent
// to (the Host header, or HTTP/2's :authority).
func sameOrigin(origin string, c *router.Call) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host := first(c.Incoming["host"])
	if host == "" {
		host = first(c.Incoming[":authority"])
	}
	return host != "" && strings.EqualFold(u.Host, host)
}

func (p *Policy) allowOrigin(h http.Header, origin string) {
	if p.anyOrigin {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers an OPTIONS preflight: 204 with the allowing headers,
// or 403 with a google.rpc.Status naming what is not allowed.
func (p *Policy) preflight(w http.ResponseWriter, r *http.Request, origin, method string) {
	h := w.Header()
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	if !p.AllowsOrigin(origin) {
		security.WriteHTTP(w, http.StatusForbidden, security.Deny(codes.PermissionDenied, "CORS_ORIGIN_DENIED", "origin "+origin+" is not allowed"))
		return
	}
	if len(p.methods) > 0 && !p.methods[method] {
		security.WriteHTTP(w, http.StatusForbidden, security.Deny(codes.PermissionDenied, "CORS_METHOD_DENIED", "method "+method+" is not allowed"))
		return
	}
	var asked []string
	for _, line := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if !p.headers[name] {
				security.WriteHTTP(w, http.StatusForbidden, security.Deny(codes.PermissionDenied, "CORS_HEADER_DENIED", "request header "+name+" is not allowed"))
				return
			}
			asked = append(asked, name)
		}
	}
	p.allowOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", method)
	if len(asked) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(asked, ", "))
	}
	if p.maxAge != "" {
		h.Set("Access-Control-Max-Age", p.maxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}
