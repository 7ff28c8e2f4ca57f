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
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/security"
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

// Forwards reports whether the header name goes upstream. Authorization is
// sent only as the jwt policy verified it (see ForwardAuthorization).
func (f *Forwarder) Forwards(name string) bool { return f.names[http.CanonicalHeaderKey(name)] }

// Incoming is Incoming(r), marked with ForwardAuthorization when the
// allow-list names Authorization.
func (f *Forwarder) Incoming(r *http.Request) metadata.MD {
	in := Incoming(r)
	if f.names["Authorization"] {
		in[ForwardAuthorization] = []string{"1"}
	}
	return in
}

// Metadata collects what is forwarded upstream: the allow-listed headers,
// Grpc-Metadata-* with the prefix stripped, and X-Forwarded-For/-Host, less
// what Forwardable refuses. A request with more than one credential of a
// kind (see CheckCredentials), or a forwarded header whose value gRPC
// metadata cannot carry (not printable ASCII), is refused with
// INVALID_ARGUMENT naming the header.
func (f *Forwarder) Metadata(r *http.Request) (metadata.MD, error) {
	for i, k := range Credentials {
		h := credentialHeaders[i]
		if len(r.Header[h[0]])+len(r.Header[h[1]]) > 1 {
			return nil, badHeader(k, "more than one "+k+" credential: send one")
		}
	}
	md, err := f.collect(r.Header, true)
	if err != nil {
		return nil, err
	}
	addForwarded(md, strings.Join(r.Header.Values("X-Forwarded-For"), ", "), r.RemoteAddr, r.Host)
	return md, nil
}

// Properties is Metadata for MQTT user properties (given as headers): what
// gRPC metadata cannot carry is dropped rather than refused, and nothing is
// added.
func (f *Forwarder) Properties(h http.Header) metadata.MD {
	md, _ := f.collect(h, false)
	return md
}

func (f *Forwarder) collect(h http.Header, strict bool) (metadata.MD, error) {
	md := metadata.MD{}
	for name, vals := range h {
		var key string
		switch {
		case f.names[name]:
			key = strings.ToLower(name)
		case strings.HasPrefix(name, "Grpc-Metadata-") && len(name) > len("Grpc-Metadata-"):
			key = strings.ToLower(name[len("Grpc-Metadata-"):])
		default:
			continue
		}
		if !Forwardable(key) {
			continue
		}
		if !ValidValues(key, vals) {
			if strict {
				return nil, badHeader(name, "the value of header "+name+" is not printable ASCII")
			}
			continue
		}
		md[key] = append(md[key], vals...)
	}
	return md, nil
}

// addForwarded sets X-Forwarded-For (prior, the client's own, followed by
// the peer at remoteAddr) and X-Forwarded-Host (host) in md.
func addForwarded(md metadata.MD, prior, remoteAddr, host string) {
	if peer, _, err := net.SplitHostPort(remoteAddr); err == nil {
		if prior != "" && ValidValues("x-forwarded-for", []string{prior}) {
			peer = prior + ", " + peer
		}
		md["x-forwarded-for"] = []string{peer}
	}
	if host != "" && ValidValues("x-forwarded-host", []string{host}) {
		md["x-forwarded-host"] = []string{host}
	}
}

// ForwardAuthorization marks a call whose protocol forwards a verified
// Authorization (see security.ForwardAuthorization).
const ForwardAuthorization = security.ForwardAuthorization

// PassThrough is what a call of the gRPC family (native gRPC, gRPC-Web,
// Connect) forwards upstream. Their request headers are gRPC metadata by
// definition, so, as any gRPC proxy does, it passes on every entry of in
// (keys lower-case) that Forwardable allows, with X-Forwarded-For and
// X-Forwarded-Host set as Metadata sets them; the REST allow-list does not
// apply. It refuses what Metadata refuses. It marks in with
// ForwardAuthorization: a verified bearer token is forwarded on these
// protocols. The values are copied: in is not shared.
func PassThrough(in metadata.MD, remoteAddr, host string) (metadata.MD, error) {
	if err := CheckCredentials(in); err != nil {
		return nil, err
	}
	md := make(metadata.MD, len(in)+2)
	for k, vs := range in {
		if !Forwardable(k) {
			continue
		}
		if !ValidValues(k, vs) {
			return nil, badHeader(k, "the value of header "+k+" is not printable ASCII")
		}
		md[k] = append([]string(nil), vs...)
	}
	var prior string
	if xff := in["x-forwarded-for"]; len(xff) > 0 {
		prior = strings.Join(xff, ", ")
	}
	addForwarded(md, prior, remoteAddr, host)
	in[ForwardAuthorization] = []string{"1"}
	return md, nil
}

// Credentials are the headers that carry a credential: a request may hold
// at most one of each kind (counting Grpc-Metadata-* copies), and none of
// them is ever forwarded as the client sent it. The jwt policy forwards the
// Authorization it verified; an api_key policy's own header, whatever its
// name, is dropped by the policy.
var Credentials = []string{"authorization", "proxy-authorization", "x-api-key"}

// credentialHeaders are the canonical HTTP header keys of Credentials,
// alone and as Grpc-Metadata-* (computed once, not per request).
var credentialHeaders = func() [][2]string {
	hs := make([][2]string, len(Credentials))
	for i, k := range Credentials {
		c := http.CanonicalHeaderKey(k)
		hs[i] = [2]string{c, "Grpc-Metadata-" + c}
	}
	return hs
}()

// CheckCredentials refuses, with INVALID_ARGUMENT naming the header, a
// request (its headers or metadata, keys lower-case) with more than one
// value of a credential header, counting its Grpc-Metadata-* copies.
func CheckCredentials(in metadata.MD) error {
	for _, k := range Credentials {
		if n := len(in[k]) + len(in["grpc-metadata-"+k]); n > 1 {
			return badHeader(k, "more than one "+k+" credential: send one")
		}
	}
	return nil
}

// Forwardable reports whether a metadata key (lower-case) sent by a client
// may go upstream: not when it is reserved (see Reserved), a credential
// (see Credentials), a key the gateway sets itself (X-Forwarded-*,
// Forwarded, X-Mqtt-*), or not a valid gRPC metadata key ([0-9a-z-_.]).
// The identity headers the configuration names are removed by the identity
// step.
func Forwardable(key string) bool {
	if key == "" || Reserved(key) || GatewaySet(key) || slices.Contains(Credentials, key) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// GatewaySet reports whether the gateway itself sets the metadata key
// (lower-case), so that a client's copy is never forwarded: X-Forwarded-*
// and Forwarded (X-Forwarded-For is the client's own list only as the
// X-Forwarded-For header of the request, followed by the peer), and the
// x-mqtt-* keys that tell a service which device sent a message.
func GatewaySet(key string) bool {
	return key == "forwarded" || strings.HasPrefix(key, "x-forwarded-") || strings.HasPrefix(key, "x-mqtt-")
}

// ValidValues reports whether gRPC metadata can carry the values under
// key: printable ASCII, unless the key ends in -bin (binary values).
func ValidValues(key string, values []string) bool {
	if strings.HasSuffix(key, "-bin") {
		return true
	}
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return false
			}
		}
	}
	return true
}

// badHeader is the INVALID_ARGUMENT error refusing a request for its
// header name, with a google.rpc.BadRequest naming it.
func badHeader(name, msg string) error {
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: strings.ToLower(name), Description: msg}},
	})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
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
	delete(md, ForwardAuthorization) // not a header name; never the client's
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
