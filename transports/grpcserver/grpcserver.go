// Package grpcserver is the native gRPC ingress: a grpc.Server that takes
// every method as raw bytes (grpc.UnknownServiceHandler with a pass-through
// codec), runs the route's policy chain and proxies the call, streams
// included, to the route's upstream. It is an http.Handler, served on the
// gateway's shared listener (h2c or TLS) beside REST and WebSocket.
package grpcserver

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
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
	s.srv = grpc.NewServer(
		grpc.UnknownServiceHandler(s.handle),
		grpc.ForceServerCodecV2(rawcodec.Codec{}),
		grpc.MaxRecvMsgSize(maxMsg),
	)
	return s
}

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
	st := &stream{ss: ss}
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
		return ss.SendMsg(&call.Reply.Message)
	}
	return nil
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
	headerSent bool
}

func (s *stream) Recv() ([]byte, error) {
	var msg []byte
	err := s.ss.RecvMsg(&msg)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return msg, err
}

// single reads the one request message of a unary call.
func (s *stream) single() ([]byte, error) {
	msg, err := s.Recv()
	if errors.Is(err, io.EOF) {
		return nil, status.Error(codes.InvalidArgument, "the client sent no request message")
	}
	return msg, err
}

func (s *stream) SetHeader(md metadata.MD) error {
	s.headerSent = true
	if err := s.ss.SetHeader(ingress.WithoutReserved(md)); err != nil {
		return err
	}
	return s.ss.SendHeader(nil)
}

func (s *stream) Send(msg []byte) error { return s.ss.SendMsg(&msg) }
