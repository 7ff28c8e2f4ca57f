// Package ingress holds what the HTTP-based ingress adapters (REST,
// WebSocket, gRPC-Web, Connect, gRPC) share: the identity material and the
// forwarded metadata of a call, taken from its HTTP request.
package ingress

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
)

// DefaultForwardHeaders are the request headers forwarded upstream as gRPC
// metadata when the configuration names none.
var DefaultForwardHeaders = []string{"Authorization", "X-Request-Id", "Traceparent", "Tracestate"}

// Forwarder picks the request headers that go upstream.
type Forwarder struct {
	names map[string]bool // canonical header names
}

// NewForwarder forwards the named headers (DefaultForwardHeaders when names
// is nil), besides Grpc-Metadata-* with the prefix stripped.
func NewForwarder(names []string) *Forwarder {
	if names == nil {
		names = DefaultForwardHeaders
	}
	f := &Forwarder{names: make(map[string]bool, len(names))}
	for _, n := range names {
		f.names[http.CanonicalHeaderKey(n)] = true
	}
	return f
}

// Forwards reports whether the header name goes upstream.
func (f *Forwarder) Forwards(name string) bool { return f.names[http.CanonicalHeaderKey(name)] }

// Metadata collects what is forwarded upstream: the allow-listed headers,
// Grpc-Metadata-* with the prefix stripped, and X-Forwarded-For/-Host.
func (f *Forwarder) Metadata(r *http.Request) metadata.MD {
	md := metadata.MD{}
	for name, vals := range r.Header {
		switch {
		case f.names[name]:
			md[strings.ToLower(name)] = vals
		case strings.HasPrefix(name, "Grpc-Metadata-") && len(name) > len("Grpc-Metadata-"):
			key := strings.ToLower(name[len("Grpc-Metadata-"):])
			md[key] = append(md[key], vals...)
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
			host = prior + ", " + host
		}
		md["x-forwarded-for"] = []string{host}
	}
	if r.Host != "" {
		md["x-forwarded-host"] = []string{r.Host}
	}
	return md
}

// Incoming lower-cases the request headers for the policies, and adds the
// host the request was sent to under "host" (the cors step compares it with
// the Origin).
func Incoming(r *http.Request) metadata.MD {
	md := make(metadata.MD, len(r.Header)+1)
	for k, vs := range r.Header {
		md[strings.ToLower(k)] = vs
	}
	if r.Host != "" {
		md["host"] = []string{r.Host}
	}
	return md
}

// Peer is the client's address as the connection shows it.
func Peer(r *http.Request) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap
}
