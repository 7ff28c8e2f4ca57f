// Package rest is the REST/JSON ingress: it matches HTTP requests against the
// route table, builds the protocol-neutral call, runs the route's chain and
// writes the answer as JSON (or raw HttpBody bytes), with errors as JSON
// google.rpc.Status bodies.
package rest

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/ingress"
)

// Options configure the REST ingress.
type Options struct {
	// MaxBodyBytes bounds request bodies (default 4 MiB); larger ones get 413.
	MaxBodyBytes int64
	// ForwardHeaders are forwarded upstream as metadata, besides
	// Grpc-Metadata-* (with the prefix stripped).
	ForwardHeaders []string
}

// Handler is the REST ingress http.Handler.
type Handler struct {
	routes  func(context.Context) *router.Routes
	maxBody int64
	forward *ingress.Forwarder
}

// New returns a Handler serving the HTTP routes of the generation routes
// returns for a request's context, asked once per request.
func New(routes func(context.Context) *router.Routes, opts Options) *Handler {
	h := &Handler{routes: routes, maxBody: opts.MaxBodyBytes, forward: ingress.NewForwarder(opts.ForwardHeaders)}
	if h.maxBody <= 0 {
		h.maxBody = 4 << 20
	}
	return h
}

// ServeHTTP transcodes one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, h.routes(r.Context()))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, gen *router.Routes) int {
	var buf [8]string
	m := gen.HTTP.Lookup(r.Method, r.URL.EscapedPath(), buf[:0])
	if m.Route == nil {
		if m.Allow != "" {
			w.Header().Set("Allow", m.Allow)
			return h.writeStatus(w, gen, http.StatusMethodNotAllowed, &spb.Status{Code: int32(codes.Unimplemented), Message: "method " + r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + m.Allow})
		}
		return h.writeStatus(w, gen, http.StatusNotFound, &spb.Status{Code: int32(codes.NotFound), Message: "no route for " + r.Method + " " + r.URL.Path})
	}
	route := m.Route
	body, code, st := h.readBody(r, route)
	if st != nil {
		return h.writeStatus(w, gen, code, st)
	}
	ctx, cancel, st := withGRPCTimeout(r)
	if st != nil {
		return h.writeStatus(w, gen, http.StatusBadRequest, st)
	}
	defer cancel()
	md, err := h.forward.Metadata(r)
	if err != nil {
		return h.writeError(w, gen, err)
	}
	call := &router.Call{
		Route:    route,
		Protocol: router.HTTP,
		Peer:     ingress.Peer(r),
		Incoming: h.forward.Incoming(r),
		Metadata: md,
		Target:   route.Target,
	}
	if r.TLS != nil {
		call.PeerCertificates = r.TLS.PeerCertificates
	}
	call.RawQuery = r.URL.RawQuery
	query := call.RawQuery
	if query != "" && len(route.CredentialParams) > 0 {
		query = withoutParams(query, call.QueryParams(), route.CredentialParams)
	}
	var decodeMessage func([]byte) ([]byte, error) // of a client stream
	if route.Binding != nil {
		req := &translate.Request{PathValues: m.PathValues, Query: query, Body: body, ContentType: r.Header.Get("Content-Type")}
		call.Decode = func() ([]byte, error) { return route.Binding.DecodeRequest(req) }
		decodeMessage = func(msg []byte) ([]byte, error) {
			each := *req
			each.Body, each.ContentType = msg, "application/json"
			return route.Binding.DecodeRequest(&each)
		}
	} else {
		call.Target = expandTarget(route, m.PathValues, query)
		call.Decode = func() ([]byte, error) { return body, nil }
	}
	if route.IsStreaming() {
		return h.serveStream(ctx, w, r, gen, call, decodeMessage)
	}
	err = route.Handler.Handle(ctx, call)
	for k, vs := range call.ResponseHeader {
		w.Header()[http.CanonicalHeaderKey(k)] = vs
	}
	if call.Reply != nil {
		writeMetadata(w.Header(), call.Reply.Header)
		writeMetadata(w.Header(), call.Reply.Trailer)
	}
	if err != nil {
		return h.writeError(w, gen, err)
	}
	if route.Binding == nil {
		return writeProxied(w, call.Reply)
	}
	return h.writeMessage(w, gen, route.Binding, call.Reply.Message)
}

// writeMessage answers 200 with the upstream's response message, encoded
// as the binding says (JSON, or an HttpBody's bytes).
func (h *Handler) writeMessage(w http.ResponseWriter, gen *router.Routes, b *translate.Binding, msg []byte) int {
	resp, err := b.EncodeResponse(msg)
	if err != nil {
		return h.writeStatus(w, gen, http.StatusBadGateway, &spb.Status{Code: int32(codes.Internal), Message: "undecodable upstream response: " + err.Error()})
	}
	w.Header().Set("Content-Type", resp.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(http.StatusOK)
	w.Write(resp.Body)
	return http.StatusOK
}

// readBody checks the content type and reads the body within the limit.
func (h *Handler) readBody(r *http.Request, route *router.Route) ([]byte, int, *spb.Status) {
	if route.Binding != nil && route.Binding.Body == translate.NoBody {
		return nil, 0, nil
	}
	if route.Binding != nil && !route.Binding.RawBody() && !isJSON(r.Header.Get("Content-Type")) {
		return nil, http.StatusUnsupportedMediaType, &spb.Status{Code: int32(codes.InvalidArgument), Message: "unsupported Content-Type " + strconv.Quote(r.Header.Get("Content-Type")) + "; send application/json"}
	}
	if route.Method != nil && route.Method.IsStreamingClient() {
		return nil, 0, nil // a stream of messages, read one at a time
	}
	if r.ContentLength > h.maxBody {
		return nil, http.StatusRequestEntityTooLarge, tooLarge(h.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, tooLarge(h.maxBody)
		}
		return nil, http.StatusBadRequest, &spb.Status{Code: int32(codes.InvalidArgument), Message: "reading request body: " + err.Error()}
	}
	return body, 0, nil
}

func tooLarge(limit int64) *spb.Status {
	return &spb.Status{Code: int32(codes.ResourceExhausted), Message: "request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"}
}

// isJSON accepts no content type (curl without -H), application/json and
// any application/*+json.
func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// writeMetadata returns upstream metadata as Grpc-Metadata-* headers.
func writeMetadata(h http.Header, md metadata.MD) {
	for k, vs := range md {
		if k == "content-type" || strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, ":") {
			continue
		}
		for _, v := range vs {
			h.Add("Grpc-Metadata-"+k, v)
		}
	}
}

// writeError answers an error from the chain.
func (h *Handler) writeError(w http.ResponseWriter, gen *router.Routes, err error) int {
	st := translate.CallStatus(err)
	return h.writeStatus(w, gen, translate.HTTPStatus(codes.Code(st.GetCode())), st)
}

func (h *Handler) writeStatus(w http.ResponseWriter, gen *router.Routes, code int, st *spb.Status) int {
	body := translate.StatusJSON(st, gen.Resolver)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
	return code
}

func writeProxied(w http.ResponseWriter, reply *router.Reply) int {
	if reply.ContentType != "" {
		w.Header().Set("Content-Type", reply.ContentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(reply.Message)))
	w.WriteHeader(reply.HTTPStatus)
	w.Write(reply.Message)
	return reply.HTTPStatus
}

// expandTarget substitutes the path variables of an HTTP proxy route into its
// rewrite target ("POST /v1/charge/{id}") and keeps the query.
func expandTarget(route *router.Route, vals []string, query string) string {
	t := route.Target
	for i, v := range route.Template.Variables {
		t = strings.ReplaceAll(t, "{"+strings.Join(v.FieldPath, ".")+"}", vals[i])
	}
	if query != "" {
		t += "?" + query
	}
	return t
}

// withoutParams returns the raw query, whose parameters are parsed, less
// those named in names (credentials the route's policies read), the others
// as they were sent.
func withoutParams(raw string, parsed url.Values, names []string) string {
	if !slices.ContainsFunc(names, parsed.Has) {
		return raw
	}
	kept := make([]string, 0, strings.Count(raw, "&")+1)
	for part := range strings.SplitSeq(raw, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && slices.Contains(names, k) {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// withGRPCTimeout applies a Grpc-Timeout request header ("100m", "5S") to
// the request context.
func withGRPCTimeout(r *http.Request) (context.Context, context.CancelFunc, *spb.Status) {
	v := r.Header.Get("Grpc-Timeout")
	if v == "" {
		ctx, cancel := context.WithCancel(r.Context())
		return ctx, cancel, nil
	}
	d, ok := translate.ParseGRPCTimeout(v)
	if !ok {
		return nil, nil, &spb.Status{Code: int32(codes.InvalidArgument), Message: "invalid Grpc-Timeout header " + strconv.Quote(v)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}
