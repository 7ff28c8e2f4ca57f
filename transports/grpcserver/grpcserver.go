// Package grpcserver is the native gRPC ingress: a grpc.Server that takes
// every method as raw bytes (grpc.UnknownServiceHandler with a pass-through
// codec), runs the route's policy chain and proxies the call, streams
// included, to the route's upstream. The same Server is either an
// http.Handler, served on the gateway's shared listener (h2c or TLS) beside
// REST and WebSocket, or, with Serve, a server on a listener of its own
// that runs grpc-go's own HTTP/2 transport (much cheaper per call than its
// http.Handler transport).
//
// Messages are protobuf (application/grpc, application/grpc+proto) or
// JSON (application/grpc+json, translated to protobuf for the upstream and
// back); other sub-types are UNIMPLEMENTED. Messages may be gzip
// compressed (grpc-encoding) in either direction: a response is compressed
// as its request was; the gateway advertises only the encodings it
// decodes, whatever the upstream's, and bounds a message's decompressed
// size by the message limit.
package grpcserver

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // grpc-encoding: gzip, both directions
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/ingress"
	"github.com/rosettagw/rosetta/transports/rawcodec"
)

// Options configure the gRPC ingress.
type Options struct {
	// MaxMessageBytes bounds each request message (default 4 MiB); a
	// larger one fails with RESOURCE_EXHAUSTED.
	MaxMessageBytes int
	// ServerOptions are added to the grpc.Server's own: what a server on
	// a listener of its own takes (credentials, keepalive, an interceptor
	// that does for each call what the shared listener does per request).
	ServerOptions []grpc.ServerOption
}

// Server is the gRPC ingress.
type Server struct {
	srv    *grpc.Server
	routes func(context.Context) *router.Routes
}

// New returns a Server serving the methods of the generation routes
// returns for a call's context.
func New(routes func(context.Context) *router.Routes, opts Options) *Server {
	maxMsg := opts.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = 4 << 20
	}
	s := &Server{routes: routes}
	s.srv = grpc.NewServer(append([]grpc.ServerOption{
		grpc.UnknownServiceHandler(s.handle),
		grpc.ForceServerCodecV2(rawcodec.Codec{}),
		grpc.MaxRecvMsgSize(maxMsg),
	}, opts.ServerOptions...)...)
	return s
}

// Serve serves native gRPC connections accepted on ln with grpc-go's own
// HTTP/2 transport, until Stop or GracefulStop; it returns nil then.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(ln)
}

// GracefulStop stops accepting connections and calls (GOAWAY) and waits
// for the calls in flight to end.
func (s *Server) GracefulStop() { s.srv.GracefulStop() }

// ServeHTTP serves one gRPC call (HTTP/2, Content-Type application/grpc).
// It uses grpc-go's http.Handler transport, which shares the gateway's
// listener at the cost of some of the native transport's speed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A stream outlives the server's read timeout.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	s.srv.ServeHTTP(w, r)
}

// Stop ends every call at once.
func (s *Server) Stop() { s.srv.Stop() }

// handle proxies one call.
func (s *Server) handle(_ any, ss grpc.ServerStream) error {
	fullMethod, _ := grpc.MethodFromServerStream(ss)
	return s.proxy(ss.Context(), fullMethod, ss)
}

func (s *Server) proxy(ctx context.Context, fullMethod string, ss grpc.ServerStream) error {
	route := s.routes(ctx).Methods[fullMethod]
	if route == nil || route.Method == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", fullMethod)
	}
	in, _ := metadata.FromIncomingContext(ctx)
	var addr string
	var certs []*x509.Certificate
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			certs = ti.State.PeerCertificates // verified by the listener
		}
	}
	json, err := jsonSubtype(first(in["content-type"]))
	if err != nil {
		return err
	}
	delete(in, ingress.ForwardAuthorization) // never the client's
	md, err := ingress.PassThrough(in, addr, first(in[":authority"]))
	if err != nil {
		return err
	}
	call := &router.Call{
		Route:            route,
		Protocol:         router.GRPC,
		Incoming:         in,
		Metadata:         md,
		Target:           route.Target,
		PeerCertificates: certs,
	}
	call.Peer, _ = netip.ParseAddrPort(addr)
	st := &stream{ss: ss, route: route, json: json, one: !route.Method.IsStreamingClient()}
	if route.IsStreaming() {
		call.Stream = st
	} else {
		call.Decode = st.single
	}
	err = route.Handler.Handle(ctx, call)
	if len(call.ResponseHeader) > 0 {
		ss.SetHeader(call.ResponseHeader)
	}
	if call.Reply != nil {
		// The upstream's header and trailer go back as they came, less
		// the keys of its own hop.
		if !st.headerSent {
			ss.SetHeader(ingress.WithoutReserved(call.Reply.Header))
		}
		ss.SetTrailer(ingress.WithoutReserved(call.Reply.Trailer))
	}
	if err != nil {
		return status.FromProto(translate.CallStatus(err)).Err()
	}
	if call.Stream == nil {
		return st.Send(call.Reply.Message)
	}
	return nil
}

// jsonSubtype says whether a request's Content-Type names JSON messages,
// refusing the sub-types the gateway does not read.
func jsonSubtype(ct string) (bool, error) {
	sub, _, _ := strings.Cut(strings.TrimPrefix(ct, "application/grpc"), ";")
	switch strings.TrimPrefix(sub, "+") {
	case "", "proto":
		return false, nil
	case "json":
		return true, nil
	}
	return false, status.Errorf(codes.Unimplemented, "unsupported gRPC content-type %q: use application/grpc+proto or application/grpc+json", ct)
}

// first is vs[0], or "".
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// stream is the router.Stream of one gRPC call.
type stream struct {
	ss         grpc.ServerStream
	route      *router.Route
	json       bool // JSON messages, translated to and from protobuf
	one        bool // the method takes one request message
	headerSent bool
}

// Recv returns the next request message; a method taking one has it
// checked for being the only one.
func (s *stream) Recv() ([]byte, error) {
	if s.one {
		s.one = false
		return s.single()
	}
	return s.recv()
}

func (s *stream) recv() ([]byte, error) {
	var msg []byte
	err := s.ss.RecvMsg(&msg)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err == nil && s.json {
		return s.route.Binding.DecodeRequest(&translate.Request{Body: msg, ContentType: "application/json"})
	}
	return msg, err
}

// single reads the one request message of a unary or server-streaming
// call: none, or more than one, is UNIMPLEMENTED, as the gRPC protocol
// says.
func (s *stream) single() ([]byte, error) {
	msg, err := s.recv()
	if errors.Is(err, io.EOF) {
		return nil, status.Error(codes.Unimplemented, "the request has no message: a unary or server-streaming call takes exactly one")
	}
	if err != nil {
		return nil, err
	}
	var extra []byte
	if err := s.ss.RecvMsg(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			err = status.Error(codes.Unimplemented, "the request has more than one message: a unary or server-streaming call takes exactly one")
		}
		return nil, err
	}
	return msg, nil
}

func (s *stream) SetHeader(md metadata.MD) error {
	s.headerSent = true
	if err := s.ss.SetHeader(ingress.WithoutReserved(md)); err != nil {
		return err
	}
	return s.ss.SendHeader(nil)
}

func (s *stream) Send(msg []byte) error {
	if s.json {
		resp, err := s.route.Binding.EncodeResponse(msg)
		if err != nil {
			return status.Errorf(codes.Internal, "undecodable upstream response: %v", err)
		}
		msg = resp.Body
	}
	return s.ss.SendMsg(&msg)
}
