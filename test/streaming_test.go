package test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// streamUpstream is the example LibraryService served in the test process,
// with StreamBooks taking two extra parents that the library-server binary
// cannot show: "shelves/fail" sends one book and then fails with DATA_LOSS,
// and "shelves/endless" sends 1 KiB books until the client goes away,
// counting them and reporting the cancellation; "shelves/quiet" sends one
// book and then nothing until the client goes away (a watch with no news).
type streamUpstream struct {
	*library.Server
	addr      string
	sent      atomic.Int64
	cancelled chan struct{}            // receives when an endless stream sees its cancel
	auth      atomic.Pointer[[]string] // the authorization metadata of the last StreamBooks
}

func startStreamUpstream(t testing.TB) *streamUpstream {
	t.Helper()
	u := &streamUpstream{Server: library.NewServer(), cancelled: make(chan struct{}, 8)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := grpc.NewServer()
	libraryv1.RegisterLibraryServiceServer(srv, u)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return u
}

func (u *streamUpstream) StreamBooks(req *libraryv1.ListBooksRequest, stream grpc.ServerStreamingServer[libraryv1.Book]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	auth := md.Get("authorization")
	u.auth.Store(&auth)
	switch req.GetParent() {
	case "shelves/fail":
		if err := stream.Send(&libraryv1.Book{Name: "shelves/fail/books/1", Title: "First"}); err != nil {
			return err
		}
		return status.Error(codes.DataLoss, "the shelf collapsed")
	case "shelves/endless":
		title := strings.Repeat("x", 1024)
		for i := 0; ; i++ {
			if err := stream.Send(&libraryv1.Book{Name: fmt.Sprintf("shelves/endless/books/%d", i), Title: title}); err != nil {
				select {
				case u.cancelled <- struct{}{}:
				default: // nobody waits for this one (a test that ends many streams)
				}
				return err
			}
			u.sent.Add(1)
		}
	case "shelves/quiet":
		if err := stream.Send(&libraryv1.Book{Name: "shelves/quiet/books/1", Title: "Silence"}); err != nil {
			return err
		}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return u.Server.StreamBooks(req, stream)
}

// waitCancelled waits (bounded) until the upstream saw an endless stream end.
func (u *streamUpstream) waitCancelled(t testing.TB) {
	t.Helper()
	select {
	case <-u.cancelled:
	case <-time.After(requestTimeout):
		t.Fatalf("the upstream did not see the client go away within %v", requestTimeout)
	}
}

// streamingConfig is the extra configuration of the streaming tests.
const streamingConfig = `security: {policies: [browser]}
policies:
  browser: {cors: {allowed_origins: ["https://app.example"], allow_credentials: true}}
`

// startStreaming starts the in-process upstream and a gateway in front of it.
func startStreaming(t *testing.T, extra string) (*streamUpstream, *rosetta) {
	t.Helper()
	u := startStreamUpstream(t)
	return u, startRosetta(t, libraryConfig(descriptorSetSchema(), u.addr, "    auto_mapping: true\n", extra))
}

// getStream sends a GET and returns the open response, whose body the
// caller reads and closes.
func getStream(t *testing.T, url string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{}).Do(req) // no client timeout: the stream's lifetime is the test's to decide
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// ndjsonLines reads a newline-delimited JSON body to its end.
func ndjsonLines(t *testing.T, body io.Reader) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", len(out)+1, err, sc.Bytes())
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func resultName(line map[string]any) string {
	r, _ := line["result"].(map[string]any)
	s, _ := r["name"].(string)
	return s
}

func TestServerStreamNDJSON(t *testing.T) {
	u, ros := startStreaming(t, "")

	t.Run("messages", func(t *testing.T) {
		resp := getStream(t, ros.base+"/v1/shelves/1/books:stream?read_mask=name&tags=classic", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("status %d, Content-Type %q; want 200 application/x-ndjson", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := ndjsonLines(t, resp.Body)
		var names []string
		for _, l := range lines {
			names = append(names, resultName(l))
		}
		want := "shelves/1/books/dune shelves/1/books/the-left-hand-of-darkness shelves/1/books/leaves-of-grass"
		if strings.Join(names, " ") != want {
			t.Errorf("streamed %v, want %s", names, want)
		}
	})

	t.Run("error before the first message", func(t *testing.T) {
		// As grpc-gateway frames it: the error's HTTP status and one
		// {"error": status} line.
		r := get(t, ros.base, "/v1/shelves/9/books:stream")
		if !strings.HasSuffix(string(r.body), "}\n") || strings.Count(string(r.body), "\n") != 1 {
			t.Errorf("body %q, want one line", r.body)
		}
		var line struct{ Error json.RawMessage }
		if err := json.Unmarshal(r.body, &line); err != nil || line.Error == nil {
			t.Fatalf("body %q is not an {\"error\": ...} line (%v)", r.body, err)
		}
		wantStatus(t, &response{status: r.status, header: r.header, body: line.Error}, 404, codeNotFound, "")
	})

	t.Run("refused before the stream starts", func(t *testing.T) {
		// An error the gateway raises itself is a plain status body, as
		// grpc-gateway answers a request it cannot decode.
		r := get(t, ros.base, "/v1/shelves/9/books:stream?page_size=ten")
		wantStatus(t, r, 400, codeInvalidArgument, "page_size")
	})

	t.Run("error after the first message", func(t *testing.T) {
		resp := getStream(t, ros.base+"/v1/shelves/fail/books:stream", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200 (the error comes in-band)", resp.StatusCode)
		}
		lines := ndjsonLines(t, resp.Body)
		if len(lines) != 2 || resultName(lines[0]) != "shelves/fail/books/1" {
			t.Fatalf("lines %v, want one result and one error", lines)
		}
		e, _ := lines[1]["error"].(map[string]any)
		if e["code"] != float64(codes.DataLoss) || e["message"] != "the shelf collapsed" {
			t.Errorf("last line %v, want the DATA_LOSS status", lines[1])
		}
	})

	t.Run("client disconnect cancels the upstream", func(t *testing.T) {
		resp := getStream(t, ros.base+"/v1/shelves/endless/books:stream", nil)
		line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
		if err != nil || !strings.Contains(string(line), "shelves/endless/books/0") {
			t.Fatalf("first line %q, %v", line, err)
		}
		resp.Body.Close()
		u.waitCancelled(t)
	})

	t.Run("slow reader keeps memory bounded", func(t *testing.T) {
		before := u.sent.Load()
		resp := getStream(t, ros.base+"/v1/shelves/endless/books:stream", nil)
		// The client reads nothing: the upstream must stall once the
		// gateway's bounded buffers, gRPC's flow-control window and the
		// TCP buffers are full, instead of streaming into memory.
		const bound = 64 << 20 // bytes; an unbounded gateway passes it within seconds
		stalled := waitStall(t, func() int64 { return (u.sent.Load() - before) * 1024 }, bound)
		t.Logf("the upstream stalled after %d KiB unread; gateway RSS %d KiB", stalled/1024, rssKiB(t, ros))
		if rss := rssKiB(t, ros); rss > 256<<10 {
			t.Errorf("gateway RSS %d KiB with a stalled stream, want under 256 MiB", rss)
		}
		// Reading resumes the stream.
		if _, err := bufio.NewReader(resp.Body).ReadBytes('\n'); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u.waitCancelled(t)
	})
}

// waitStall polls progress until it stops growing for a while, failing if
// it passes bound first or never stalls; it returns the stalled value.
func waitStall(t *testing.T, progress func() int64, bound int64) int64 {
	t.Helper()
	deadline := time.Now().Add(requestTimeout)
	last, still := int64(-1), 0
	for time.Now().Before(deadline) {
		p := progress()
		if p > bound {
			t.Fatalf("%d bytes went out with nobody reading, past the bound of %d: no backpressure", p, bound)
		}
		if p == last && p > 0 {
			still++
			if still == 10 {
				return p
			}
		} else {
			still = 0
		}
		last = p
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the upstream never stalled (%d bytes sent)", last)
	return 0
}

// rssKiB is the resident memory of the gateway process.
func rssKiB(t testing.TB, r *rosetta) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestServerStreamSSE(t *testing.T) {
	_, ros := startStreaming(t, "")
	for _, tc := range []struct {
		path       string
		names      []string
		statusCode float64
	}{
		{"/v1/shelves/2/books:stream?read_mask=name", []string{"shelves/2/books/cosmos", "shelves/2/books/the-selfish-gene", "shelves/2/books/a-brief-history-of-time", "shelves/2/books/the-structure-of-scientific-revolutions"}, 0},
		{"/v1/shelves/fail/books:stream", []string{"shelves/fail/books/1"}, float64(codes.DataLoss)},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := getStream(t, ros.base+tc.path, map[string]string{"Accept": "text/event-stream"})
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			events := readSSE(t, resp.Body)
			if len(events) != len(tc.names)+1 {
				t.Fatalf("%d events, want %d messages and a status: %v", len(events), len(tc.names), events)
			}
			for i, name := range tc.names {
				ev := events[i]
				var msg map[string]any
				json.Unmarshal([]byte(ev["data"]), &msg)
				if ev["event"] != "" || ev["id"] != strconv.Itoa(i+1) || msg["name"] != name {
					t.Errorf("event %d = %v, want id %d and book %s", i, ev, i+1, name)
				}
			}
			last := events[len(events)-1]
			var st map[string]any
			json.Unmarshal([]byte(last["data"]), &st)
			if last["event"] != "status" || codeOf(st) != tc.statusCode {
				t.Errorf("last event %v, want a status event with code %v", last, tc.statusCode)
			}
		})
	}
}

// codeOf reads the code of a google.rpc.Status in JSON (absent: 0).
func codeOf(st map[string]any) float64 {
	c, _ := st["code"].(float64)
	return c
}

// readSSE reads an event stream to its end, each event as its fields.
func readSSE(t *testing.T, body io.Reader) []map[string]string {
	t.Helper()
	var out []map[string]string
	ev := map[string]string{}
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			out = append(out, ev)
			ev = map[string]string{}
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		ev[k] += v
	}
	return out
}

// wsURL is the WebSocket address of a method.
func wsURL(ros *rosetta, method string) string {
	return "ws" + strings.TrimPrefix(ros.base, "http") + "/ws/example.library.v1.LibraryService/" + method
}

// wsCall is one WebSocket call of a test.
type wsCall struct {
	t    *testing.T
	conn *ws.Conn
	ctx  context.Context
}

func dialWS(t *testing.T, ros *rosetta, method string, opts *ws.DialOptions) *wsCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	t.Cleanup(cancel)
	if opts == nil {
		opts = &ws.DialOptions{Subprotocols: []string{"rosetta.json"}}
	}
	conn, resp, err := ws.Dial(ctx, wsURL(ros, method), opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", method, err, status)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &wsCall{t: t, conn: conn, ctx: ctx}
}

func (c *wsCall) send(msg string) {
	c.t.Helper()
	if err := c.conn.Write(c.ctx, ws.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

// closeSend half-closes the client's side.
func (c *wsCall) closeSend() { c.send("") }

// recv reads the next frame as JSON.
func (c *wsCall) recv() map[string]any {
	c.t.Helper()
	typ, data, err := c.conn.Read(c.ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != ws.MessageText {
		c.t.Fatalf("a binary frame where JSON was due")
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		c.t.Fatalf("frame is not JSON: %v\n%s", err, data)
	}
	return v
}

// finish reads the final status frame and the close frame, and checks both
// carry code.
func (c *wsCall) finish(code codes.Code) map[string]any {
	c.t.Helper()
	last := c.recv()
	st, ok := last["status"].(map[string]any)
	if !ok || codeOf(st) != float64(code) {
		c.t.Fatalf("final frame %v, want a status with code %v", last, code)
	}
	_, _, err := c.conn.Read(c.ctx)
	want := ws.StatusNormalClosure
	if code != codes.OK {
		want = ws.StatusCode(4000 + int(code))
	}
	if got := ws.CloseStatus(err); got != want {
		c.t.Errorf("close code %d (%v), want %d", got, err, want)
	}
	return st
}

func result(t *testing.T, frame map[string]any) map[string]any {
	t.Helper()
	r, ok := frame["result"].(map[string]any)
	if !ok {
		t.Fatalf("frame %v, want a result", frame)
	}
	return r
}

func TestWebSocket(t *testing.T) {
	// The slow reader pauses until the upstream stalls, however long a
	// busy machine takes: it is not dropped (TestWebSocketClientNeverReads
	// is the client that never reads).
	u, ros := startStreaming(t, streamingConfig+"websocket: {write_timeout: 10m}\n")

	t.Run("unary", func(t *testing.T) {
		c := dialWS(t, ros, "GetBook", nil)
		c.send(`{"name": "shelves/1/books/dune"}`)
		c.closeSend()
		if r := result(t, c.recv()); r["title"] != "Dune" {
			t.Errorf("GetBook = %v", r)
		}
		c.finish(codes.OK)
	})

	t.Run("server streaming", func(t *testing.T) {
		c := dialWS(t, ros, "StreamBooks", nil)
		c.send(`{"parent": "shelves/2", "readMask": "name"}`)
		c.closeSend()
		for _, want := range []string{"shelves/2/books/cosmos", "shelves/2/books/the-selfish-gene", "shelves/2/books/a-brief-history-of-time", "shelves/2/books/the-structure-of-scientific-revolutions"} {
			if r := result(t, c.recv()); r["name"] != want {
				t.Errorf("got %v, want %s", r, want)
			}
		}
		c.finish(codes.OK)
	})

	t.Run("client streaming", func(t *testing.T) {
		c := dialWS(t, ros, "ImportBooks", nil)
		c.send(`{"parent": "shelves/1", "bookId": "ws-one", "book": {"title": "One"}}`)
		c.send(`{"parent": "shelves/1", "bookId": "ws-two", "book": {"title": "Two"}}`)
		c.closeSend()
		r := result(t, c.recv())
		if fmt.Sprint(r["names"]) != "[shelves/1/books/ws-one shelves/1/books/ws-two]" {
			t.Errorf("ImportBooks = %v", r)
		}
		c.finish(codes.OK)
	})

	t.Run("bidi", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		for _, m := range []string{"hello", "again"} {
			c.send(`{"message": "` + m + `"}`)
			if r := result(t, c.recv()); r["message"] != m {
				t.Errorf("echo %v, want %s", r, m)
			}
		}
		c.closeSend()
		c.finish(codes.OK)
	})

	t.Run("bidi binary", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", &ws.DialOptions{Subprotocols: []string{"rosetta.proto"}})
		req, _ := proto.Marshal(&libraryv1.PingRequest{Message: "binary"})
		if err := c.conn.Write(c.ctx, ws.MessageBinary, req); err != nil {
			t.Fatal(err)
		}
		typ, data, err := c.conn.Read(c.ctx)
		if err != nil || typ != ws.MessageBinary {
			t.Fatalf("read: %v, %v", typ, err)
		}
		var resp libraryv1.PingResponse
		if err := proto.Unmarshal(data, &resp); err != nil || resp.GetMessage() != "binary" || resp.GetTime() == nil {
			t.Errorf("echo %v, %v", &resp, err)
		}
		c.closeSend()
		c.finish(codes.OK)
	})

	t.Run("upstream failure mid-stream", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		c.send(`{"message": "first"}`)
		result(t, c.recv())
		c.send(`{"message": "error"}`)
		st := c.finish(codes.Aborted)
		if st["message"] != "chat aborted on request" {
			t.Errorf("status %v", st)
		}
	})

	t.Run("bad message", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		c.send(`{"mesage": "typo"}`)
		c.finish(codes.InvalidArgument)
	})

	t.Run("upstream error before the first message", func(t *testing.T) {
		c := dialWS(t, ros, "StreamBooks", nil)
		c.send(`{"parent": "shelves/9"}`)
		c.finish(codes.NotFound)
	})

	t.Run("bearer token as a subprotocol", func(t *testing.T) {
		c := dialWS(t, ros, "StreamBooks", &ws.DialOptions{Subprotocols: []string{"rosetta.json", "rosetta.bearer.tok-123"}})
		if c.conn.Subprotocol() != "rosetta.json" {
			t.Errorf("subprotocol %q, want rosetta.json (never the token)", c.conn.Subprotocol())
		}
		c.send(`{"parent": "shelves/2"}`) // four books; the client-streaming case adds to shelves/1
		c.closeSend()
		for range 4 {
			result(t, c.recv())
		}
		c.finish(codes.OK)
		// No policy verified the token: it is never forwarded (issue 14;
		// TestAttackSuite has a verified one reach the upstream).
		if got := *u.auth.Load(); len(got) != 0 {
			t.Errorf("the upstream got authorization %q, want none", got)
		}
	})

	t.Run("slow reader keeps memory bounded", func(t *testing.T) {
		before := u.sent.Load()
		c := dialWS(t, ros, "StreamBooks", nil)
		c.send(`{"parent": "shelves/endless"}`)
		stalled := waitStall(t, func() int64 { return (u.sent.Load() - before) * 1024 }, 64<<20)
		t.Logf("the upstream stalled after %d KiB unread; gateway RSS %d KiB", stalled/1024, rssKiB(t, ros))
		result(t, c.recv()) // reading resumes the stream
		c.conn.CloseNow()
		u.waitCancelled(t)
	})

	t.Run("client disconnect cancels the upstream", func(t *testing.T) {
		c := dialWS(t, ros, "StreamBooks", nil)
		c.send(`{"parent": "shelves/endless"}`)
		result(t, c.recv())
		c.conn.CloseNow()
		u.waitCancelled(t)
	})

	t.Run("unknown method", func(t *testing.T) {
		r := get(t, ros.base, "/ws/example.library.v1.LibraryService/Nope")
		wantStatus(t, r, 404, codeNotFound, "")
	})
}

func TestWebSocketOrigins(t *testing.T) {
	_, ros := startStreaming(t, streamingConfig)
	dial := func(origin string) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		conn, resp, err := ws.Dial(ctx, wsURL(ros, "Chat"), &ws.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err == nil {
			conn.CloseNow()
		}
		return resp, err
	}
	if resp, err := dial("https://evil.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-origin upgrade from a page not allowed: %v, %v; want 403", resp, err)
	}
	if _, err := dial("https://app.example"); err != nil {
		t.Errorf("an upgrade from an allowed origin: %v", err)
	}
	if _, err := dial(ros.base); err != nil {
		t.Errorf("a same-origin upgrade: %v", err)
	}
	r := do(t, ros.base, request{method: "GET", path: "/ws/example.library.v1.LibraryService/Chat?access_token=secret",
		header: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}})
	wantStatus(t, r, 400, codeInvalidArgument, "")
	// The refused upgrade's line is the only one with a 400 (access-log
	// lines may wait in a buffer before they are written).
	waitFor(t, "the refused upgrade's access-log line", func() bool {
		return strings.Contains(ros.stderr.String(), `"status":400`)
	})
	if strings.Contains(ros.stderr.String(), "secret") {
		t.Errorf("the query token was logged:\n%s", ros.stderr)
	}
}

func TestWebSocketLimits(t *testing.T) {
	// The idle timeout leaves seconds for the echo to come back before it
	// (a busy machine may hold a loopback round trip for a while); the
	// pings keep their default interval: a client that is not reading at
	// the moment (between its calls) cannot answer one.
	_, ros := startStreaming(t, "websocket: {max_message_bytes: 1KiB, idle_timeout: 2s}\n")

	t.Run("oversize message", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		c.send(`{"message": "` + strings.Repeat("x", 2048) + `"}`)
		c.finish(codes.ResourceExhausted)
	})

	t.Run("idle timeout", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		c.send(`{"message": "then silence"}`)
		result(t, c.recv())
		c.finish(codes.DeadlineExceeded)
	})

	// Frames no WebSocket client library would send, written on a raw
	// connection: each ends the call with close code 1002.
	for name, frame := range map[string][]byte{
		"unmasked frame":          {0x81, 0x02, '{', '}'},
		"reserved opcode":         {0x83, 0x80, 0, 0, 0, 0},
		"reserved bit":            {0xa1, 0x80, 0, 0, 0, 0},
		"fragmented control":      {0x09, 0x80, 0, 0, 0, 0},
		"continuation, no start":  {0x80, 0x80, 0, 0, 0, 0},
		"message inside fragment": {0x01, 0x81, 0, 0, 0, 0, '{', 0x81, 0x81, 0, 0, 0, 0, '}'},
	} {
		t.Run("protocol error: "+name, func(t *testing.T) {
			conn, rd := rawWebSocket(t, ros, "Chat")
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			if code := closeCode(t, rd); code != 1002 {
				t.Errorf("close code %d, want 1002 (protocol error)", code)
			}
		})
	}
}

// rawWebSocket upgrades a plain TCP connection to a WebSocket call of
// method (subprotocol rosetta.json) and returns it with a reader positioned
// after the handshake's answer.
func rawWebSocket(t *testing.T, ros *rosetta, method string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(ros.base, "http://"), requestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(requestTimeout))
	fmt.Fprintf(conn, "GET /ws/example.library.v1.LibraryService/%s HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rosetta.json\r\n\r\n", method)
	rd := bufio.NewReader(conn)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %s", resp.Status)
	}
	return conn, rd
}

// closeCode reads server frames (unmasked, short) until a close frame and
// returns its status code; 0 when the connection ends without one.
func closeCode(t *testing.T, rd *bufio.Reader) int {
	t.Helper()
	for {
		var h [2]byte
		if _, err := io.ReadFull(rd, h[:]); err != nil {
			return 0
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(rd, ext[:]); err != nil {
				return 0
			}
			n = int(binary.BigEndian.Uint16(ext[:]))
		case 127:
			t.Fatal("a server frame over 64 KiB")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(rd, payload); err != nil {
			return 0
		}
		if h[0]&0x0f == 0x8 {
			if n < 2 {
				return 0
			}
			return int(binary.BigEndian.Uint16(payload))
		}
	}
}

func TestGRPCIngress(t *testing.T) {
	u, ros := startStreaming(t, "")
	conn, err := grpc.NewClient(strings.TrimPrefix(ros.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := libraryv1.NewLibraryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		b, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		if err != nil || b.GetTitle() != "Dune" {
			t.Fatalf("GetBook = %v, %v", b, err)
		}
		_, err = c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/nope"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("GetBook of a missing book: %v, want NotFound", err)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		s, err := c.StreamBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/fail"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Recv()
		if err != nil || b.GetName() != "shelves/fail/books/1" {
			t.Fatalf("first message %v, %v", b, err)
		}
		if _, err := s.Recv(); status.Code(err) != codes.DataLoss {
			t.Errorf("after the first message: %v, want DataLoss", err)
		}
	})

	t.Run("client streaming", func(t *testing.T) {
		s, err := c.ImportBooks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"grpc-one", "grpc-two"} {
			if err := s.Send(&libraryv1.CreateBookRequest{Parent: "shelves/2", BookId: id, Book: &libraryv1.Book{Title: id}}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := s.CloseAndRecv()
		if err != nil || strings.Join(resp.GetNames(), " ") != "shelves/2/books/grpc-one shelves/2/books/grpc-two" {
			t.Errorf("ImportBooks = %v, %v", resp, err)
		}
	})

	t.Run("bidi", func(t *testing.T) {
		s, err := c.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"one", "two"} {
			if err := s.Send(&libraryv1.PingRequest{Message: m}); err != nil {
				t.Fatal(err)
			}
			resp, err := s.Recv()
			if err != nil || resp.GetMessage() != m {
				t.Fatalf("echo %v, %v", resp, err)
			}
		}
		s.Send(&libraryv1.PingRequest{Message: "error"})
		if _, err := s.Recv(); status.Code(err) != codes.Aborted {
			t.Errorf("after an error message: %v, want Aborted", err)
		}
	})

	t.Run("client disconnect cancels the upstream", func(t *testing.T) {
		sctx, stop := context.WithCancel(ctx)
		s, err := c.StreamBooks(sctx, &libraryv1.ListBooksRequest{Parent: "shelves/endless"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		stop()
		u.waitCancelled(t)
	})

	t.Run("unknown method", func(t *testing.T) {
		err := conn.Invoke(ctx, "/example.library.v1.LibraryService/Nope", &libraryv1.PingRequest{}, &libraryv1.PingResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("unknown method: %v, want Unimplemented", err)
		}
	})
}

// frames splits a gRPC-Web or Connect streaming body into its envelopes.
func frames(t *testing.T, body []byte) (flags []byte, payloads [][]byte) {
	t.Helper()
	for len(body) > 0 {
		if len(body) < 5 {
			t.Fatalf("truncated envelope prefix: %q", body)
		}
		n := int(binary.BigEndian.Uint32(body[1:5]))
		if len(body) < 5+n {
			t.Fatalf("truncated envelope: %d of %d bytes", len(body)-5, n)
		}
		flags = append(flags, body[0])
		payloads = append(payloads, body[5:5+n])
		body = body[5+n:]
	}
	return flags, payloads
}

func envelope(msg []byte) []byte {
	return binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))) // the length follows the flags byte
}

// post sends a body with the given headers and reads the answer.
func post(t *testing.T, ros *rosetta, method string, body []byte, header map[string]string) *response {
	t.Helper()
	header["Content-Length"] = strconv.Itoa(len(body))
	return do(t, ros.base, request{method: "POST", path: "/example.library.v1.LibraryService/" + method, body: string(body), header: header})
}

func TestGRPCWeb(t *testing.T) {
	_, ros := startStreaming(t, streamingConfig)
	grpcWebCall := func(t *testing.T, method string, req proto.Message, text bool) ([]byte, [][]byte) {
		t.Helper()
		msg, _ := proto.Marshal(req)
		body := append(envelope(msg), msg...)
		ct := "application/grpc-web+proto"
		if text {
			ct = "application/grpc-web-text"
			body = []byte(base64.StdEncoding.EncodeToString(body))
		}
		r := post(t, ros, method, body, map[string]string{"Content-Type": ct, "X-Grpc-Web": "1"})
		if r.status != 200 || r.header.Get("Content-Type") != ct {
			t.Fatalf("status %d, Content-Type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if text {
			var raw []byte
			for _, c := range splitBase64(string(r.body)) { // each frame is its own base64 chunk
				b, err := base64.StdEncoding.DecodeString(c)
				if err != nil {
					t.Fatalf("grpc-web-text body: %v", err)
				}
				raw = append(raw, b...)
			}
			r.body = raw
		}
		return frames(t, r.body)
	}
	trailer := func(t *testing.T, flags byte, payload []byte, want string) {
		t.Helper()
		if flags != 0x80 || !strings.Contains(string(payload), want) {
			t.Errorf("trailer frame %x %q, want flag 80 with %q", flags, payload, want)
		}
	}

	for _, text := range []bool{false, true} {
		t.Run(fmt.Sprintf("unary text=%v", text), func(t *testing.T) {
			flags, payloads := grpcWebCall(t, "GetBook", &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"}, text)
			if len(flags) != 2 || flags[0] != 0 {
				t.Fatalf("frames %x, want a message and the trailer", flags)
			}
			var b libraryv1.Book
			if err := proto.Unmarshal(payloads[0], &b); err != nil || b.GetTitle() != "Dune" {
				t.Errorf("book %v, %v", &b, err)
			}
			trailer(t, flags[1], payloads[1], "grpc-status: 0\r\n")
		})
	}

	t.Run("server streaming with a failure", func(t *testing.T) {
		flags, payloads := grpcWebCall(t, "StreamBooks", &libraryv1.ListBooksRequest{Parent: "shelves/fail"}, false)
		if len(flags) != 2 || flags[0] != 0 {
			t.Fatalf("frames %x, want a message and the trailer", flags)
		}
		trailer(t, flags[1], payloads[1], "grpc-status: 15\r\ngrpc-message: the%20shelf%20collapsed\r\n")
	})

	t.Run("error before the first message", func(t *testing.T) {
		flags, payloads := grpcWebCall(t, "GetBook", &libraryv1.GetBookRequest{Name: "shelves/1/books/nope"}, false)
		if len(flags) != 1 {
			t.Fatalf("frames %x, want the trailer alone", flags)
		}
		trailer(t, flags[0], payloads[0], "grpc-status: 5\r\n")
	})

	t.Run("CORS preflight", func(t *testing.T) {
		r := do(t, ros.base, request{method: "OPTIONS", path: "/example.library.v1.LibraryService/GetBook", header: map[string]string{
			"Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-grpc-web"}})
		if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "x-grpc-web") {
			t.Errorf("preflight: %d %v", r.status, r.header)
		}
		// The answer itself exposes the protocol's headers to the page.
		msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		r = post(t, ros, "GetBook", append(envelope(msg), msg...), map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1", "Origin": "https://app.example"})
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Grpc-Status") {
			t.Errorf("call from an allowed page: %d %v", r.status, r.header)
		}
		r = do(t, ros.base, request{method: "OPTIONS", path: "/example.library.v1.LibraryService/GetBook", header: map[string]string{
			"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}})
		if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from a page not allowed: %d %v", r.status, r.header)
		}
	})
}

// splitBase64 splits concatenated padded base64 chunks.
func splitBase64(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, '=')
		if i < 0 {
			return append(out, s)
		}
		j := i
		for j < len(s) && s[j] == '=' {
			j++
		}
		out = append(out, s[:j])
		s = s[j:]
	}
	return out
}

func TestConnect(t *testing.T) {
	u, ros := startStreaming(t, streamingConfig)
	connect := map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1"}

	t.Run("unary JSON", func(t *testing.T) {
		r := post(t, ros, "GetBook", []byte(`{"name": "shelves/1/books/dune"}`), connect)
		if r.status != 200 || !strings.Contains(string(r.body), `"title":"Dune"`) {
			t.Errorf("%d %s", r.status, r.body)
		}
	})

	t.Run("unary binary", func(t *testing.T) {
		msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		r := post(t, ros, "GetBook", msg, map[string]string{"Content-Type": "application/proto", "Connect-Protocol-Version": "1"})
		var b libraryv1.Book
		if r.status != 200 || r.header.Get("Content-Type") != "application/proto" || proto.Unmarshal(r.body, &b) != nil || b.GetTitle() != "Dune" {
			t.Errorf("%d %q %v", r.status, r.header.Get("Content-Type"), &b)
		}
	})

	t.Run("unary error", func(t *testing.T) {
		r := post(t, ros, "GetBook", []byte(`{"name": "shelves/1/books/nope"}`), connect)
		var e map[string]any
		json.Unmarshal(r.body, &e)
		if r.status != 404 || e["code"] != "not_found" {
			t.Errorf("%d %s, want 404 not_found", r.status, r.body)
		}
		r = post(t, ros, "GetBook", []byte(`{"nam": 1}`), connect)
		json.Unmarshal(r.body, &e)
		if r.status != 400 || e["code"] != "invalid_argument" {
			t.Errorf("%d %s, want 400 invalid_argument", r.status, r.body)
		}
	})

	t.Run("without Connect-Protocol-Version it is REST", func(t *testing.T) {
		r := post(t, ros, "Ping", []byte(`{"message": "rest"}`), map[string]string{"Content-Type": "application/json"})
		if r.status != 200 || !strings.Contains(string(r.body), `"message":"rest"`) {
			t.Errorf("%d %s", r.status, r.body)
		}
	})

	t.Run("unary GET", func(t *testing.T) {
		get := func(method string, q url.Values) *response {
			return do(t, ros.base, request{method: "GET", path: "/example.library.v1.LibraryService/" + method + "?" + q.Encode()})
		}
		r := get("GetBook", url.Values{"connect": {"v1"}, "encoding": {"json"}, "message": {`{"name": "shelves/1/books/dune"}`}})
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" || !strings.Contains(string(r.body), `"title":"Dune"`) {
			t.Errorf("JSON: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		r = get("GetBook", url.Values{"connect": {"v1"}, "encoding": {"proto"}, "base64": {"1"}, "message": {base64.RawURLEncoding.EncodeToString(msg)}})
		var b libraryv1.Book
		if r.status != 200 || r.header.Get("Content-Type") != "application/proto" || proto.Unmarshal(r.body, &b) != nil || b.GetTitle() != "Dune" {
			t.Errorf("proto: %d %q %v", r.status, r.header.Get("Content-Type"), &b)
		}
		for _, tt := range []struct {
			method string
			q      url.Values
			status int
			code   string
		}{
			{"GetBook", url.Values{"encoding": {"xml"}, "message": {"{}"}}, 415, "invalid_argument"},
			{"GetBook", url.Values{"encoding": {"proto"}, "base64": {"1"}, "message": {"*"}}, 400, "invalid_argument"},
			{"GetBook", url.Values{"encoding": {"json"}, "message": {`{"name": "shelves/1/books/nope"}`}}, 404, "not_found"},
			{"Ping", url.Values{"encoding": {"json"}, "message": {`{"message": "side effects"}`}}, 405, "invalid_argument"},
		} {
			r := get(tt.method, tt.q)
			var e map[string]any
			json.Unmarshal(r.body, &e)
			if r.status != tt.status || e["code"] != tt.code {
				t.Errorf("%s?%s: %d %s, want %d %s", tt.method, tt.q.Encode(), r.status, r.body, tt.status, tt.code)
			}
		}
	})

	t.Run("unary GET runs the policy chain", func(t *testing.T) {
		keyed := startRosetta(t, libraryConfig(descriptorSetSchema(), u.addr, "    policies: [key]\n", fmt.Sprintf(`policies:
  key: {api_key: {header: X-Api-Key, keys: [{sha256: %s, identity: reader}]}}
`, sha256Hex("k3y"))))
		path := "/example.library.v1.LibraryService/GetBook?" + url.Values{"encoding": {"json"}, "message": {`{"name": "shelves/1/books/dune"}`}}.Encode()
		r := do(t, keyed.base, request{method: "GET", path: path})
		var e map[string]any
		json.Unmarshal(r.body, &e)
		if r.status != 401 || e["code"] != "unauthenticated" {
			t.Errorf("without a key: %d %s, want 401 unauthenticated", r.status, r.body)
		}
		r = do(t, keyed.base, request{method: "GET", path: path, header: map[string]string{"X-Api-Key": "k3y"}})
		if r.status != 200 || !strings.Contains(string(r.body), `"title":"Dune"`) {
			t.Errorf("with the key: %d %s", r.status, r.body)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		msg := []byte(`{"parent": "shelves/fail"}`)
		r := post(t, ros, "StreamBooks", append(envelope(msg), msg...), map[string]string{"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"})
		if r.status != 200 || r.header.Get("Content-Type") != "application/connect+json" {
			t.Fatalf("%d %q %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		flags, payloads := frames(t, r.body)
		if len(flags) != 2 || flags[0] != 0 || !strings.Contains(string(payloads[0]), "shelves/fail/books/1") {
			t.Fatalf("frames %x %q", flags, payloads)
		}
		if flags[1] != 0x02 || !strings.Contains(string(payloads[1]), `"code":"data_loss"`) {
			t.Errorf("end of stream %x %s", flags[1], payloads[1])
		}
	})
}

// TestWebSocketShutdown stops the gateway with a call open: the client gets
// the final UNAVAILABLE status and close code 4014, and the gateway exits
// cleanly.
func TestWebSocketShutdown(t *testing.T) {
	_, ros := startStreaming(t, "")
	c := dialWS(t, ros, "Chat", nil)
	c.send(`{"message": "before"}`)
	result(t, c.recv())
	// The client keeps reading, as a live one would, so that the close
	// handshake completes.
	type end struct {
		last  []byte
		close ws.StatusCode
	}
	ended := make(chan end, 1)
	go func() {
		var e end
		for {
			_, data, err := c.conn.Read(c.ctx)
			if err != nil {
				e.close = ws.CloseStatus(err)
				ended <- e
				return
			}
			e.last = data
		}
	}()
	if code := ros.stop(t); code != 0 {
		t.Fatalf("rosetta exited with %d after SIGTERM, want 0\n%s", code, ros.stderr)
	}
	e := <-ended
	if !strings.Contains(string(e.last), `"code":14`) || !strings.Contains(string(e.last), "the gateway is shutting down") || e.close != 4014 {
		t.Errorf("last frame %s and close code %d, want the UNAVAILABLE status and 4014\n%s", e.last, e.close, ros.stderr)
	}
}
