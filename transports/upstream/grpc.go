// Package upstream holds the egress clients: gRPC upstreams (h2c or TLS, one
// shared connection per upstream, round-robin over static targets) and plain
// HTTP/JSON upstreams. Both implement router.Invoker.
package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/rawcodec"
)

// GRPCConfig configures a gRPC upstream.
type GRPCConfig struct {
	// Targets are the static "host:port" addresses, balanced round-robin.
	Targets []string
	// TLS, when set, dials with TLS; nil means h2c (plaintext HTTP/2).
	TLS *tls.Config
	// MaxMessageBytes bounds response messages (default 4 MiB).
	MaxMessageBytes int
	// KeepaliveTime is how long the connection may carry nothing while
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
}

// DefaultKeepaliveTime is the default GRPCConfig.KeepaliveTime: above the
// 5 minutes a grpc-go server's default enforcement policy requires between
// pings (keepalive.EnforcementPolicy.MinTime), with a margin for a ping
// delayed on the way (each ping that arrives early is a strike, and the
// third closes the connection). Pinging every 30 s, as the gateway once
// did, ended idle streams after about two minutes.
const DefaultKeepaliveTime = 5*time.Minute + 30*time.Second

// GRPC is a gRPC upstream: one client connection shared by every route that
// targets it. Requests and responses cross it as raw protobuf bytes, never
// re-marshalled.
type GRPC struct {
	conn *grpc.ClientConn
}

// DialGRPC creates the upstream's connection. It does not wait for the
// targets to be reachable: calls fail with UNAVAILABLE while they are not.
func DialGRPC(cfg GRPCConfig) (*GRPC, error) {
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("no targets")
	}
	r := manual.NewBuilderWithScheme("rosetta")
	addrs := make([]resolver.Address, len(cfg.Targets))
	for i, t := range cfg.Targets {
		addrs[i] = resolver.Address{Addr: t}
	}
	r.InitialState(resolver.State{Addresses: addrs})
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
	conn, err := grpc.NewClient(r.Scheme()+":///upstream",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		// Reconnect quickly after an upstream restart (gRPC's default backoff
		// grows to two minutes, answering UNAVAILABLE all the while).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithKeepaliveParams(ka),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)),
	)
	if err != nil {
		return nil, err
	}
	return &GRPC{conn: conn}, nil
}

// Conn returns the client connection, for schema reflection.
func (g *GRPC) Conn() *grpc.ClientConn { return g.conn }

// Close closes the connection.
func (g *GRPC) Close() error { return g.conn.Close() }

// Invoke makes one unary call of fullMethod with a request in wire form.
func (g *GRPC) Invoke(ctx context.Context, fullMethod string, req []byte, md metadata.MD) (*router.Reply, error) {
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	reply := &router.Reply{}
	var resp []byte
	err := g.conn.Invoke(ctx, fullMethod, &req, &resp, rawCall, grpc.Header(&reply.Header), grpc.Trailer(&reply.Trailer))
	if err != nil {
		return reply, err
	}
	reply.Message = resp
	return reply, nil
}

// rawCall makes a call carry raw bytes (other users of the connection, such
// as schema reflection, keep the default codec).
var rawCall = grpc.ForceCodecV2(rawcodec.Codec{})
