// Package ingress holds what the HTTP-based ingress adapters (REST,
// WebSocket, gRPC-Web, Connect, gRPC) share: the identity material and the
// forwarded metadata of a call, taken from its HTTP request: the REST and
// WebSocket allow-list (Forwarder), and the pass-through of the gRPC family
// (PassThrough).
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
	addForwarded(md, r.Header.Get("X-Forwarded-For"), r.RemoteAddr, r.Host)
	return md
}

// addForwarded sets X-Forwarded-For (prior, the client's own, followed by
// the peer at remoteAddr) and X-Forwarded-Host (host) in md.
func addForwarded(md metadata.MD, prior, remoteAddr, host string) {
	if peer, _, err := net.SplitHostPort(remoteAddr); err == nil {
		if prior != "" {
			peer = prior + ", " + peer
		}
		md["x-forwarded-for"] = []string{peer}
	}
	if host != "" {
		md["x-forwarded-host"] = []string{host}
	}
}

// PassThrough is what a call of the gRPC family (native gRPC, gRPC-Web,
// Connect) forwards upstream. Their request headers are gRPC metadata by
// definition, so, as any gRPC proxy does, it passes on every entry of in
// (keys lower-case) but the connection-specific and reserved ones (see
// Reserved), with X-Forwarded-For and X-Forwarded-Host set as Metadata sets
// them; the REST allow-list does not apply. The identity headers the
// gateway sets are removed by the identity policy, which runs on every
// route. The values are copied: in is not shared.
func PassThrough(in metadata.MD, remoteAddr, host string) metadata.MD {
	md := make(metadata.MD, len(in)+2)
	for k, vs := range in {
		if !Reserved(k) {
			md[k] = append([]string(nil), vs...)
		}
	}
	var prior string
	if xff := in["x-forwarded-for"]; len(xff) > 0 {
		prior = strings.Join(xff, ", ")
	}
	addForwarded(md, prior, remoteAddr, host)
	return md
}

// Reserved reports whether the metadata key (lower-case) belongs to one
// hop of a call rather than to the call, so that a proxy neither forwards it
// upstream nor returns it to the client: HTTP/2 pseudo-headers, the
// connection-specific headers of HTTP (Connection, Host, TE, ...), the
// framing of the message (Content-Type, Content-Encoding, Accept-Encoding),
// the keys gRPC reserves (grpc-timeout, grpc-encoding, grpc-status, ...:
// every grpc-* key but the tracing ones, grpc-trace-bin and grpc-tags-bin),
// User-Agent, and the protocol headers of gRPC-Web and Connect
// (X-Grpc-Web, X-User-Agent, Connect-*).
func Reserved(key string) bool {
	if strings.HasPrefix(key, ":") {
		return true
	}
	if strings.HasPrefix(key, "grpc-") {
		return key != "grpc-trace-bin" && key != "grpc-tags-bin"
	}
	if strings.HasPrefix(key, "connect-") {
		return true
	}
	switch key {
	case "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "http2-settings",
		"content-type", "content-length", "content-encoding", "accept", "accept-encoding",
		"user-agent", "x-grpc-web", "x-user-agent":
		return true
	}
	return false
}

// WithoutReserved returns md less its reserved keys (see Reserved), as a
// proxy returns an upstream's response metadata to its client; md itself
// when it has none.
func WithoutReserved(md metadata.MD) metadata.MD {
	n := 0
	for k := range md {
		if Reserved(k) {
			n++
		}
	}
	if n == 0 {
		return md
	}
	out := make(metadata.MD, len(md)-n)
	for k, vs := range md {
		if !Reserved(k) {
			out[k] = vs
		}
	}
	return out
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
