// Package limits refuses HTTP requests whose URL or headers are larger than
// configured, with a google.rpc.Status body, before any ingress reads them,
// and bounds the connections of each client. Body size, message size, JSON
// nesting (JSONDepth, applied by each route's binding) and timeouts are
// bounded by the ingresses, translate and the server themselves.
package limits

import (
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/security"
)

// Config bounds requests.
type Config struct {
	// MaxURLBytes bounds the request target, path and query (default 8KiB);
	// longer ones get 414.
	MaxURLBytes int `yaml:"max_url_bytes"`
	// MaxHeaderBytes bounds the request headers, names and values
	// (default 64KiB); larger ones get 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnsPerClient bounds the connections one client address holds
	// open at once (default 0: no bound; see Listener).
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// JSONDepth bounds how deeply messages nest in a JSON request (default
	// translate.DefaultMaxDepth, 64; at most MaxJSONDepth); deeper ones
	// get 400 INVALID_ARGUMENT.
	JSONDepth int `yaml:"json_depth"`
}

// Defaults of Config.
const (
	DefaultMaxURLBytes    = 8 << 10
	DefaultMaxHeaderBytes = 64 << 10
	// MaxJSONDepth is the largest JSONDepth accepted: protobuf's own
	// recursion limit.
	MaxJSONDepth = 10000
)

// Handler refuses requests beyond cfg's bounds and passes the others to
// next.
func Handler(next http.Handler, cfg Config) http.Handler {
	maxURL, maxHeader := cfg.MaxURLBytes, cfg.MaxHeaderBytes
	if maxURL <= 0 {
		maxURL = DefaultMaxURLBytes
	}
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.RequestURI) > maxURL {
			security.WriteHTTP(w, http.StatusRequestURITooLong, security.Deny(codes.InvalidArgument, "URL_TOO_LONG", "the request URL exceeds "+strconv.Itoa(maxURL)+" bytes"))
			return
		}
		n := 0
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4 // ": " and CRLF
			}
		}
		if n > maxHeader {
			security.WriteHTTP(w, http.StatusRequestHeaderFieldsTooLarge, security.Deny(codes.InvalidArgument, "HEADERS_TOO_LARGE", "the request headers exceed "+strconv.Itoa(maxHeader)+" bytes"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
