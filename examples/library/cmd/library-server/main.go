// Command library-server runs the example LibraryService
// (examples/library) as a gRPC server with server reflection and the
// grpc.health.v1 health service, the upstream
// of Rosetta's library example and end-to-end tests.
//
// Usage:
//
//	library-server [-listen 127.0.0.1:9090] [-name NAME]
//
// With -name, every answer carries the response header "x-served-by: NAME"
// (a REST client sees Grpc-Metadata-X-Served-By), so that a test or a demo
// of a canary split can tell which server answered.
//
// Once it is listening it prints exactly one line, "listening on ADDR", to
// standard output, ADDR being the bound address (useful with -listen
// 127.0.0.1:0). It stops gracefully on SIGINT or SIGTERM, giving in-flight
// calls a few seconds to finish. Logs go to standard error.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"

	"github.com/rosettagw/rosetta/examples/library"
)

// shutdownGrace is how long in-flight calls get to finish on shutdown.
const shutdownGrace = 5 * time.Second

func main() {
	listen := flag.String("listen", "127.0.0.1:9090", "address to serve gRPC on (host:port; port 0 picks a free one)")
	name := flag.String("name", "", "when set, every answer carries the header x-served-by: NAME")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *name, log); err != nil {
		log.Error("library-server stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the library on addr until SIGINT or SIGTERM.
func run(addr, name string, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var opts []grpc.ServerOption
	if name != "" {
		served := metadata.Pairs("x-served-by", name)
		opts = append(opts,
			grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				_ = grpc.SetHeader(ctx, served)
				return h(ctx, req)
			}),
			grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				_ = ss.SetHeader(served)
				return h(srv, ss)
			}))
	}
	srv := grpc.NewServer(opts...)
	lib := library.Register(srv)
	reflection.Register(srv)
	healthpb.RegisterHealthServer(srv, health.NewServer()) // SERVING, for the gateway's health checks

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Printf("listening on %s\n", lis.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "calls", lib.Calls())
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		srv.Stop()
		<-done
	}
	return <-served
}
