package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

func record() *Record {
	return &Record{
		Start: time.Date(2026, 12, 2, 10, 0, 0, 5e6, time.UTC), Protocol: "http", Route: "example.library.v1.LibraryService/GetShelf",
		Method: "GET", Path: "/v1/shelves/\"1\"\n\x01\xff", Status: 200, Code: codes.OK, HasCode: true, Upstream: "library",
		Attempts: 1, BytesIn: 0, BytesOut: 42, Subject: "ana é", RequestID: "r1",
		Trace: trace.TraceID{1, 2, 3}, Span: trace.SpanID{4, 5}, Peer: "127.0.0.1:5000",
	}
}

func TestJSONLine(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "json", 0).Write(record())
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	for k, want := range map[string]any{
		"msg": "access", "level": "INFO", "time": "2026-12-02T10:00:00.005Z", "protocol": "http", "route": "example.library.v1.LibraryService/GetShelf",
		"method": "GET", "path": "/v1/shelves/\"1\"\n\x01\ufffd", "status": 200.0, "code": "OK", "upstream": "library",
		"attempts": 1.0, "bytes_in": 0.0, "bytes_out": 42.0, "subject": "ana é", "request_id": "r1",
		"trace_id": "01020300000000000000000000000000", "span_id": "0405000000000000", "peer": "127.0.0.1:5000",
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if _, ok := m["latency_ms"].(float64); !ok {
		t.Errorf("latency_ms = %#v", m["latency_ms"])
	}
	if _, ok := m["endpoint"]; ok {
		t.Errorf("an empty endpoint is written: %s", line)
	}
}

func TestTextLine(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "text", 0).Write(record())
	line := buf.String()
	for _, want := range []string{"level=INFO msg=access protocol=http ", `path="/v1/shelves/\"1\"\n\x01\xff"`, " status=200 code=OK ", ` subject="ana é" `, " trace_id=01020300000000000000000000000000 "} {
		if !strings.Contains(line, want) {
			t.Errorf("text line lacks %s:\n%s", want, line)
		}
	}
}

func TestClaim(t *testing.T) {
	r := &Record{}
	if !r.Claim() || r.Claim() {
		t.Error("a record is claimed once")
	}
	var none *Record
	if none.Claim() {
		t.Error("a nil record was claimed")
	}
	if FromContext(NewContext(context.Background(), r)) != r || FromContext(context.Background()) != nil {
		t.Error("the record does not travel in the context")
	}
}

func TestWriteAllocates(t *testing.T) {
	l, r := New(io.Discard, "json", 0), record()
	if n := testing.AllocsPerRun(100, func() { l.Write(r) }); n != 0 {
		t.Errorf("a line costs %v allocations, want 0", n)
	}
}

// BenchmarkAccessLine is the cost of one access-log line: as the ingresses
// wrote it before (slog's text handler, six attributes), and as Logger
// writes it now, with more fields.
func BenchmarkAccessLine(b *testing.B) {
	r := record()
	b.Run("slog-text-before", func(b *testing.B) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		ctx := context.Background()
		b.ReportAllocs()
		defer perOp(b)()
		for b.Loop() {
			log.LogAttrs(ctx, slog.LevelInfo, "access",
				slog.String("proto", "http"), slog.String("method", r.Method), slog.String("path", r.Path),
				slog.Int("status", r.Status), slog.Duration("duration", time.Since(r.Start)), slog.String("peer", r.Peer))
		}
	})
	for _, format := range []string{"json", "text"} {
		b.Run(format, func(b *testing.B) {
			l := New(io.Discard, format, 0)
			b.ReportAllocs()
			defer perOp(b)()
			for b.Loop() {
				l.Write(r)
			}
		})
	}
}

// perOp starts measuring the process's CPU time; the returned function
// reports it per operation (cpu-ns/op), the steadier figure on a busy
// machine.
func perOp(b *testing.B) func() {
	cpu := func() int64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

// writes records each Write call and signals it.
type writes struct {
	mu    sync.Mutex
	calls [][]byte
	wrote chan struct{}
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.calls = append(w.calls, bytes.Clone(p))
	w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *writes) all() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

func TestBufferedLinesWaitForCloseOrInterval(t *testing.T) {
	w := &writes{wrote: make(chan struct{}, 1)}
	l := New(w, "json", time.Hour)
	l.Write(record())
	if got := w.all(); len(got) != 0 {
		t.Fatalf("a buffered line was written at once: %q", got)
	}
	l.Close()
	if got := w.all(); len(got) != 1 || bytes.Count(got[0], []byte("\n")) != 1 {
		t.Fatalf("after Close, writes %q; want the one line", got)
	}
	l.Write(record()) // after Close: at once
	if got := w.all(); len(got) != 2 {
		t.Fatalf("a line after Close was not written at once: %d writes", len(got))
	}

	w = &writes{wrote: make(chan struct{}, 1)}
	l = New(w, "json", time.Millisecond)
	defer l.Close()
	l.Write(record())
	<-w.wrote // the flusher wrote it, without Close
	if got := w.all(); len(got) != 1 || bytes.Count(got[0], []byte("\n")) != 1 {
		t.Fatalf("writes %q; want the one line", got)
	}
}

func TestBufferedLinesAreNeverSplit(t *testing.T) {
	w := &writes{wrote: make(chan struct{}, 1)}
	l := New(w, "json", time.Hour)
	r := record()
	r.RequestID = strings.Repeat("x", 100) // lines that do not divide the buffer
	for range 3 * bufferBytes / 300 {
		l.Write(r)
	}
	l.Close()
	calls := w.all()
	if len(calls) < 3 {
		t.Fatalf("%d writes for %d KiB of lines; want one per buffer", len(calls), 3*bufferBytes>>10)
	}
	for i, c := range calls {
		if len(c) > bufferBytes || c[len(c)-1] != '\n' || c[0] != '{' {
			t.Fatalf("write %d (%d bytes) does not hold whole lines: starts %q, ends %q", i, len(c), c[:1], c[len(c)-1:])
		}
	}
}
