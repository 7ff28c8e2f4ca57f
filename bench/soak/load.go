package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// callTimeout bounds every call of the load; a call that takes longer is an
// error (the gateway hung or an upstream did not answer).
const callTimeout = 10 * time.Second

// errLimited marks a call the gateway's rate limit refused (HTTP 429,
// RESOURCE_EXHAUSTED): counted apart from errors.
var errLimited = errors.New("rate limited")

// worker makes calls of one protocol, one at a time.
type worker interface {
	// call makes one call; nil is a correct answer.
	call(ctx context.Context, seq int64) error
	close()
}

// protocol is one kind of client of the mixed load.
type protocol struct {
	name string
	// newWorker returns a worker; worker i of n.
	newWorker func(i int) (worker, error)
	done      func() // releases what the workers share
	// skipped counts the calls not started because every worker was busy.
	skipped atomic.Int64
}

// getShelf is the request of every unary call of the load: a seeded shelf of
// the example library, so that every replica answers it the same.
var getShelf = &libraryv1.GetShelfRequest{Name: "shelves/1"}

const getShelfPath = "/example.library.v1.LibraryService/GetShelf"

// protocols returns the load's clients of the gateway at base
// (http://host:port), MQTT devices on broker last.
func protocols(base, broker string, rec *delivery) ([]*protocol, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: tr, Timeout: callTimeout}
	conn, err := grpc.NewClient(strings.TrimPrefix(base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	lib := libraryv1.NewLibraryServiceClient(conn)
	body, err := proto.Marshal(getShelf)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(body)))
	copy(frame[5:], body)
	stateless := func(f func(ctx context.Context) error) func(int) (worker, error) {
		return func(int) (worker, error) { return funcWorker(f), nil }
	}
	return []*protocol{
		{name: "REST", newWorker: stateless(func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/shelves/1", nil)
			return httpCall(hc, req, func(b []byte) error { return wantShelf(b) })
		}), done: tr.CloseIdleConnections},
		{name: "gRPC", newWorker: stateless(func(ctx context.Context) error {
			sh, err := lib.GetShelf(ctx, getShelf)
			if status.Code(err) == codes.ResourceExhausted {
				return errLimited
			}
			if err == nil && sh.GetName() != "shelves/1" {
				err = fmt.Errorf("wrong shelf %q", sh.GetName())
			}
			return err
		}), done: func() { conn.Close() }},
		{name: "gRPC-Web", newWorker: stateless(func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", base+getShelfPath, bytes.NewReader(frame))
			req.Header.Set("Content-Type", "application/grpc-web+proto")
			req.Header.Set("X-Grpc-Web", "1")
			return httpCall(hc, req, grpcWebAnswer)
		})},
		{name: "Connect", newWorker: stateless(func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", base+getShelfPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/proto")
			req.Header.Set("Connect-Protocol-Version", "1")
			return httpCall(hc, req, func(b []byte) error {
				var sh libraryv1.Shelf
				if err := proto.Unmarshal(b, &sh); err != nil || sh.GetName() != "shelves/1" {
					return fmt.Errorf("not shelves/1 (%v): %q", err, b)
				}
				return nil
			})
		})},
		{name: "WebSocket", newWorker: func(int) (worker, error) {
			return &chatWorker{url: "ws" + strings.TrimPrefix(base, "http") + "/ws/example.library.v1.LibraryService/Chat"}, nil
		}},
		{name: "MQTT", newWorker: func(i int) (worker, error) {
			return &device{broker: broker, id: fmt.Sprintf("soak-%d", i), rec: rec}, nil
		}},
	}, nil
}

// funcWorker is a stateless worker.
type funcWorker func(ctx context.Context) error

func (f funcWorker) call(ctx context.Context, _ int64) error { return f(ctx) }
func (funcWorker) close()                                    {}

// httpCall does req and checks a 200 answer's body with ok; 429 is
// errLimited, any other status an error quoting the body.
func httpCall(hc *http.Client, req *http.Request, ok func([]byte) error) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return errLimited
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	case resp.Header.Get("Grpc-Status") != "" && resp.Header.Get("Grpc-Status") != "0": // gRPC-Web trailers-only
		return grpcWebError(resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"))
	}
	return ok(b)
}

// wantShelf checks a REST answer is shelves/1.
func wantShelf(b []byte) error {
	var sh struct{ Name string }
	if err := json.Unmarshal(b, &sh); err != nil || sh.Name != "shelves/1" {
		return fmt.Errorf("not shelves/1 (%v): %.200s", err, b)
	}
	return nil
}

// grpcWebAnswer checks a gRPC-Web body: one message frame, then a trailer
// frame with grpc-status 0.
func grpcWebAnswer(b []byte) error {
	var got bool
	for len(b) >= 5 {
		flag, n := b[0], int(binary.BigEndian.Uint32(b[1:5]))
		if len(b) < 5+n {
			break
		}
		payload := b[5 : 5+n]
		b = b[5+n:]
		if flag&0x80 == 0 {
			got = true
			continue
		}
		var code, msg string
		for line := range strings.Lines(string(payload)) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			switch strings.ToLower(k) {
			case "grpc-status":
				code = strings.TrimSpace(v)
			case "grpc-message":
				msg = strings.TrimSpace(v)
			}
		}
		if code != "0" {
			return grpcWebError(code, msg)
		}
		if !got {
			return errors.New("gRPC-Web: status 0 without a message")
		}
		return nil
	}
	return errors.New("gRPC-Web: no trailer frame")
}

func grpcWebError(code, msg string) error {
	if c, _ := strconv.Atoi(code); codes.Code(c) == codes.ResourceExhausted {
		return errLimited
	}
	return fmt.Errorf("gRPC-Web status %s: %s", code, msg)
}

// chatWorker holds one WebSocket bidirectional Chat stream and makes each
// call one echo on it; a stream that fails is counted and opened again at
// the next call.
type chatWorker struct {
	url  string
	conn *ws.Conn
}

func (w *chatWorker) call(ctx context.Context, seq int64) error {
	if w.conn == nil {
		c, resp, err := ws.Dial(ctx, w.url, &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
				return errLimited
			}
			return fmt.Errorf("dial: %w", err)
		}
		w.conn = c
	}
	msg := "soak-" + strconv.FormatInt(seq, 10)
	err := w.conn.Write(ctx, ws.MessageText, []byte(`{"message":"`+msg+`"}`))
	var b []byte
	if err == nil {
		_, b, err = w.conn.Read(ctx)
	}
	if err == nil {
		var frame struct {
			Result *struct{ Message string }
			Status *struct {
				Code    int
				Message string
			}
		}
		switch _ = json.Unmarshal(b, &frame); {
		case frame.Result != nil && frame.Result.Message == msg:
			return nil
		case frame.Status != nil && codes.Code(frame.Status.Code) == codes.ResourceExhausted:
			err = errLimited
		case frame.Status != nil:
			err = fmt.Errorf("stream ended: code %d: %s", frame.Status.Code, frame.Status.Message)
		default:
			err = fmt.Errorf("unexpected frame %.200s", b)
		}
	}
	w.close()
	return err
}

func (w *chatWorker) close() {
	if w.conn != nil {
		w.conn.CloseNow()
		w.conn = nil
	}
}

// bucket counts one protocol's calls over one second of the run.
type bucket struct {
	calls, errors, limited int64
	latSum, latMax         time.Duration
	firstErr               string
}

// recorder holds every protocol's buckets, second by second from start.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	by    map[string][]bucket
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, by: map[string][]bucket{}}
}

// add records a call of proto that ended at t and took d. Calls count in
// the second they end in, when their outcome is known: a call started just
// before a fault and failed by it counts in the fault's window.
func (r *recorder) add(proto string, t time.Time, d time.Duration, err error) {
	sec := int(t.Sub(r.start) / time.Second)
	if sec < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	bs := r.by[proto]
	for len(bs) <= sec {
		bs = append(bs, bucket{})
	}
	b := &bs[sec]
	b.calls++
	b.latSum += d
	b.latMax = max(b.latMax, d)
	switch {
	case errors.Is(err, errLimited):
		b.limited++
	case err != nil:
		b.errors++
		if b.firstErr == "" {
			b.firstErr = err.Error()
		}
	}
	r.by[proto] = bs
}

// snapshot returns a copy of every protocol's buckets.
func (r *recorder) snapshot() map[string][]bucket {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]bucket, len(r.by))
	for k, v := range r.by {
		out[k] = append([]bucket(nil), v...)
	}
	return out
}

// drive runs n workers of p until ctx ends. With rate > 0 the calls are
// paced at rate per second in all (a call not started because every worker
// was busy counts in p.skipped); with rate 0 each worker calls back to back.
func drive(ctx context.Context, p *protocol, n int, rate float64, rec *recorder) error {
	workers := make([]worker, n)
	for i := range workers {
		w, err := p.newWorker(i)
		if err != nil {
			return err
		}
		workers[i] = w
	}
	var tokens chan struct{}
	if rate > 0 {
		tokens = make(chan struct{}, n)
		go pace(ctx, rate, tokens, &p.skipped)
	}
	var seq atomic.Int64
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			defer w.close()
			for {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						return
					}
				}
				if ctx.Err() != nil {
					return
				}
				start := time.Now()
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				err := w.call(cctx, seq.Add(1))
				cancel()
				if ctx.Err() != nil {
					return // the run ended during the call: not counted
				}
				now := time.Now()
				rec.add(p.name, now, now.Sub(start), err)
			}
		})
	}
	wg.Wait()
	return nil
}

// pace puts rate tokens per second into tokens until ctx ends; a token
// that finds tokens full is counted in skipped.
func pace(ctx context.Context, rate float64, tokens chan<- struct{}, skipped *atomic.Int64) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last, owed := time.Now(), 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			owed += rate * now.Sub(last).Seconds()
			last = now
			for ; owed >= 1; owed-- {
				select {
				case tokens <- struct{}{}:
				default:
					skipped.Add(1)
				}
			}
		}
	}
}
