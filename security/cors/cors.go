// Package cors answers browsers' CORS preflight requests in the gateway,
// per route, and adds the CORS response headers to the answers of allowed
// origins. Preflights are never forwarded upstream.
package cors

import (
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/security"
)

// Policy is the CORS policy of some routes.
type Policy struct {
	anyOrigin   bool
	origins     map[string]bool
	methods     map[string]bool
	headers     map[string]bool
	expose      string
	credentials bool
	maxAge      string
}

// Lookup returns the policy of the route that takes method on r's path, or
// nil when there is no such route or it has no CORS policy.
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
			if p.allowsOrigin(origin) {
				p.allowOrigin(h, origin)
				if p.expose != "" {
					h.Set("Access-Control-Expose-Headers", p.expose)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (p *Policy) allowsOrigin(origin string) bool {
	return p.anyOrigin || p.origins[strings.ToLower(origin)]
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
	if !p.allowsOrigin(origin) {
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
