package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// idleStreams is how many idle bidirectional streams TestIdleGRPCStreams
// holds open through each listener, over idleConns connections (a
// connection carries at most 250 streams at once on either listener).
const (
	idleStreams = 2000
	idleConns   = 10
)

// maxIdleStreamKiB bounds the gateway's resident memory per idle stream:
// far above what one costs (the figure is logged), so that it holds on a
// busy machine, and far below what a leak of buffers per stream would
// cost.
const maxIdleStreamKiB = 256

// TestIdleGRPCStreams (issue 17, item 7) holds 2,000 idle bidirectional
// gRPC streams open through the gateway, on the native listener and on
// the shared one, each having echoed one message through to the upstream:
// the gateway's memory per stream (from /proc) stays within a generous
// bound and is logged with its goroutines per stream, and normal calls,
// over gRPC and REST, keep being served while the streams are open.
func TestIdleGRPCStreams(t *testing.T) {
	t.Parallel()
	for _, listener := range []string{"listen.grpc", "shared port"} {
		t.Run(listener, func(t *testing.T) {
			t.Parallel()
			u := startStreamUpstream(t)
			admin := freePort(t)
			gw := startRosettaGRPC(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), u.addr, "", ""))
			addr := gw.grpc
			if listener == "shared port" {
				addr = strings.TrimPrefix(gw.base, "http://")
			}
			var conns []libraryv1.LibraryServiceClient
			for range idleConns {
				conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				conns = append(conns, libraryv1.NewLibraryServiceClient(conn))
			}
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			echo := func(lib libraryv1.LibraryServiceClient) error {
				s, err := lib.Chat(ctx)
				if err == nil {
					err = s.Send(&libraryv1.PingRequest{Message: "idle"})
				}
				if err == nil {
					_, err = s.Recv()
				}
				return err
			}
			// One stream first, so that the baseline holds what any
			// stream needs once (connections, pools).
			if err := echo(conns[0]); err != nil {
				t.Fatal(err)
			}
			baseRSS := rssKiB(t, gw)
			baseG, _ := processCounts(t, admin)

			var wg sync.WaitGroup
			errs := make(chan error, idleStreams)
			for i := range idleStreams {
				wg.Go(func() {
					if err := echo(conns[i%idleConns]); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("opening %d idle streams: %v", idleStreams, err)
			}
			rss := rssKiB(t, gw)
			g, _ := processCounts(t, admin)
			perStream := float64(rss-baseRSS) / idleStreams
			t.Logf("%s: %d idle streams: RSS %d → %d KiB, %.1f KiB per stream; goroutines %.0f → %.0f, %.1f per stream",
				listener, idleStreams, baseRSS, rss, perStream, baseG, g, (g-baseG)/idleStreams)
			bound := float64(maxIdleStreamKiB)
			if raceBuild {
				// The race detector's shadow memory multiplies a
				// program's by 5 to 10 (go.dev/doc/articles/race_detector):
				// 371 KiB per stream was measured under it.
				bound *= 10
			}
			if perStream > bound {
				t.Errorf("%.1f KiB of RSS per idle stream, want at most %.0f", perStream, bound)
			}

			// Normal calls are served while the streams are open.
			for i := range 20 {
				if _, err := conns[i%idleConns].GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"}); err != nil {
					t.Errorf("gRPC call %d with the streams open: %v", i, err)
				}
				if r := get(t, gw.base, "/v1/shelves/1"); r.status != 200 {
					t.Errorf("REST call %d with the streams open: %d %s", i, r.status, r.body)
				}
			}
		})
	}
}
