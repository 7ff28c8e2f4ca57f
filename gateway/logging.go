package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rosettagw/rosetta/accesslog"
)

// NewLogger returns the process's logger as cfg's log section sets it,
// writing to w, and its access log: nil when access_log is off or the
// level is above info. The caller closes the access log when it is done,
// to write what it buffers.
func NewLogger(w io.Writer, cfg *Config) (*slog.Logger, *accesslog.Logger) {
	level, err := cfg.Log.level()
	if err != nil {
		level = slog.LevelInfo // refused by Build; the start fails anyway
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.Log.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	if (cfg.AccessLog != nil && !*cfg.AccessLog) || level > slog.LevelInfo {
		return slog.New(h), nil
	}
	flush := time.Second
	if cfg.Log.FlushInterval != nil {
		flush = time.Duration(*cfg.Log.FlushInterval)
	}
	return slog.New(h), accesslog.New(w, cfg.Log.Format, flush)
}

// redisLog writes go-redis's own log lines (a dial that failed, a pool
// problem) as warnings of the process's log.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// exchange is one HTTP request's state in the front door: its context
// (carrying the generation it runs on and its access-log record: one
// allocation for both), and the response writer and body that count
// the bytes.
type exchange struct {
	context.Context
	gen    *held
	access *accesslog.Logger
	rec    accesslog.Record
	w      countingWriter
	body   countingBody
	// bytesIn counts the body: an ingress may read it in a goroutine of
	// its own (gRPC) while the line is written.
	bytesIn atomic.Int64
	// detached is set when the call outlives the request's handler (an
	// upgraded WebSocket): its line is written when the call ends.
	detached bool
}

// exchangeKey finds the exchange in a request's context.
type exchangeKey struct{}

func (x *exchange) Value(key any) any {
	switch key.(type) {
	case genKey:
		return x.gen
	case exchangeKey:
		return x
	case accesslog.ContextKey:
		return &x.rec
	}
	return x.Context.Value(key)
}

// countingWriter counts the bytes of a response and remembers its status.
// It unwraps for http.ResponseController, and flushes and hijacks as the
// ingresses need (gRPC asks for http.Flusher, WebSocket for
// http.Hijacker).
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = http.StatusSwitchingProtocols
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the bytes of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// maxRequestID bounds the X-Request-Id logged: a client's header must not
// make the log line as long as it likes.
const maxRequestID = 128

// requestID is the request's X-Request-Id, as the access log takes it: the
// HTTP header only (an MQTT user property of that name is the device's
// data, never logged), cut to maxRequestID bytes.
func requestID(r *http.Request) string {
	return clipRequestID(r.Header.Get("X-Request-Id"))
}

// clipRequestID cuts a request ID to maxRequestID bytes.
func clipRequestID(id string) string {
	if len(id) > maxRequestID {
		id = id[:maxRequestID]
	}
	return id
}

// serveLogged serves r on g through the front door's ingresses and writes
// its access-log line once the answer is sent.
func (f *frontDoor) serveLogged(w http.ResponseWriter, r *http.Request, h *held) {
	x := &exchange{Context: r.Context(), gen: h, access: f.access}
	x.rec = accesslog.Record{Start: time.Now(), Method: r.Method, Path: r.URL.Path, Peer: r.RemoteAddr, RequestID: requestID(r)}
	x.w.ResponseWriter = w
	r = r.WithContext(x)
	if r.Body != nil && r.Body != http.NoBody {
		x.body = countingBody{ReadCloser: r.Body, n: &x.bytesIn}
		r.Body = &x.body
	}
	f.inner.ServeHTTP(&x.w, r)
	if !x.detached {
		x.finish()
	}
}

// finish writes the exchange's access-log line.
func (x *exchange) finish() {
	x.rec.Update(func(r *accesslog.Record) {
		r.Status, r.BytesOut = x.w.status, r.BytesOut+x.w.n
		if r.BytesIn == 0 {
			r.BytesIn = x.bytesIn.Load()
		}
	})
	x.access.Write(&x.rec)
}
