package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/rosettagw/rosetta/accesslog"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/limits"
	"github.com/rosettagw/rosetta/transports/grpcserver"
)

// The native gRPC listener (listen.grpc) serves native gRPC alone, on
// grpc-go's own HTTP/2 transport. It runs the same ingress as the shared
// listener's gRPC (grpcserver, whose calls run the routes' chains); what
// the front door does per HTTP request — hold the generation, bound the
// streams, write the access-log line — its interceptor does per call.
//
// It is a listener of its own rather than a connection sniffed on the
// shared port: an HTTP/2 connection's protocol is only known per stream
// (one client, such as a Go http.Client, may send Connect, gRPC-Web and
// gRPC requests on the same connection), so a connection handed whole to
// grpc-go's transport would break the other protocols of such a client.

// Settings of the native gRPC listener that match the shared listener's
// (net/http's HTTP/2 server).
const (
	// grpcMaxStreams bounds the concurrent streams of one connection, as
	// net/http's HTTP/2 server does (250); a client queues the others.
	grpcMaxStreams = 250
	// grpcIdleConn closes a connection that has had no call for that
	// long (the shared listener's IdleTimeout).
	grpcIdleConn = 120 * time.Second
	// grpcMinPing is the shortest interval between a client's pings that
	// the listener accepts, streams or not: the least keepalive time
	// grpc-go and grpc-js clients can be set to. A client pinging more
	// often (a flood) gets GOAWAY ENHANCE_YOUR_CALM too_many_pings.
	grpcMinPing = 10 * time.Second
	// grpcWorkers is the number of goroutines kept to run calls.
	grpcWorkers = 64
)

// newNativeGRPC returns the ingress of listen.grpc: the gRPC ingress with
// the front door's per-call part as its interceptor, TLS (and client
// certificates, which reach the chain through the call's peer) as
// security.tls sets it, and the shared listener's header and stream
// bounds.
func (f *frontDoor) newNativeGRPC(cfg *Config, tlsConf *tls.Config) *grpcserver.Server {
	maxHeader := cmp.Or(cfg.Security.Limits.MaxHeaderBytes, limits.DefaultMaxHeaderBytes)
	opts := []grpc.ServerOption{
		grpc.StreamInterceptor(f.nativeCall),
		grpc.MaxHeaderListSize(uint32(maxHeader)),
		grpc.MaxConcurrentStreams(grpcMaxStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: grpcIdleConn}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinPing, PermitWithoutStream: true}),
		// Calls run on goroutines kept between calls (a call finding
		// them all busy gets a goroutine of its own): a call's stack,
		// deep through the chain and the upstream client, is not grown
		// anew on every call.
		grpc.NumStreamWorkers(grpcWorkers),
	}
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	return grpcserver.New(f.live.routesOf, grpcserver.Options{MaxMessageBytes: int(cfg.HTTP.MaxBodyBytes), ServerOptions: opts})
}

// nativeCall does for one call of the native gRPC listener what ServeHTTP
// does for a request of the shared one: the call runs on the serving
// generation (held until it ends), under the stream limits, and gets its
// access-log line once it is over.
func (f *frontDoor) nativeCall(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	h, _ := f.live.acquire()
	defer h.release()
	ctx := router.WithStreamLimits(ss.Context(), f.limits)
	if f.access == nil {
		return handler(srv, &nativeStream{ServerStream: ss, ctx: context.WithValue(ctx, genKey{}, h)})
	}
	x := &exchange{Context: ctx, gen: h, access: f.access}
	x.rec = accesslog.Record{Start: time.Now(), Protocol: "grpc", Method: "POST", Path: info.FullMethod}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		x.rec.Peer = p.Addr.String()
	}
	if ids := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(ids) > 0 {
		x.rec.RequestID = clipRequestID(ids[0])
	}
	ns := &nativeStream{ServerStream: ss, ctx: x, in: &x.bytesIn, out: new(atomic.Int64)}
	err := handler(srv, ns)
	x.w.status = 200 // a gRPC answer's HTTP status, whatever its code
	x.w.n = ns.out.Load()
	x.finish()
	return err
}

// nativeStream is a call's stream with the context the front door gave
// it, counting the bytes of its messages (as framed on the wire,
// uncompressed) when in and out are set.
type nativeStream struct {
	grpc.ServerStream
	ctx     context.Context
	in, out *atomic.Int64
}

func (s *nativeStream) Context() context.Context { return s.ctx }

func (s *nativeStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && s.in != nil {
		s.in.Add(frameBytes(m))
	}
	return err
}

func (s *nativeStream) SendMsg(m any) error {
	if s.out != nil {
		s.out.Add(frameBytes(m))
	}
	return s.ServerStream.SendMsg(m)
}

// frameBytes is the size of a raw message (the pass-through codec's
// *[]byte) framed as gRPC frames it: 5 bytes of prefix.
func frameBytes(m any) int64 {
	if b, ok := m.(*[]byte); ok {
		return int64(len(*b)) + 5
	}
	return 0
}

// serveNativeGRPC serves s on ln until ctx ends, then stops accepting
// and waits up to drain for the calls in flight (streams end at once:
// the front door's stream limits stop with ctx), ending the rest.
func serveNativeGRPC(ctx context.Context, ln net.Listener, s *grpcserver.Server, drain time.Duration, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("native gRPC listener: %w", err)
	case <-ctx.Done():
	}
	if drain <= 0 {
		drain = 15 * time.Second
	}
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(drain)
	defer timer.Stop()
	select {
	case <-stopped:
		return <-errc
	case <-timer.C:
		s.Stop()
		<-stopped
		logger.Warn("native gRPC calls did not end in time", "drain", drain)
		return fmt.Errorf("drain of the native gRPC listener: %w", context.DeadlineExceeded)
	}
}
