// Command iot-server runs the example DeviceService (examples/iot) as a
// gRPC server with server reflection, the upstream of Rosetta's IoT example.
//
// Usage:
//
//	iot-server [-listen 127.0.0.1:9092]
//
// Once it is listening it prints "listening on ADDR" to standard output. It
// stops on SIGINT or SIGTERM.
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/rosettagw/rosetta/examples/iot"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9092", "address to serve gRPC on")
	flag.Parse()
	if err := run(*listen); err != nil {
		slog.Error("iot-server stopped", "err", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	iot.Register(srv)
	reflection.Register(srv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	fmt.Println("listening on", ln.Addr())
	return srv.Serve(ln)
}
