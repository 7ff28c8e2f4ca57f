// Package accesslog writes Rosetta's access log: one line per call, the
// same fields for every ingress protocol, in JSON or in slog's text form.
//
// A Record travels in the call's context: the ingress puts it there (the
// HTTP front door for REST, WebSocket, gRPC-Web, Connect and gRPC; the
// MQTT bridge for device messages), the chain's first step fills in what
// the call turned out to be (route, status, attempts, identity, trace), and
// the ingress writes it once the answer is sent. Writing costs no
// allocation: the line is appended to a pooled buffer by hand, with no
// reflection, and written with one Write (or gathered with
// others and written every flush interval). No header, query or payload is
// logged, so neither are the secrets they may hold.
package accesslog

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
)

// Record is one call's access-log line.
type Record struct {
	// Start is when the call arrived.
	Start time.Time
	// Protocol is the ingress protocol (http, websocket, grpc-web,
	// connect, grpc, mqtt).
	Protocol string
	// Route is the chain the call ran: the method's full name, or the
	// route's "METHOD /template" for a route without a schema method.
	Route string
	// Method is the HTTP method (PUBLISH for an MQTT message).
	Method string
	// Path is the URL path, never its query (it may hold a token), or
	// the MQTT topic.
	Path string
	// Status is the HTTP status sent (0 for MQTT).
	Status int
	// Code is the call's gRPC status code, once a chain ran (HasCode).
	Code    codes.Code
	HasCode bool
	// Upstream is the route's upstream; Endpoint the address of the
	// endpoint the last attempt reached, when the upstream reports it.
	Upstream, Endpoint string
	// Attempts is the number of upstream attempts.
	Attempts int
	// BytesIn and BytesOut count the request and response bodies (the
	// messages of a WebSocket, the payloads of an MQTT message and its
	// reply).
	BytesIn, BytesOut int64
	// Subject is the authenticated caller, when a policy established one.
	Subject string
	// RequestID is the client's X-Request-Id header, when it sent one.
	RequestID string
	// Trace and Span identify the call's server span, when traced.
	Trace trace.TraceID
	Span  trace.SpanID
	// Peer is the client's address.
	Peer string

	claimed bool
	// mu orders the updates of the call's goroutine and the line's
	// writing: an ingress may end the request (a gRPC client gone) while
	// the call still runs; written drops what comes after the line.
	mu      sync.Mutex
	written bool
}

// Update runs f on r, unless r's line was written already (the request
// ended before the call): f's changes then have nowhere to go.
func (r *Record) Update(f func(*Record)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.written {
		f(r)
	}
}

// Claim reports whether the caller is the first to fill r in: the chain
// of an aggregate's step runs inside the aggregate's, on the same record,
// and must leave it to the outer one. Only the goroutine that runs the
// call's own chain may call it (before the steps start).
func (r *Record) Claim() bool {
	if r == nil || r.claimed {
		return false
	}
	r.claimed = true
	return true
}

// ContextKey keys a call's *Record in its context. A context type of an
// ingress may answer it itself (see FromContext).
type ContextKey struct{}

// NewContext returns ctx carrying r.
func NewContext(ctx context.Context, r *Record) context.Context {
	return context.WithValue(ctx, ContextKey{}, r)
}

// FromContext returns the record of the call ctx belongs to; nil when
// there is none (the access log is off).
func FromContext(ctx context.Context) *Record {
	r, _ := ctx.Value(ContextKey{}).(*Record)
	return r
}

// Logger writes access-log lines to a writer. With a flush interval, lines
// gather in a buffer written out when it is full and at least once per
// interval, as Envoy's file access log does (its file_flush_interval): one
// write system call for many lines rather than one per call. Close writes
// what is left.
type Logger struct {
	mu   sync.Mutex
	w    io.Writer
	buf  *bufio.Writer // nil: each line is written at once
	json bool
	bufs sync.Pool
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the flusher has ended
}

// bufferBytes is the size of a buffered Logger's buffer: a line is a few
// hundred bytes.
const bufferBytes = 64 << 10

// New returns a logger writing to w in format: "json" or "text" (slog's
// key=value form). With flushEvery > 0, lines are buffered and written at
// least that often; 0 writes each line with one Write. A nil *Logger writes
// nothing.
func New(w io.Writer, format string, flushEvery time.Duration) *Logger {
	l := &Logger{w: w, json: format != "text"}
	l.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	if flushEvery > 0 {
		l.buf = bufio.NewWriterSize(w, bufferBytes)
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.flusher(flushEvery)
	}
	return l
}

// flusher writes the buffered lines out every interval until Close.
func (l *Logger) flusher(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			_ = l.buf.Flush()
			l.mu.Unlock()
		}
	}
}

// Close writes the buffered lines and stops the flusher. Lines written
// after it go out at once.
func (l *Logger) Close() {
	if l == nil || l.buf == nil {
		return
	}
	close(l.stop)
	<-l.done
	l.mu.Lock()
	_ = l.buf.Flush()
	l.buf = nil
	l.mu.Unlock()
}

// Write writes r's line, with the latency measured now.
func (l *Logger) Write(r *Record) {
	if l == nil {
		return
	}
	bp := l.bufs.Get().(*[]byte)
	r.mu.Lock()
	r.written = true
	b := l.Append((*bp)[:0], r, time.Since(r.Start))
	r.mu.Unlock()
	l.mu.Lock()
	if l.buf != nil {
		// A line is never split between two writes: another writer of
		// the same file (the process's log) could come between them.
		if len(b) > l.buf.Available() {
			_ = l.buf.Flush()
		}
		_, _ = l.buf.Write(b)
	} else {
		_, _ = l.w.Write(b)
	}
	l.mu.Unlock()
	if cap(b) <= 4<<10 {
		*bp = b
		l.bufs.Put(bp)
	}
}

// Append appends r's line, ending in a newline, to b.
func (l *Logger) Append(b []byte, r *Record, latency time.Duration) []byte {
	e := encoder{b: b, json: l.json}
	if e.json {
		e.b = append(e.b, `{"time":"`...)
		e.b = r.Start.AppendFormat(e.b, time.RFC3339Nano)
		e.b = append(e.b, `","level":"INFO","msg":"access"`...)
	} else {
		e.b = append(e.b, "time="...)
		e.b = r.Start.AppendFormat(e.b, time.RFC3339Nano)
		e.b = append(e.b, " level=INFO msg=access"...)
	}
	e.str("protocol", r.Protocol)
	e.str("route", r.Route)
	e.str("method", r.Method)
	e.str("path", r.Path)
	if r.Status != 0 {
		e.int("status", int64(r.Status))
	}
	if r.HasCode {
		e.str("code", r.Code.String())
	}
	e.str("upstream", r.Upstream)
	e.str("endpoint", r.Endpoint)
	if r.Attempts > 0 {
		e.int("attempts", int64(r.Attempts))
	}
	e.key("latency_ms")
	e.b = strconv.AppendFloat(e.b, float64(latency.Microseconds())/1000, 'f', -1, 64)
	e.int("bytes_in", r.BytesIn)
	e.int("bytes_out", r.BytesOut)
	e.str("subject", r.Subject)
	e.str("request_id", r.RequestID)
	if r.Trace.IsValid() {
		e.hex("trace_id", r.Trace[:])
		e.hex("span_id", r.Span[:])
	}
	e.str("peer", r.Peer)
	if e.json {
		e.b = append(e.b, '}')
	}
	return append(e.b, '\n')
}

// encoder appends fields in JSON or in slog's text form.
type encoder struct {
	b    []byte
	json bool
}

func (e *encoder) key(k string) {
	if e.json {
		e.b = append(e.b, ',', '"')
		e.b = append(e.b, k...)
		e.b = append(e.b, '"', ':')
		return
	}
	e.b = append(e.b, ' ')
	e.b = append(e.b, k...)
	e.b = append(e.b, '=')
}

// str appends a string field; an empty one is left out.
func (e *encoder) str(k, v string) {
	if v == "" {
		return
	}
	e.key(k)
	if e.json {
		e.b = appendJSONString(e.b, v)
	} else if needsQuote(v) {
		e.b = strconv.AppendQuote(e.b, v)
	} else {
		e.b = append(e.b, v...)
	}
}

func (e *encoder) int(k string, v int64) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *encoder) hex(k string, v []byte) {
	const digits = "0123456789abcdef"
	e.key(k)
	if e.json {
		e.b = append(e.b, '"')
	}
	for _, c := range v {
		e.b = append(e.b, digits[c>>4], digits[c&15])
	}
	if e.json {
		e.b = append(e.b, '"')
	}
}

// needsQuote reports whether a text value must be quoted, as slog's text
// handler decides.
func needsQuote(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced.
func appendJSONString(b []byte, s string) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', digits[c>>4], digits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
