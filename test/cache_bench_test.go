package test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// BenchmarkCache measures one GetShelf call through the rosetta binary,
// one client after the other, over REST and gRPC: answered from the
// in-memory cache (hit), and proxied to the upstream by a gateway without
// a cache (proxied). It reports the client's latency (ns/op) and the
// gateway process's CPU time per call. The upstream is the example
// LibraryService in the benchmark process.
//
//	go test ./test -run '^$' -bench Cache -benchtime 5000x -count 3
func BenchmarkCache(b *testing.B) {
	up := startCountingUpstream(b)
	cached := startRosetta(b, "access_log: false\n"+libraryConfig(descriptorSetSchema(), up.addr, "    cache: {ttl: 1h}\n", ""))
	proxied := startRosetta(b, "access_log: false\n"+libraryConfig(descriptorSetSchema(), up.addr, "", ""))
	for _, gw := range []struct {
		name string
		gw   *rosetta
		want string
	}{{"hit", cached, "HIT"}, {"proxied", proxied, ""}} {
		b.Run("REST/"+gw.name, func(b *testing.B) {
			req, _ := http.NewRequest(http.MethodGet, gw.gw.base+"/v1/shelves/1", nil)
			call := func() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			call() // the miss that fills the cache
			cpu0 := processCPU(b, gw.gw.cmd.Process.Pid)
			for b.Loop() {
				call()
			}
			b.ReportMetric(float64(processCPU(b, gw.gw.cmd.Process.Pid)-cpu0)/1e3/float64(b.N), "gateway-cpu-µs/op")
			resp, _ := client.Do(req)
			resp.Body.Close()
			if got := resp.Header.Get("X-Cache"); got != gw.want {
				b.Fatalf("X-Cache %q, want %q", got, gw.want)
			}
		})
		b.Run("gRPC/"+gw.name, func(b *testing.B) {
			conn, err := grpc.NewClient(strings.TrimPrefix(gw.gw.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			lib := libraryv1.NewLibraryServiceClient(conn)
			req := &libraryv1.GetShelfRequest{Name: "shelves/1"}
			ctx := context.Background()
			if _, err := lib.GetShelf(ctx, req); err != nil {
				b.Fatal(err)
			}
			cpu0 := processCPU(b, gw.gw.cmd.Process.Pid)
			for b.Loop() {
				if _, err := lib.GetShelf(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU(b, gw.gw.cmd.Process.Pid)-cpu0)/1e3/float64(b.N), "gateway-cpu-µs/op")
		})
	}
}
