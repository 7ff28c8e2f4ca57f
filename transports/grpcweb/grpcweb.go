// Package grpcweb is the browser RPC ingress: gRPC-Web (application/grpc-web,
// application/grpc-web+proto, application/grpc-web+json and the base64
// application/grpc-web-text) and the Connect protocol (unary with JSON or
// binary bodies, server streaming with application/connect+json or +proto),
// both at POST /package.Service/Method, for unary and server-streaming
// methods, with the route's policy chain. Messages may be gzip-compressed
// both ways (grpc-encoding; Content-Encoding; Connect-Content-Encoding), each
// bounded by the message limit once decompressed. Its cross-origin rules
// are the method's cors policy.
//
// Connect shares its path with the REST ingress's automatic mapping; a
// request is Connect when its Content-Type is application/connect+* or it
// carries a Connect-Protocol-Version header. Connect's unary GET form
// (GET /package.Service/Method?encoding=json&message=...) is a Connect call
// when it has an encoding query parameter; it is served for side-effect-free
// methods only: those marked idempotency_level = NO_SIDE_EFFECTS, or whose
// google.api.http rule is a GET.
package grpcweb

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/ingress"
)

// Options configure the gRPC-Web and Connect ingress.
type Options struct {
	// MaxMessageBytes bounds the request message (default 4 MiB).
	MaxMessageBytes int
}

// Handler is the gRPC-Web and Connect http.Handler.
type Handler struct {
	routes func(context.Context) *router.Routes
	opts   Options
}

// New returns a Handler serving the methods of the generation routes
// returns for a request's context.
func New(routes func(context.Context) *router.Routes, opts Options) *Handler {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 4 << 20
	}
	return &Handler{routes: routes, opts: opts}
}

// protocol is how one request is framed.
type protocol struct {
	grpcWeb   bool   // gRPC-Web; otherwise Connect
	text      bool   // gRPC-Web's base64 body
	json      bool   // JSON messages (Connect, gRPC-Web's +json)
	streaming bool   // Connect's enveloped streaming framing
	get       bool   // Connect's unary GET: the message is in the query
	ct        string // the response Content-Type
	reqEnc    string // the request messages' compression ("" or identity: none)
	respEnc   string // the response messages' compression ("": none)
}

// sniff says whether r is for this handler and how it is framed.
func (h *Handler) sniff(r *http.Request) (protocol, bool) {
	var p protocol
	if r.Method == http.MethodGet {
		// A Connect GET names its encoding in the query; every other GET
		// (REST) is told apart without parsing its query.
		if !strings.Contains(r.URL.RawQuery, "encoding=") {
			return p, false
		}
		q := r.URL.Query()
		enc := q.Get("encoding")
		// The answer is not compressed: Accept-Encoding, the only way a
		// GET could ask, is sent by browsers on every fetch.
		p = protocol{get: true, json: enc == "json", ct: "application/" + enc, reqEnc: q.Get("compression")}
		return p, enc != ""
	}
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	switch ct {
	case "application/grpc-web", "application/grpc-web+proto", "application/grpc-web+json":
		p = protocol{grpcWeb: true, json: ct == "application/grpc-web+json", ct: ct}
	case "application/grpc-web-text", "application/grpc-web-text+proto", "application/grpc-web-text+json":
		p = protocol{grpcWeb: true, text: true, json: ct == "application/grpc-web-text+json", ct: ct}
	case "application/connect+proto", "application/connect+json":
		p = protocol{streaming: true, json: ct == "application/connect+json", ct: ct}
		p.reqEnc = r.Header.Get("Connect-Content-Encoding")
		p.respEnc = translate.NegotiateEncoding(p.reqEnc, r.Header.Get("Connect-Accept-Encoding"))
		return p, true
	case "application/proto", "application/json":
		if r.Header.Get("Connect-Protocol-Version") == "" {
			return protocol{}, false
		}
		// A unary response is compressed only as its request was: a
		// browser sends Accept-Encoding on every fetch, and connect-web
		// refuses a response encoding it did not ask for (when it can read
		// Content-Encoding: same origin, or exposed).
		p = protocol{json: ct == "application/json", ct: ct, reqEnc: r.Header.Get("Content-Encoding")}
		p.respEnc = translate.NegotiateEncoding(p.reqEnc, "")
		return p, true
	default:
		return protocol{}, false
	}
	p.reqEnc = r.Header.Get("Grpc-Encoding")
	p.respEnc = translate.NegotiateEncoding(p.reqEnc, r.Header.Get("Grpc-Accept-Encoding"))
	return p, true
}

// Handles reports whether r is a gRPC-Web or Connect call: a POST framed
// as one (answered in its protocol even when it names no known method), or
// a Connect GET of a known method. It also takes a POST to a method's path
// that no REST binding serves, framed in no way the gateway reads, to
// answer it 415.
func (h *Handler) Handles(r *http.Request) bool {
	if _, ok := h.sniff(r); ok {
		if r.Method == http.MethodGet {
			_, ok := h.routes(r.Context()).Methods[r.URL.Path]
			return ok
		}
		return r.Method == http.MethodPost
	}
	return h.unreadable(r)
}

// unreadable says whether r is a POST to a method's path that no REST
// binding serves, with a Content-Type no ingress reads.
func (h *Handler) unreadable(r *http.Request) bool {
	if r.Method != http.MethodPost || strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return false
	}
	routes := h.routes(r.Context())
	if _, ok := routes.Methods[r.URL.Path]; !ok {
		return false
	}
	return routes.HTTP.Lookup(http.MethodPost, r.URL.EscapedPath(), nil).Route == nil
}

// acceptPost lists the Content-Types a method's path takes, for a 415.
const acceptPost = "application/grpc, application/grpc+proto, application/grpc+json, application/grpc-web, application/grpc-web+proto, " +
	"application/grpc-web+json, application/grpc-web-text, application/connect+proto, application/connect+json, application/proto, application/json"

// ServeHTTP serves one call. Cross-origin rules are the cors policy's,
// applied before (preflights, response headers) and in the method's chain
// (the origin check).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := h.routes(r.Context()).Methods[r.URL.Path]
	p, ok := h.sniff(r)
	if !ok { // see unreadable; a plain 415 as connect-go answers it (the Connect conformance suite refuses a JSON body there)
		w.Header().Set("Accept-Post", acceptPost)
		http.Error(w, "unsupported Content-Type "+strconv.Quote(r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	var st *spb.Status
	switch {
	case route == nil || route.Method == nil:
		st = (&writer{h: h, w: w, p: p, notFound: true}).end(status.Errorf(codes.Unimplemented, "unknown method %s", r.URL.Path), nil)
	case p.get:
		st = h.refuseGet(w, r, p, route)
	}
	if st == nil {
		h.serve(w, r, p, route)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, p protocol, route *router.Route) *spb.Status {
	out := &writer{h: h, w: w, p: p, route: route}
	if route.Method.IsStreamingClient() || (route.Method.IsStreamingServer() && !p.grpcWeb && !p.streaming) {
		return out.end(status.Error(codes.Unimplemented, "this method's streaming kind cannot be called over this protocol"), nil)
	}
	if !translate.SupportedEncoding(p.reqEnc) {
		return out.end(translate.UnsupportedEncodingError(p.reqEnc), nil)
	}
	msg, err := h.readRequest(r, p)
	if err != nil {
		return out.end(err, nil)
	}
	ctx, cancel, err := deadline(r)
	if err != nil {
		return out.end(err, nil)
	}
	defer cancel()
	in := ingress.Incoming(r)
	// gRPC-Web and Connect headers are gRPC metadata: passed through.
	md, err := ingress.PassThrough(in, r.RemoteAddr, r.Host)
	if err != nil {
		return out.end(err, nil)
	}
	call := &router.Call{
		Route:    route,
		Protocol: router.GRPCWeb,
		Peer:     ingress.Peer(r),
		Incoming: in,
		Metadata: md,
		Target:   route.Target,
	}
	call.RawQuery = r.URL.RawQuery
	if r.TLS != nil {
		call.PeerCertificates = r.TLS.PeerCertificates
	}
	decode := func() ([]byte, error) { return checkWire(route, msg) }
	if p.json {
		decode = func() ([]byte, error) {
			return route.Binding.DecodeRequest(&translate.Request{Body: msg, ContentType: "application/json"})
		}
	}
	out.call = call
	if route.Method.IsStreamingServer() {
		out.rc = http.NewResponseController(w)
		out.rc.SetReadDeadline(time.Time{}) // a stream outlives the server's read timeout
		call.Stream = &stream{out: out, decode: decode}
		call.Flush = out.rc.Flush
	} else {
		call.Decode = decode
	}
	err = route.Handler.Handle(ctx, call)
	var trailer metadata.MD
	if call.Reply != nil {
		if !out.started {
			out.header = call.Reply.Header
		}
		trailer = call.Reply.Trailer
	}
	if err == nil && call.Stream == nil {
		if !p.grpcWeb {
			out.trailerHeaders(trailer) // Connect unary: trailers go before the body
		}
		err = out.send(call.Reply.Message)
	}
	return out.end(err, trailer)
}

// refuseGet answers a Connect GET that cannot be served as the Connect
// protocol says and returns its status, or returns nil.
func (h *Handler) refuseGet(w http.ResponseWriter, r *http.Request, p protocol, route *router.Route) *spb.Status {
	st, httpStatus := &spb.Status{Code: int32(codes.InvalidArgument)}, http.StatusBadRequest
	q := r.URL.Query()
	switch {
	case !route.NoSideEffects:
		st.Message, httpStatus = "this method may have side effects: call it with POST", http.StatusMethodNotAllowed
		w.Header().Set("Allow", "POST")
	case p.ct != "application/json" && p.ct != "application/proto":
		st.Message, httpStatus = "unsupported encoding "+strconv.Quote(q.Get("encoding"))+": use json or proto", http.StatusUnsupportedMediaType
	case q.Has("connect") && q.Get("connect") != "v1":
		st.Message = `the connect query parameter must be "v1"`
	case !translate.SupportedEncoding(p.reqEnc):
		st = translate.StatusOf(translate.UnsupportedEncodingError(p.reqEnc))
		httpStatus = translate.ConnectHTTPStatus(codes.Unimplemented)
	case !q.Has("message"):
		st.Message = "missing message query parameter"
	default:
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(translate.ConnectErrorJSON(st))
	return st
}

// queryMessage returns the message of a Connect GET: the message query
// parameter, URL-safe base64 (padded or not) when base64=1, compressed as
// the compression parameter says.
func (h *Handler) queryMessage(q url.Values) ([]byte, error) {
	msg := []byte(q.Get("message"))
	if q.Get("base64") == "1" {
		enc := base64.URLEncoding
		if len(msg)%4 != 0 {
			enc = base64.RawURLEncoding
		}
		raw, err := enc.DecodeString(string(msg))
		if err != nil {
			return nil, &translate.BadRequestError{Field: "message", Description: "the message query parameter is not URL-safe base64"}
		}
		msg = raw
	}
	if len(msg) > h.opts.MaxMessageBytes {
		return nil, &translate.SizeError{Size: int64(len(msg)), Limit: int64(h.opts.MaxMessageBytes)}
	}
	return translate.Decompress(q.Get("compression"), msg, h.opts.MaxMessageBytes)
}

// readRequest reads the one request message within the size limit (both
// as sent and decompressed). An enveloped body must hold exactly one
// message: none or more is UNIMPLEMENTED, as gRPC and Connect say of a
// unary or server-streaming call.
func (h *Handler) readRequest(r *http.Request, p protocol) ([]byte, error) {
	if p.get {
		return h.queryMessage(r.URL.Query())
	}
	limit := h.opts.MaxMessageBytes
	var body io.Reader = http.MaxBytesReader(nil, r.Body, int64(limit)*2+64) // room for base64 and the prefixes
	if p.text {
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	if !p.grpcWeb && !p.streaming {
		data, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
		if err != nil {
			return nil, readError(err)
		}
		if len(data) > limit {
			return nil, &translate.SizeError{Size: int64(len(data)), Limit: int64(limit)}
		}
		return translate.Decompress(p.reqEnc, data, limit)
	}
	msg, err := readEnvelope(body, p.reqEnc, limit)
	if errors.Is(err, io.EOF) {
		return nil, status.Error(codes.Unimplemented, "the request has no message: a unary or server-streaming call takes exactly one")
	}
	if err != nil {
		return nil, err
	}
	if _, err := readEnvelope(body, p.reqEnc, limit); !errors.Is(err, io.EOF) {
		if err == nil {
			err = status.Error(codes.Unimplemented, "the request has more than one message: a unary or server-streaming call takes exactly one")
		}
		return nil, err
	}
	return msg, nil
}

// readEnvelope reads one enveloped message from body, decompressing it
// with enc when its flag says so; io.EOF when body ends before it starts.
func readEnvelope(body io.Reader, enc string, limit int) ([]byte, error) {
	var hdr [translate.EnvelopeHeaderLen]byte
	if n, err := io.ReadFull(body, hdr[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, readError(err)
	}
	flags, n, err := translate.ParseEnvelopeHeader(hdr, limit)
	if err != nil {
		return nil, err
	}
	if flags&^translate.FlagCompressed != 0 {
		return nil, &translate.BadRequestError{Description: "the request frame is not a message"}
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(body, msg); err != nil {
		return nil, readError(err)
	}
	if flags&translate.FlagCompressed == 0 {
		return msg, nil
	}
	if enc == "" || enc == "identity" {
		return nil, status.Error(codes.Internal, "a message is flagged compressed but the request names no compression")
	}
	return translate.Decompress(enc, msg, limit)
}

func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return status.Error(codes.ResourceExhausted, "the request body is too large")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &translate.BadRequestError{Description: "the request body ends before its message"}
	}
	return &translate.BadRequestError{Description: "reading the request body: " + err.Error()}
}

// deadline applies Grpc-Timeout (gRPC-Web) or Connect-Timeout-Ms.
func deadline(r *http.Request) (context.Context, context.CancelFunc, error) {
	ctx := r.Context()
	if v := r.Header.Get("Connect-Timeout-Ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || len(v) > 10 {
			return nil, nil, &translate.BadRequestError{Field: "Connect-Timeout-Ms", Description: "invalid Connect-Timeout-Ms header " + strconv.Quote(v)}
		}
		ctx, cancel := context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		return ctx, cancel, nil
	}
	if v := r.Header.Get("Grpc-Timeout"); v != "" {
		d, ok := translate.ParseGRPCTimeout(v)
		if !ok {
			return nil, nil, &translate.BadRequestError{Field: "Grpc-Timeout", Description: "invalid Grpc-Timeout header " + strconv.Quote(v)}
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	return ctx, cancel, nil
}

// writer writes one response in the request's framing.
type writer struct {
	h       *Handler
	w       http.ResponseWriter
	p       protocol
	route   *router.Route
	call    *router.Call
	header  metadata.MD
	started bool
	// rc, a server stream's, flushes what was written (the relay says
	// when: router.Call.Flush); a unary answer goes out in one write when
	// the handler returns.
	rc *http.ResponseController
	// notFound answers a Connect unary error 404, as Connect does for an
	// unknown method, rather than its code's status.
	notFound bool
}

// start writes the HTTP header of a successful (so far) response.
func (o *writer) start() {
	o.started = true
	o.headers()
	hdr := o.w.Header()
	hdr.Set("Content-Type", o.p.ct)
	switch {
	case o.p.grpcWeb:
		hdr.Set("Grpc-Accept-Encoding", translate.Encodings)
		if o.p.respEnc != "" {
			hdr.Set("Grpc-Encoding", o.p.respEnc)
		}
	case o.p.streaming:
		hdr.Set("Connect-Accept-Encoding", translate.Encodings)
		if o.p.respEnc != "" {
			hdr.Set("Connect-Content-Encoding", o.p.respEnc)
		}
	default:
		hdr.Set("Accept-Encoding", translate.Encodings)
		if o.p.respEnc != "" {
			hdr.Set("Content-Encoding", o.p.respEnc)
		}
	}
	o.w.WriteHeader(http.StatusOK)
}

// headers adds the headers the gateway sets itself (Call.ResponseHeader)
// and the upstream's header metadata, less the keys of its own hop, to the
// response header.
func (o *writer) headers() {
	hdr := o.w.Header()
	if o.call != nil {
		for k, vs := range o.call.ResponseHeader {
			hdr[http.CanonicalHeaderKey(k)] = vs
		}
	}
	for k, vs := range o.header {
		if !ingress.Reserved(k) {
			hdr[http.CanonicalHeaderKey(k)] = vs
			o.expose(http.CanonicalHeaderKey(k))
		}
	}
}

// expose lets a cross-origin page read the response header name, when the
// request came from an allowed origin.
func (o *writer) expose(name string) {
	if hdr := o.w.Header(); hdr.Get("Access-Control-Expose-Headers") != "" {
		hdr.Set("Access-Control-Expose-Headers", hdr.Get("Access-Control-Expose-Headers")+", "+name)
	}
}

// send writes one response message.
func (o *writer) send(msg []byte) error {
	if o.p.json {
		resp, err := o.route.Binding.EncodeResponse(msg)
		if err != nil {
			return status.Errorf(codes.Internal, "undecodable upstream response: %v", err)
		}
		msg = resp.Body
	}
	if !o.started {
		o.start()
	}
	if !o.p.grpcWeb && !o.p.streaming {
		_, err := o.w.Write(translate.Compress(nil, o.p.respEnc, msg))
		return err
	}
	if o.p.respEnc != "" && len(msg) >= translate.MinCompressBytes {
		return o.frame(translate.FlagCompressed, translate.Compress(nil, o.p.respEnc, msg))
	}
	return o.frame(0, msg)
}

// frame writes one envelope.
func (o *writer) frame(flags byte, payload []byte) error {
	b := translate.AppendEnvelope(nil, flags, payload)
	if o.p.text {
		b = []byte(base64.StdEncoding.EncodeToString(b))
	}
	_, err := o.w.Write(b)
	return err
}

// end finishes the response with the call's outcome and returns its status.
func (o *writer) end(err error, trailer metadata.MD) *spb.Status {
	st := &spb.Status{}
	if err != nil {
		st = translate.CallStatus(err)
		var size *translate.SizeError
		if errors.As(err, &size) {
			st = &spb.Status{Code: int32(codes.ResourceExhausted), Message: size.Error()}
		}
	}
	switch {
	case o.p.grpcWeb:
		if !o.started {
			o.start()
		}
		o.frame(translate.FlagTrailer, translate.GRPCWebTrailer(st, trailer))
	case o.p.streaming:
		if !o.started {
			o.start()
		}
		o.frame(translate.FlagEndStream, translate.ConnectEndStream(st, trailer))
	case err != nil: // Connect unary
		if o.started {
			return st // the message is out; the error came after it
		}
		// As on success: the upstream's header metadata as headers, its
		// trailer as Trailer-* headers.
		o.headers()
		o.trailerHeaders(trailer)
		o.w.Header().Set("Content-Type", "application/json")
		if o.notFound {
			o.w.WriteHeader(http.StatusNotFound)
		} else {
			o.w.WriteHeader(translate.ConnectHTTPStatus(codes.Code(st.GetCode())))
		}
		o.w.Write(translate.ConnectErrorJSON(st))
	}
	return st
}

// trailerHeaders sends trailer metadata as Connect unary's Trailer-*
// headers.
func (o *writer) trailerHeaders(trailer metadata.MD) {
	for k, vs := range trailer {
		if !ingress.Reserved(k) {
			o.w.Header()["Trailer-"+http.CanonicalHeaderKey(k)] = vs
			o.expose("Trailer-" + http.CanonicalHeaderKey(k))
		}
	}
}

// stream is the router.Stream of a server-streaming call.
type stream struct {
	out    *writer
	decode func() ([]byte, error)
	done   bool
}

func (s *stream) Recv() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	s.done = true
	return s.decode()
}

func (s *stream) SetHeader(md metadata.MD) error {
	s.out.header = md
	return nil
}

func (s *stream) Send(msg []byte) error { return s.out.send(msg) }

// checkWire returns msg, a binary request message, once it parses as the
// method's input: malformed bytes are the client's mistake, refused here
// with INVALID_ARGUMENT, rather than the upstream's parse failure (gRPC
// INTERNAL, HTTP 500 over Connect). It runs in Dispatch, after every policy
// passed, so a refused call costs no parse. A walk of the bytes against
// the descriptor certifies almost every valid message without building
// one; only what it leaves in doubt is decoded.
func checkWire(route *router.Route, msg []byte) ([]byte, error) {
	if len(msg) == 0 || translate.WireValid(route.Method.Input(), msg) {
		return msg, nil
	}
	if err := proto.Unmarshal(msg, dynamicpb.NewMessage(route.Method.Input())); err != nil {
		return nil, &translate.BadRequestError{Description: "the request is not a valid " + string(route.Method.Input().FullName()) + " message in protobuf wire format"}
	}
	return msg, nil
}
