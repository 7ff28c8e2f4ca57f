package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rosettagw/rosetta/examples/iot"
	"github.com/rosettagw/rosetta/examples/library"
	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
)

// serveUpstream is the soak binary run as one upstream replica (-upstream):
// the example LibraryService and DeviceService (examples/library,
// examples/iot) with the grpc.health.v1 service, on addr. Every Record call
// that succeeds appends its reading's id and a newline to the file
// delivered, one write per call, so that the ids survive the replica being
// killed with SIGKILL (the bytes are in the kernel once write returns).
func serveUpstream(addr, delivered string) error {
	out, err := os.OpenFile(delivered, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex // one line per write, whole
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if r, ok := req.(*iotv1.RecordRequest); ok && err == nil {
			mu.Lock()
			_, werr := out.WriteString(r.GetId() + "\n")
			mu.Unlock()
			if werr != nil {
				return nil, werr
			}
		}
		return resp, err
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(record))
	library.Register(srv)
	iot.Register(srv)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	fmt.Printf("listening on %s\n", lis.Addr())
	return srv.Serve(lis)
}
