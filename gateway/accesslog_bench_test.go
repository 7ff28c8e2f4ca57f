package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rosettagw/rosetta/accesslog"
	"github.com/rosettagw/rosetta/examples/library"
)

// BenchmarkAccessLog is a small REST GET through the front door (the
// chain, then the library upstream over loopback gRPC) without and with
// its access-log line (encoded only, then also written to /dev/null, a
// system call per line as to a log file): the difference is what the line
// costs a call.
func BenchmarkAccessLog(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	library.Register(srv)
	go srv.Serve(ln)
	defer srv.Stop()
	desc, _ := filepath.Abs("../proto/library.binpb")
	cfg, err := ParseConfig(fmt.Appendf(nil, `schemas: [{descriptor_set: %q}]
upstreams: {library: {grpc: {targets: [%q]}}}
services: [{name: example.library.v1.LibraryService, upstream: library}]
`, desc, ln.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	live, err := NewLive(context.Background(), cfg, LiveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer live.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	for _, bc := range []struct {
		name   string
		access *accesslog.Logger
	}{{"off", nil}, {"json", accesslog.New(io.Discard, "json", 0)}, {"json-devnull", accesslog.New(devNull, "json", 0)}, {"json-devnull-buffered", accesslog.New(devNull, "json", time.Second)}} {
		defer bc.access.Close()
		b.Run(bc.name, func(b *testing.B) {
			door := newFrontDoor(cfg, live, bc.access)
			req := httptest.NewRequest(http.MethodGet, "/v1/shelves/1", nil)
			b.ReportAllocs()
			before := cpuTime()
			for b.Loop() {
				w := httptest.NewRecorder()
				door.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			// CPU time rather than wall time: the machine may be busy.
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process used so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
