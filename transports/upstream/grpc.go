// Package upstream holds the egress clients: gRPC upstreams (h2c or TLS)
// and plain HTTP/JSON upstreams, both implementing router.Invoker. Each is
// a set of endpoints with a connection apiece, chosen per call by a
// balancer, kept out while unhealthy (active health checks) or failing
// (outlier ejection), behind a circuit breaker; SetEndpoints replaces the
// set while calls run.
package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/rawcodec"
)

// GRPCConfig configures a gRPC upstream.
type GRPCConfig struct {
	// Targets are the static endpoints (SetEndpoints replaces them).
	Targets []Endpoint
	// TLS, when set, dials with TLS; nil means h2c (plaintext HTTP/2).
	TLS *tls.Config
	// MaxMessageBytes bounds response messages (default 4 MiB).
	MaxMessageBytes int
	// KeepaliveTime is how long a connection may carry nothing while
	// calls are open before the gateway pings the upstream (default
	// DefaultKeepaliveTime). An upstream answers pings that come more
	// often than its keepalive enforcement policy allows with GOAWAY
	// too_many_pings, ending every call open on the connection: set it
	// lower only for upstreams that permit it. gRPC raises values under
	// 10 s to 10 s.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long a ping may go unanswered before the
	// connection is closed (default 10 s).
	KeepaliveTimeout time.Duration
	// Options choose the balancer, health checks, outlier detection and
	// breaker.
	Options
}

// DefaultKeepaliveTime is the default GRPCConfig.KeepaliveTime: above the
// 5 minutes a grpc-go server's default enforcement policy requires between
// pings (keepalive.EnforcementPolicy.MinTime), with a margin for a ping
// delayed on the way (each ping that arrives early is a strike, and the
// third closes the connection). Pinging every 30 s, as the gateway once
// did, ended idle streams after about two minutes.
const DefaultKeepaliveTime = 5*time.Minute + 30*time.Second

// GRPC is a gRPC upstream: one client connection per endpoint (pick-first
// to its one address), shared by every route that targets the upstream.
// Requests and responses cross it as raw protobuf bytes, never
// re-marshalled.
type GRPC struct {
	*cluster
}

// DialGRPC creates the upstream and its endpoints' connections. It does not
// wait for the targets to be reachable: calls fail with UNAVAILABLE while
// they are not.
func DialGRPC(cfg GRPCConfig) (*GRPC, error) {
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("no targets")
	}
	c, err := newCluster("grpc", cfg.Options)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	maxMsg := cfg.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = 4 << 20
	}
	ka := keepalive.ClientParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTimeout}
	if ka.Time <= 0 {
		ka.Time = DefaultKeepaliveTime
	}
	if ka.Timeout <= 0 {
		ka.Timeout = 10 * time.Second
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// Reconnect quickly after an upstream restart (gRPC's default backoff
		// grows to two minutes, answering UNAVAILABLE all the while).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithKeepaliveParams(ka),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)),
	}
	c.dial = func(addr string) (any, func(), error) {
		conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
		if err != nil {
			return nil, nil, err
		}
		conn.Connect()
		return conn, func() { conn.Close() }, nil
	}
	service := ""
	if cfg.Health != nil {
		service = cfg.Health.Service
	}
	c.check = func(ctx context.Context, e *endpoint) error {
		resp, err := healthpb.NewHealthClient(e.conn.(*grpc.ClientConn)).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health: %v", resp.Status)
		}
		return nil
	}
	if err := c.SetEndpoints(cfg.Targets); err != nil {
		c.Close()
		return nil, err
	}
	return &GRPC{cluster: c}, nil
}

// Conn returns a connection to the upstream for schema reflection and other
// calls with the default codec: each call or stream goes to an endpoint the
// balancer chooses, and counts as that endpoint's.
func (g *GRPC) Conn() grpc.ClientConnInterface { return balancedConn{g} }

// balancedConn is GRPC as a grpc.ClientConnInterface.
type balancedConn struct{ g *GRPC }

func (b balancedConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	a, err := b.g.begin(ctx)
	if err != nil {
		return err
	}
	err = a.e.conn.(*grpc.ClientConn).Invoke(ctx, method, args, reply, opts...)
	a.endGRPC(ctx, err)
	return err
}

func (b balancedConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := b.g.newStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, err // not a nil *trackedStream in a non-nil interface
	}
	return s, nil
}

// Invoke makes one unary call of fullMethod with a request in wire form.
func (g *GRPC) Invoke(ctx context.Context, fullMethod string, req []byte, md metadata.MD) (*router.Reply, error) {
	reply := &router.Reply{}
	a, err := g.begin(ctx)
	if err != nil {
		return reply, err
	}
	reply.Endpoint = a.e.addr
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	var resp []byte
	err = a.e.conn.(*grpc.ClientConn).Invoke(ctx, fullMethod, &req, &resp, rawCall, grpc.Header(&reply.Header), grpc.Trailer(&reply.Trailer))
	a.endGRPC(ctx, err)
	if err != nil {
		return reply, err
	}
	reply.Message = resp
	return reply, nil
}

// endGRPC records a gRPC attempt's outcome. UNAVAILABLE, and the codes
// an HTTP gateway maps to 500 (INTERNAL, UNKNOWN, DATA_LOSS), count as
// failures; a call the caller cancelled or let run out of time says
// nothing about the upstream.
func (a *attempt) endGRPC(ctx context.Context, err error) {
	code := status.Code(err)
	switch code {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DataLoss:
		a.end(code, ctx.Err() == nil, ctx.Err() != nil)
	case codes.Canceled, codes.DeadlineExceeded:
		a.end(code, false, true)
	default:
		a.end(code, false, false)
	}
}

// rawCall makes a call carry raw bytes (other users of the connection, such
// as schema reflection, keep the default codec).
var rawCall = grpc.ForceCodecV2(rawcodec.Codec{})
