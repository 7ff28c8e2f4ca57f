package rest

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// serveStream answers a streaming call. The answer of a server stream is
// newline-delimited JSON ({"result": message} per line) by default,
// Server-Sent Events when the client accepts text/event-stream, each message
// flushed as it arrives. A client stream's request body is a stream of JSON
// messages (see messageReader), read as the upstream takes them; a method
// with one response answers it as a unary call does. A bidirectional
// stream reads and writes at once where the connection allows (HTTP/2, or
// HTTP/1.1 with full duplex enabled), half-duplex otherwise.
// After the first message an error is the last line ({"error": status}) or
// the final "status" event. Before it, the answer gets the error's HTTP
// status; its body is the status alone when the gateway refused the call
// itself (a bad request, a policy), and, on the NDJSON path, the
// {"error": status} line when the stream failed (the upstream's error, an
// undecodable message), as grpc-gateway frames it.
func (h *Handler) serveStream(ctx context.Context, w http.ResponseWriter, r *http.Request, gen *router.Routes, call *router.Call, decodeMessage func([]byte) ([]byte, error)) int {
	s := &restStream{
		w: w, rc: http.NewResponseController(w), binding: call.Route.Binding, decode: call.Decode,
		sse: strings.Contains(r.Header.Get("Accept"), "text/event-stream"), call: call,
	}
	// A stream outlives the server's read timeout, which would otherwise
	// cancel it.
	s.rc.SetReadDeadline(time.Time{})
	md := call.Route.Method
	if md.IsStreamingClient() {
		s.messages = newMessageReader(r.Body, h.maxBody, decodeMessage)
		if r.ProtoMajor == 1 {
			// The connection ends with the call: net/http would otherwise
			// read what the client has not sent of the body, to reuse the
			// connection, while the stream may still read it, and a stream
			// that ends before its body cannot leave the connection in a
			// state to carry another request.
			w.Header().Set("Connection", "close")
		}
		if md.IsStreamingServer() {
			_ = s.rc.EnableFullDuplex() // HTTP/2 is full duplex already
		} else {
			return h.serveClientStream(ctx, w, gen, call, s)
		}
	}
	call.Stream = s
	call.Flush = s.rc.Flush // Send only writes: the relay flushes
	defer s.stopReading()   // once the answer is written
	err := call.Route.Handler.Handle(ctx, call)
	if !s.started {
		if err != nil {
			for k, vs := range call.ResponseHeader {
				w.Header()[http.CanonicalHeaderKey(k)] = vs
			}
			if call.Reply != nil {
				writeMetadata(w.Header(), call.Reply.Header)
				writeMetadata(w.Header(), call.Reply.Trailer)
			}
			_, undecodable := err.(*upstreamMessageError)
			st, code := errorStatus(err), http.StatusBadGateway
			if !undecodable {
				code = translate.HTTPStatus(codes.Code(st.GetCode()))
			}
			if !s.sse && (call.Reply != nil || undecodable) {
				// The stream failed before its first message.
				body := translate.NDJSONError(translate.StatusJSON(st, gen.Resolver))
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.WriteHeader(code)
				w.Write(body)
				return code
			}
			return h.writeStatus(w, gen, code, st)
		}
		s.start("application/json")
	}
	if err == nil && !s.sse {
		return http.StatusOK
	}
	st := &spb.Status{}
	if err != nil {
		st = errorStatus(err)
		if r.Context().Err() != nil {
			return 499 // the client went away: nobody reads the status
		}
	}
	body := translate.StatusJSON(st, gen.Resolver)
	if s.sse {
		w.Write(translate.SSEEvent("status", 0, body))
	} else {
		w.Write(translate.NDJSONError(body))
	}
	s.rc.Flush()
	return http.StatusOK
}

// restStream is the router.Stream of a server-streaming REST call.
type restStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	binding *translate.Binding
	decode  func() ([]byte, error)
	sse     bool
	call    *router.Call
	header  metadata.MD
	started bool   // the HTTP header is written
	raw     bool   // messages are HttpBody bytes, written unframed
	seq     uint64 // SSE event ids
	sent    bool   // the request message was handed out
	// messages are a client stream's request messages (nil: one message).
	messages *messageReader
	// readMu is held while a Recv reads the body; stopped, set under it,
	// ends the reading once the call is over (net/http forbids a read of
	// the body after the handler returns).
	readMu  sync.Mutex
	stopped bool
	// reply, for a method with one response, holds it until the call ends.
	reply   []byte
	replied bool
}

// Recv hands out the request messages: the next of a client stream, or
// the one decoded from the HTTP request.
func (s *restStream) Recv() ([]byte, error) {
	if s.messages != nil {
		s.readMu.Lock()
		defer s.readMu.Unlock()
		if s.stopped {
			return nil, io.EOF
		}
		return s.messages.next()
	}
	if s.sent {
		return nil, io.EOF
	}
	s.sent = true
	return s.decode()
}

// stopReading ends a client stream's reading of the body once the answer
// is written, before the handler returns: the upstream may end the call
// while a Recv still waits for the client, and net/http forbids reading
// the body after the handler has returned. A read deadline unblocks a Recv
// in progress (only then: it ends the connection's reading), and no Recv
// reads after it.
func (s *restStream) stopReading() {
	if s.messages == nil {
		return
	}
	if !s.readMu.TryLock() { // a Recv waits for the client: unblock it
		_ = s.rc.SetReadDeadline(time.Now())
		s.readMu.Lock()
	}
	s.stopped = true
	s.readMu.Unlock()
}

func (s *restStream) SetHeader(md metadata.MD) error {
	s.header = md
	return nil
}

// start writes the HTTP header for messages of the given content type.
func (s *restStream) start(contentType string) {
	s.started = true
	h := s.w.Header()
	for k, vs := range s.call.ResponseHeader {
		h[http.CanonicalHeaderKey(k)] = vs
	}
	writeMetadata(h, s.header)
	switch {
	case s.sse:
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
	case contentType != "application/json":
		s.raw = true // a stream of HttpBody chunks is the body itself
		h.Set("Content-Type", contentType)
	default:
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	s.w.WriteHeader(http.StatusOK)
}

func (s *restStream) Send(msg []byte) error {
	if !s.call.Route.Method.IsStreamingServer() {
		s.reply, s.replied = msg, true // answered whole once the stream ends
		return nil
	}
	resp, err := s.binding.EncodeResponse(msg)
	if err != nil {
		return &upstreamMessageError{err}
	}
	if !s.started {
		s.start(resp.ContentType)
	}
	var out []byte
	switch {
	case s.sse:
		s.seq++
		out = translate.SSEEvent("", s.seq, resp.Body)
	case s.raw:
		out = resp.Body
	default:
		out = translate.NDJSONResult(resp.Body)
	}
	_, err = s.w.Write(out)
	return err
}

// upstreamMessageError is an upstream message that does not decode as the
// method's response type.
type upstreamMessageError struct{ err error }

func (e *upstreamMessageError) Error() string {
	return "undecodable upstream response: " + e.err.Error()
}

// errorStatus is the google.rpc.Status that err stands for.
func errorStatus(err error) *spb.Status {
	if e, ok := err.(*upstreamMessageError); ok {
		return &spb.Status{Code: int32(codes.Internal), Message: e.Error()}
	}
	return translate.CallStatus(err)
}

// serveClientStream answers a client-streaming call: the one response as a
// unary call's answer, or its error status.
func (h *Handler) serveClientStream(ctx context.Context, w http.ResponseWriter, gen *router.Routes, call *router.Call, s *restStream) int {
	call.Stream = s
	err := call.Route.Handler.Handle(ctx, call)
	// Before the answer: writing it discards what is left of the body
	// (the request is not full duplex), which must not meet a Recv.
	s.stopReading()
	for k, vs := range call.ResponseHeader {
		w.Header()[http.CanonicalHeaderKey(k)] = vs
	}
	writeMetadata(w.Header(), s.header)
	if call.Reply != nil {
		writeMetadata(w.Header(), call.Reply.Trailer)
	}
	if err == nil && !s.replied {
		err = status.Error(codes.Internal, "the upstream ended the call without a response")
	}
	if err != nil {
		return h.writeError(w, gen, err)
	}
	return h.writeMessage(w, gen, s.binding, s.reply)
}
