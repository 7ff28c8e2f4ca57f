// Command grpcgateway serves grpc-gateway/v2's generated reverse proxy for
// example.library.v1.LibraryService (proto/example/library/v1/library.pb.gw.go)
// with the default runtime.NewServeMux(), the comparison point of the
// benchmark.
//
// Usage:
//
//	grpcgateway -listen 127.0.0.1:8081 -upstream 127.0.0.1:9090
//
// It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve HTTP on")
	upstream := flag.String("upstream", "127.0.0.1:9090", "the gRPC upstream's address")
	flag.Parse()
	if err := run(*listen, *upstream); err != nil {
		log.Fatal(err)
	}
}

func run(addr, upstream string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mux := runtime.NewServeMux()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if err := libraryv1.RegisterLibraryServiceHandlerFromEndpoint(ctx, mux, upstream, opts); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Printf("listening on %s\n", lis.Addr())
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
