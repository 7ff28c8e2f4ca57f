// Package websocket is the WebSocket ingress: every gRPC method (unary,
// client-, server- and bidirectional streaming) is reached by upgrading a
// GET to Prefix + "/package.Service/Method", after the route's policy chain
// has run on the upgrade request.
//
// Subprotocols: "rosetta.json" (the default) carries one JSON text frame per
// message; "rosetta.proto" carries one binary protobuf frame per message. A
// bearer token may be offered as a subprotocol "rosetta.bearer.TOKEN"
// beside one of those two (browsers cannot set the Authorization header).
//
// Client to gateway: one frame per request message; an empty text frame
// half-closes the client's side without closing the socket. Gateway to
// client: each response message as {"result": message} (JSON) or a binary
// frame (proto), then a last text frame {"status": google.rpc.Status}, then
// a close frame: 1000 for OK, 4000 + the gRPC code otherwise (4005
// NOT_FOUND, 4008 RESOURCE_EXHAUSTED, ...), and 1002 (protocol error) when
// the client broke the WebSocket protocol.
package websocket

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/coder/websocket"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/accesslog"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/ingress"
)

// The subprotocols.
const (
	// JSONProtocol carries messages as JSON text frames (the default).
	JSONProtocol = "rosetta.json"
	// ProtoProtocol carries messages as binary protobuf frames.
	ProtoProtocol = "rosetta.proto"
	// BearerProtocolPrefix, followed by a token, offers a bearer token.
	BearerProtocolPrefix = "rosetta.bearer."
)

// Options configure the WebSocket ingress.
type Options struct {
	// Prefix is the path prefix of every method (default "/ws").
	Prefix string
	// PingInterval is how often the gateway pings the client; a ping not
	// answered within the interval ends the call (default 15s).
	PingInterval time.Duration
	// IdleTimeout ends a call that has exchanged no message for that long
	// (default 30s).
	IdleTimeout time.Duration
	// CloseTimeout bounds, once a call has ended, the writing of a message
	// still in progress and of the final status and close frame, to a
	// client that stopped reading (default 5s).
	CloseTimeout time.Duration
	// WriteTimeout bounds the writing of each message to the client
	// (default 10s): a client that reads nothing for that long while a
	// message waits is dropped (the socket closed at once, the call ended
	// with RESOURCE_EXHAUSTED, counted as a stream ended for
	// "write_timeout" and logged). At most one message per call waits: a
	// client that does not read stops the upstream (backpressure).
	WriteTimeout time.Duration
	// Logger receives a warning for each client dropped (nil: none).
	Logger *slog.Logger
	// MaxMessageBytes bounds each client message (default 4 MiB); a larger
	// one ends the call with RESOURCE_EXHAUSTED.
	MaxMessageBytes int64
	// ForwardHeaders are forwarded upstream (nil: the ingress defaults).
	ForwardHeaders []string
	// Hold, when set, keeps what the request's context refers to (the
	// gateway's generation) in use until the returned release is called:
	// an upgraded call outlives the ServeHTTP that started it.
	Hold func(ctx context.Context) (release func())
}

// Handler is the WebSocket ingress http.Handler.
type Handler struct {
	routes  func(context.Context) *router.Routes
	opts    Options
	forward *ingress.Forwarder

	mu      sync.Mutex
	calls   map[*stream]struct{} // the calls in progress
	closing bool                 // Shutdown was called
	done    sync.WaitGroup       // one per call in progress

	// The counts of the metrics (see Collector).
	open    atomic.Int64
	in, out atomic.Uint64
}

// New returns a Handler serving the WebSocket routes of the generation
// routes returns for a request's context.
func New(routes func(context.Context) *router.Routes, opts Options) *Handler {
	if opts.Prefix == "" {
		opts.Prefix = "/ws"
	}
	opts.Prefix = strings.TrimSuffix(opts.Prefix, "/")
	if opts.PingInterval <= 0 {
		opts.PingInterval = 15 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 4 << 20
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{routes: routes, opts: opts, forward: ingress.NewForwarder(opts.ForwardHeaders), calls: map[*stream]struct{}{}}
}

// IsUpgrade reports whether r asks for a WebSocket under the handler's
// prefix.
func (h *Handler) IsUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && strings.HasPrefix(r.URL.Path, h.opts.Prefix+"/")
}

// ServeHTTP runs the chain on an upgrade request and, once it passes,
// upgrades and pumps the messages. The call runs in a goroutine of its own:
// ServeHTTP returns once the socket is upgraded, so that net/http lets go
// of what it held for the request (its buffers, the response, its
// goroutine) while the call lasts; a call refused before the upgrade is
// answered before ServeHTTP returns.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.newStream(w, r)
	if s == nil { // refused, and answered
		return
	}
	release := func() {}
	if h.opts.Hold != nil {
		release = h.opts.Hold(r.Context())
	}
	done := make(chan struct{})
	go func() {
		defer release()
		s.run()
		close(done)
	}()
	select {
	case <-s.upgraded:
	case <-done:
	}
}

// newStream builds the call of an upgrade request and registers it, or
// answers the request and returns nil when it is refused before its chain
// runs. It runs in net/http's goroutine, so that its frame is not on the
// stack of the call's goroutine for the life of the call.
func (h *Handler) newStream(w http.ResponseWriter, r *http.Request) *stream {
	route := h.routes(r.Context()).WebSocket[strings.TrimPrefix(r.URL.Path, h.opts.Prefix)]
	if route == nil || route.Method == nil {
		h.refuse(w, http.StatusNotFound, codes.NotFound, "no WebSocket method at "+r.URL.Path)
		return nil
	}
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		h.refuse(w, http.StatusUpgradeRequired, codes.FailedPrecondition, "a WebSocket method needs a GET upgrade request")
		return nil
	}
	token := bearerProtocol(r)
	md, err := h.forward.Metadata(r)
	if err != nil {
		st := status.Convert(err)
		h.refuse(w, http.StatusBadRequest, st.Code(), st.Message())
		return nil
	}
	call := &router.Call{
		Route:    route,
		Protocol: router.WebSocket,
		Peer:     ingress.Peer(r),
		Incoming: h.forward.Incoming(r),
		Metadata: md,
		Target:   route.Target,
	}
	if token != "" {
		if r.Header.Get("Authorization") != "" {
			h.refuse(w, http.StatusBadRequest, codes.InvalidArgument, "more than one authorization credential: send the token in the Authorization header or as the subprotocol, not both")
			return nil
		}
		// The jwt policy verifies it, and forwards it when the call is
		// marked (Authorization is in http.forward_headers).
		call.Incoming["authorization"] = []string{"Bearer " + token}
	}
	delete(call.Incoming, "sec-websocket-protocol") // it may carry the token
	call.RawQuery = r.URL.RawQuery
	if r.TLS != nil {
		call.PeerCertificates = r.TLS.PeerCertificates
	}
	// Until the upgrade the call ends with the request (a client gone);
	// after it, with the socket.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	s := &stream{h: h, w: w, r: r, call: call, ctx: ctx, cancel: cancel, upgraded: make(chan struct{}),
		unwatch: context.AfterFunc(r.Context(), cancel)}
	if !h.track(s) {
		s.unwatch()
		cancel()
		h.refuse(w, http.StatusServiceUnavailable, codes.Unavailable, "the gateway is shutting down")
		return nil
	}
	call.Stream = s
	return s
}

// run runs the call's chain, which opens the socket (closing upgraded) and
// pumps the messages, then ends the call. It is the only frame of ours
// under the chain's for the life of the call: the smaller the frames an
// idle call waits in, the smaller the stack the garbage collector leaves
// its goroutine.
func (s *stream) run() {
	s.end(s.call.Route.Handler.Handle(s.ctx, s.call))
}

// end ends the call with the chain's result (finish) and lets go of it.
func (s *stream) end(err error) {
	s.finish(err)
	if rec := accesslog.FromContext(s.ctx); rec != nil { // the messages are the call's bytes
		rec.Update(func(rec *accesslog.Record) { rec.BytesIn, rec.BytesOut = s.bytesIn.Load(), s.bytesOut.Load() })
	}
	s.h.untrack(s)
	s.unwatch()
	s.cancel()
}

// track registers a call in progress, unless the handler is shutting down.
func (h *Handler) track(s *stream) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.calls[s] = struct{}{}
	h.done.Add(1)
	h.open.Add(1)
	return true
}

func (h *Handler) untrack(s *stream) {
	h.mu.Lock()
	delete(h.calls, s)
	h.mu.Unlock()
	h.open.Add(-1)
	h.done.Done()
}

// Shutdown ends every call in progress with UNAVAILABLE (close code 4014),
// refuses new ones, and waits until they have sent their final status or
// ctx ends. The HTTP server does not track upgraded connections: call it
// after the server's own Shutdown.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	for s := range h.calls {
		s.fail(status.Error(codes.Unavailable, "the gateway is shutting down"))
	}
	h.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		h.done.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refuse answers a request that is not upgraded with a google.rpc.Status.
func (h *Handler) refuse(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	refuseStatus(w, httpStatus, &spb.Status{Code: int32(code), Message: msg}, nil)
}

// refuseStatus answers with st; res resolves the Any types of its details.
func refuseStatus(w http.ResponseWriter, httpStatus int, st *spb.Status, res translate.Resolver) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(translate.StatusJSON(st, res))
}

// bearerProtocol returns the bearer token offered as a subprotocol. (A
// token in the access_token query parameter is the querytoken step's
// business, in the method's chain.)
func bearerProtocol(r *http.Request) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), BearerProtocolPrefix); ok && t != "" {
				return t
			}
		}
	}
	return ""
}

// stream is the router.Stream of one WebSocket call. The socket is
// accepted lazily, by the first Recv or Send, which Dispatch makes only
// after the chain passed: a refused call gets a plain HTTP answer.
type stream struct {
	h    *Handler
	w    http.ResponseWriter
	r    *http.Request
	call *router.Call

	once sync.Once
	conn *ws.Conn
	lazy *lazyConn // the connection under conn, unless TLS
	// readGate orders the reader's look at what is buffered
	// (readerIdle) and Close's own reads.
	readGate sync.Mutex
	openErr  error
	binary   bool

	ctx      context.Context
	cancel   context.CancelFunc
	upgraded chan struct{} // closed once the socket is open: ServeHTTP returns
	unwatch  func() bool   // stops ending the call with the request's context
	draining bool          // the client's messages are over: drain reads the socket
	idle     *time.Timer
	// bytesIn and bytesOut count the messages' bytes, for the access log.
	bytesIn, bytesOut atomic.Int64

	pingMu sync.Mutex
	ping   *time.Timer // runs heartbeat; a timer, not a goroutine, per socket

	mu          sync.Mutex
	failure     error // why the gateway ended the call (idle, ping, oversize ...)
	protocolErr bool  // the client broke the WebSocket protocol: close with 1002
}

var errRefused = errors.New("the call was refused before the upgrade")

// open accepts the socket, once.
func (s *stream) open() error {
	s.once.Do(func() {
		// The server's read and write timeouts must not cut the socket.
		rc := http.NewResponseController(s.w)
		rc.SetReadDeadline(time.Time{})
		rc.SetWriteDeadline(time.Time{})
		for k, vs := range s.call.ResponseHeader {
			s.w.Header()[http.CanonicalHeaderKey(k)] = vs
		}
		conn, err := ws.Accept(hijacker{s.w, &s.lazy}, s.r, &ws.AcceptOptions{
			Subprotocols:       []string{JSONProtocol, ProtoProtocol},
			InsecureSkipVerify: true, // the Handler checked the origin against its own allow-list
		})
		if err != nil {
			s.openErr = err
			return
		}
		conn.SetReadLimit(-1) // read enforces MaxMessageBytes, to answer with a status
		s.conn = conn
		s.binary = conn.Subprotocol() == ProtoProtocol
		s.idle = time.AfterFunc(s.h.opts.IdleTimeout, func() {
			s.fail(status.Errorf(codes.DeadlineExceeded, "no message for %v: idle timeout", s.h.opts.IdleTimeout))
		})
		s.pingMu.Lock()
		s.ping = time.AfterFunc(s.h.opts.PingInterval, s.heartbeat)
		s.pingMu.Unlock()
		// The call now lives with the socket: ServeHTTP returns, and
		// nothing here refers to the request's response any more.
		s.unwatch()
		s.w, s.r = nil, nil
		close(s.upgraded)
	})
	return s.openErr
}

// fail ends the call with err unless it already ended, and returns err.
func (s *stream) fail(err error) error {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.mu.Unlock()
	s.cancel()
	return err
}

// failRead ends the call on a read error: a frame that breaks the WebSocket
// protocol (RFC 6455: an unmasked client frame, a reserved opcode or bit, a
// fragmented control frame ...) with INVALID_ARGUMENT and close code 1002,
// a connection the client closed or lost with CANCELLED.
func (s *stream) failRead(err error, gone string) error {
	if s.ctx.Err() != nil { // the call ended first, and closed the socket
		return s.ctx.Err()
	}
	var netErr net.Error
	if ws.CloseStatus(err) != -1 || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &netErr) {
		return s.fail(status.Error(codes.Canceled, gone))
	}
	s.mu.Lock()
	s.protocolErr = true
	s.mu.Unlock()
	return s.fail(status.Errorf(codes.InvalidArgument, "WebSocket protocol error: %v", err))
}

// readerIdle reports whether the client's next message is still to
// arrive (lazyConn.idle). coder/websocket's Close reads the socket itself
// (the client's reply to the close frame) while the reader may be about
// to park: readGate keeps the two apart.
func (s *stream) readerIdle() bool {
	s.readGate.Lock()
	defer s.readGate.Unlock()
	return s.lazy.idle()
}

// touch restarts the idle timer.
func (s *stream) touch() { s.idle.Reset(s.h.opts.IdleTimeout) }

// next reads the client's next message: its bytes, nil for the
// half-close (an empty text frame), or the error that ends the call. The
// socket is read only while someone waits for a message (Recv, or drain
// once the client's messages are over), which also answers the client's
// pings and reads the pongs of the heartbeat.
func (s *stream) next() ([]byte, error) {
	if s.lazy != nil && s.readerIdle() {
		s.lazy.park()
	}
	// Not the call's context: cancelling a read closes the socket, and
	// the final status must still go out. Closing the socket ends it.
	typ, rd, err := s.conn.Reader(context.Background())
	if err != nil {
		return nil, s.failRead(err, "the client closed the WebSocket")
	}
	data, err := io.ReadAll(io.LimitReader(rd, s.h.opts.MaxMessageBytes+1))
	if err != nil {
		return nil, s.failRead(err, "reading a WebSocket message")
	}
	if int64(len(data)) > s.h.opts.MaxMessageBytes {
		return nil, s.fail(status.Errorf(codes.ResourceExhausted, "a message exceeds the limit of %d bytes", s.h.opts.MaxMessageBytes))
	}
	s.touch()
	s.h.in.Add(1)
	s.bytesIn.Add(int64(len(data)))
	switch {
	case typ == ws.MessageText && len(data) == 0:
		return nil, nil
	case s.binary && typ != ws.MessageBinary:
		return nil, s.fail(status.Error(codes.InvalidArgument, "the rosetta.proto subprotocol carries messages in binary frames"))
	case !s.binary && typ != ws.MessageText:
		return nil, s.fail(status.Error(codes.InvalidArgument, "the rosetta.json subprotocol carries messages in text frames"))
	}
	return data, nil
}

// drain reads the socket once the client's messages are over (after its
// half-close, or after the one request message of a unary or server
// streaming method), until the call ends: it notices a client that goes
// away, answers pings, and refuses a message that comes too late.
func (s *stream) drain(halfClosed bool) {
	for {
		data, err := s.next()
		switch {
		case err != nil:
			return
		case data == nil && !halfClosed:
			halfClosed = true
		case halfClosed:
			s.fail(status.Error(codes.InvalidArgument, "a message after the half-close (empty text frame)"))
			return
		default:
			s.fail(status.Error(codes.InvalidArgument, "the method takes one request message"))
			return
		}
	}
}

// heartbeat pings the client and, once it answers, schedules the next
// ping; a ping not answered within the interval ends the call.
func (s *stream) heartbeat() {
	if s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.opts.PingInterval)
	err := s.conn.Ping(ctx)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.fail(status.Errorf(codes.Unavailable, "the client did not answer a ping within %v", s.h.opts.PingInterval))
		}
		return
	}
	s.pingMu.Lock()
	s.ping.Reset(s.h.opts.PingInterval)
	s.pingMu.Unlock()
}

// Recv returns the next client message in wire form, read from the socket
// in the caller's goroutine.
func (s *stream) Recv() ([]byte, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	if s.draining {
		return nil, io.EOF
	}
	data, err := s.next()
	if err != nil {
		return nil, err
	}
	if data == nil || !s.call.Route.Method.IsStreamingClient() {
		s.draining = true
		go s.drain(data == nil)
	}
	if data == nil {
		return nil, io.EOF
	}
	if s.binary {
		return data, nil
	}
	return s.call.Route.Binding.DecodeRequest(&translate.Request{Body: data, ContentType: "application/json"})
}

// SetHeader drops the upstream's response header: the upgrade answer has
// already been sent.
func (s *stream) SetHeader(metadata.MD) error { return s.open() }

// Send writes one response message; it blocks while the client does not
// read.
func (s *stream) Send(msg []byte) error {
	if err := s.open(); err != nil {
		return err
	}
	s.touch()
	if s.binary {
		return s.write(ws.MessageBinary, msg)
	}
	resp, err := s.call.Route.Binding.EncodeResponse(msg)
	if err != nil {
		return status.Errorf(codes.Internal, "undecodable upstream response: %v", err)
	}
	return s.write(ws.MessageText, translate.NDJSONResult(resp.Body))
}

// write writes one response message, unless the call has ended.
// coder/websocket closes the socket when the context of a write ends before
// the write returns, so the write does not use the call's context: a call
// failed during a write (by Shutdown, the idle timeout ...) would lose its
// socket, and the client its final status. A write in progress gets
// CloseTimeout after the call ends instead, which still unblocks one to a
// client that stopped reading. A write that takes longer than WriteTimeout
// drops the client (dropSlow).
func (s *stream) write(typ ws.MessageType, p []byte) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(s.ctx), s.h.opts.WriteTimeout, errWriteTimeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, func() {
		grace := time.NewTimer(s.h.opts.CloseTimeout)
		defer grace.Stop()
		select {
		case <-grace.C:
			cancel()
		case <-ctx.Done(): // the write returned
		}
	})
	defer stop()
	s.h.out.Add(1)
	s.bytesOut.Add(int64(len(p)))
	err := s.conn.Write(ctx, typ, p)
	if err != nil && context.Cause(ctx) == errWriteTimeout {
		return s.dropSlow()
	}
	return err
}

// errWriteTimeout is the cause of a write's context that timed out.
var errWriteTimeout = errors.New("write timeout")

// dropSlow ends the call of a client that read nothing for WriteTimeout
// while a message waited for it. coder/websocket has already closed the
// socket (the write's context ended): the client gets no final status, it
// was not reading one.
func (s *stream) dropSlow() error {
	s.h.opts.Logger.Warn("WebSocket client dropped: it read nothing for the write timeout",
		"peer", s.call.Peer.String(), "method", "/"+string(s.call.Route.Method.FullName()), "write_timeout", s.h.opts.WriteTimeout)
	return s.fail(router.NewStreamEnd("write_timeout", status.Newf(codes.ResourceExhausted,
		"the client read nothing for %v: write timeout", s.h.opts.WriteTimeout)))
}

// finish ends the call with the chain's result: a plain HTTP answer when
// the socket was never opened, else the final status and the close frame.
// resolver resolves the Any types of the call's error details, from the
// schema of the generation the call runs on.
func (s *stream) resolver() translate.Resolver { return s.h.routes(s.ctx).Resolver }

func (s *stream) finish(err error) {
	refused := false
	s.once.Do(func() { refused, s.openErr = true, errRefused })
	s.mu.Lock()
	if s.failure != nil {
		err = s.failure
	}
	protocolErr := s.protocolErr
	s.mu.Unlock()
	if refused {
		st := translate.CallStatus(err)
		if err == nil { // a chain that did not dispatch: nothing to answer with
			st = &spb.Status{Code: int32(codes.Internal), Message: "the call ended before it started"}
		}
		refuseStatus(s.w, translate.HTTPStatus(codes.Code(st.GetCode())), st, s.resolver())
		return
	}
	if s.conn == nil { // the handshake failed: ws.Accept answered
		return
	}
	s.idle.Stop()
	s.pingMu.Lock()
	s.ping.Stop()
	s.pingMu.Unlock()
	st := &spb.Status{}
	if err != nil {
		st = translate.CallStatus(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.opts.CloseTimeout)
	defer cancel()
	body := append(append([]byte(`{"status":`), translate.StatusJSON(st, s.resolver())...), '}')
	if s.conn.Write(ctx, ws.MessageText, body) != nil {
		s.conn.CloseNow()
		return
	}
	code, reason := ws.StatusNormalClosure, ""
	if st.GetCode() != 0 {
		code, reason = ws.StatusCode(4000+st.GetCode()), st.GetMessage()
		if protocolErr {
			code = ws.StatusProtocolError
		}
		if len(reason) > 120 { // a close reason has at most 123 bytes
			reason = strings.ToValidUTF8(reason[:120], "")
		}
	}
	s.cancel() // stops the reader and the heartbeat, so Close reads the reply itself
	s.readGate.Lock()
	s.conn.Close(code, reason)
	s.readGate.Unlock()
}
