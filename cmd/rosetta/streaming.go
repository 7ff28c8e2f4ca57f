package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/grpcserver"
	"github.com/rosettagw/rosetta/transports/grpcweb"
	"github.com/rosettagw/rosetta/transports/websocket"
)

// WebSocketConfig configures the WebSocket ingress (the websocket key).
type WebSocketConfig struct {
	// Prefix is the path prefix of the methods (default /ws): a method is
	// at PREFIX/package.Service/Method.
	Prefix string `yaml:"prefix"`
	// AllowedOrigins lists the other origins whose pages may open sockets
	// ("https://app.example.com"; path.Match patterns). Default: none.
	AllowedOrigins []string `yaml:"allowed_origins"`
	PingInterval   Duration `yaml:"ping_interval"`
	IdleTimeout    Duration `yaml:"idle_timeout"`
	MaxMessage     ByteSize `yaml:"max_message_bytes"`
	// AllowQueryToken accepts a bearer token in the access_token query
	// parameter (default false: such a request is refused).
	AllowQueryToken bool `yaml:"allow_query_token"`
}

// GRPCWebConfig configures the gRPC-Web and Connect ingress (the grpc_web
// key).
type GRPCWebConfig struct {
	// AllowedOrigins lists the other origins whose pages may call
	// ("https://app.example.com"; path.Match patterns). Default: none.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// addMethod adds the route by which WebSocket, gRPC-Web, Connect and gRPC
// reach md: its request and response messages are whole JSON documents.
func (g *gateway) addMethod(cfg *Config, md protoreflect.MethodDescriptor, svc *ServiceConfig, inv router.Invoker, timeout time.Duration) error {
	path := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	b, err := translate.NewBinding(md, "POST", path, "*", "", jsonOptions(cfg, svc), g.schema.Types())
	if err != nil {
		return err
	}
	if g.methods == nil {
		g.methods = map[string]*router.Route{}
	}
	g.methods[path] = grpcRoute(b, md, svc.Upstream, inv, timeout)
	return nil
}

// frontDoor puts every ingress on one HTTP listener, choosing by the
// request: a WebSocket upgrade, gRPC (HTTP/2 with application/grpc),
// gRPC-Web or Connect (by Content-Type and Connect-Protocol-Version), or
// REST.
type frontDoor struct {
	rest    http.Handler
	ws      *websocket.Handler
	grpc    *grpcserver.Server
	grpcWeb *grpcweb.Handler
}

// newFrontDoor builds the streaming ingresses of g around the REST handler.
func newFrontDoor(cfg *Config, g *gateway, rest http.Handler, logger *slog.Logger) *frontDoor {
	wc := cfg.WebSocket
	return &frontDoor{
		rest: rest,
		ws: websocket.New(g.webSocketRoutes(), websocket.Options{
			Prefix: wc.Prefix, AllowedOrigins: wc.AllowedOrigins,
			PingInterval: time.Duration(wc.PingInterval), IdleTimeout: time.Duration(wc.IdleTimeout),
			MaxMessageBytes: int64(wc.MaxMessage), AllowQueryToken: wc.AllowQueryToken,
			ForwardHeaders: cfg.HTTP.ForwardHeaders, Resolver: g.schema.Types(), Logger: logger,
		}),
		grpc: grpcserver.New(g.methods, grpcserver.Options{
			MaxMessageBytes: int(cfg.HTTP.MaxBodyBytes), ForwardHeaders: cfg.HTTP.ForwardHeaders, Logger: logger,
		}),
		grpcWeb: grpcweb.New(g.methods, grpcweb.Options{
			AllowedOrigins: cfg.GRPCWeb.AllowedOrigins, MaxMessageBytes: int(cfg.HTTP.MaxBodyBytes),
			ForwardHeaders: cfg.HTTP.ForwardHeaders, Resolver: g.schema.Types(), Logger: logger,
		}),
	}
}

// closeStreams ends the WebSocket calls still open once the HTTP server has
// drained (it does not track upgraded connections), waiting up to drain.
func (f *frontDoor) closeStreams(drain time.Duration, logger *slog.Logger) {
	if drain <= 0 {
		drain = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := f.ws.Shutdown(ctx); err != nil {
		logger.Warn("WebSocket calls did not end in time", "err", err)
	}
}

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	switch {
	case f.ws.IsUpgrade(r):
		f.ws.ServeHTTP(w, r)
	case r.ProtoMajor == 2 && (ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+")):
		f.grpc.ServeHTTP(w, r)
	case f.grpcWeb.Handles(r):
		f.grpcWeb.ServeHTTP(w, r)
	default:
		f.rest.ServeHTTP(w, r)
	}
}

// demoStreamingTry lists the demo's streaming calls to try.
func demoStreamingTry(base string) string {
	return fmt.Sprintf(`
Streams (NDJSON, Server-Sent Events, Connect):
  curl -sN %[1]s/v1/shelves/1/books:stream
  curl -sN -H 'Accept: text/event-stream' %[1]s/v1/shelves/2/books:stream
  curl -s -X POST %[1]s/example.library.v1.LibraryService/GetBook -H 'Content-Type: application/json' \
       -H 'Connect-Protocol-Version: 1' -d '{"name":"shelves/1/books/dune"}'
WebSocket and gRPC, with any client:
  %[2]s/ws/example.library.v1.LibraryService/Chat   (subprotocol rosetta.json; send {"message":"hi"}, an empty frame ends)
  gRPC clients (h2c) at %[3]s, e.g. grpcurl -plaintext -proto example/library/v1/library.proto -import-path proto ...
`, base, "ws"+strings.TrimPrefix(base, "http"), strings.TrimPrefix(base, "http://"))
}
