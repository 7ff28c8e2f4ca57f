package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// startNativeTest serves the library example's gateway (its upstream in
// this process) on a native gRPC listener and on the shared one, until
// the test ends; it returns their addresses.
func startNativeTest(tb testing.TB) (native, shared string) {
	tb.Helper()
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	up := grpc.NewServer()
	library.Register(up)
	go up.Serve(uln)
	tb.Cleanup(up.Stop)
	desc, _ := filepath.Abs("../proto/library.binpb")
	cfg, err := ParseConfig(fmt.Appendf(nil, `schemas: [{descriptor_set: %q}]
upstreams: {library: {grpc: {targets: [%q]}}}
services: [{name: example.library.v1.LibraryService, upstream: library, validation: {requests: false}}]
`, desc, uln.Addr()))
	if err != nil {
		tb.Fatal(err)
	}
	live, err := NewLive(context.Background(), cfg, LiveOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(live.Close)
	door := newFrontDoor(cfg, live, nil)
	ctx, cancel := context.WithCancel(context.Background())
	door.limits.Stop = ctx
	nln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	done := make(chan struct{}, 2)
	go func() {
		_ = serveNativeGRPC(ctx, nln, door.newNativeGRPC(cfg, nil), time.Second, logger)
		done <- struct{}{}
	}()
	go func() {
		_ = serveHTTP(ctx, sln, door, time.Second, logger)
		done <- struct{}{}
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	return nln.Addr().String(), sln.Addr().String()
}

// BenchmarkNativeGRPC is a small unary call (ListBooks) through the gRPC
// ingress on its own listener and on the shared one, from 32 concurrent
// callers on one connection; cpu-ns/op is the whole process's (client,
// gateway and upstream).
func BenchmarkNativeGRPC(b *testing.B) {
	native, shared := startNativeTest(b)
	for name, addr := range map[string]string{"native": native, "shared": shared} {
		b.Run(name, func(b *testing.B) {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			lib := libraryv1.NewLibraryServiceClient(conn)
			req := &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 2}
			b.ReportAllocs()
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			before := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := lib.ListBooks(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestNativeGRPCPingFlood: the native listener refuses a client pinging
// more often than its enforcement policy allows, as grpc-go's servers do,
// with GOAWAY ENHANCE_YOUR_CALM too_many_pings.
func TestNativeGRPCPingFlood(t *testing.T) {
	native, _ := startNativeTest(t)
	c, err := net.Dial("tcp", native)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may have closed the connection already
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // bounds a hang, not the outcome
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("the connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
				t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
			}
			return
		}
	}
}
