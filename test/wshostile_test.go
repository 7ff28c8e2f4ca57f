package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc/codes"
)

// hostileWSConfig bounds the writes to a client (1 s, so that the drop
// comes quickly) and its messages (4 KiB).
const hostileWSConfig = "websocket: {write_timeout: 1s, max_message_bytes: 4KiB}\n"

// startHostileWS starts the streaming upstream and a gateway in front of it
// with hostileWSConfig and an admin listener, whose address it returns.
func startHostileWS(t *testing.T) (*streamUpstream, *rosetta, string) {
	t.Helper()
	u := startStreamUpstream(t)
	admin := freePort(t)
	ros := startRosettaListen(t, fmt.Sprintf("admin: %q", admin),
		libraryConfig(descriptorSetSchema(), u.addr, "    auto_mapping: true\n", hostileWSConfig))
	return u, ros, admin
}

// chatOnce is a normal client's call: one Chat echo, the half-close, the OK
// status and the normal close.
func chatOnce(ros *rosetta) error {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, wsURL(ros, "Chat"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	if err := c.Write(ctx, ws.MessageText, []byte(`{"message": "normal"}`)); err != nil {
		return err
	}
	if _, data, err := c.Read(ctx); err != nil || !strings.Contains(string(data), `"normal"`) {
		return fmt.Errorf("echo %s, %v", data, err)
	}
	if err := c.Write(ctx, ws.MessageText, nil); err != nil { // half-close
		return err
	}
	if _, data, err := c.Read(ctx); err != nil || !strings.Contains(string(data), `"status"`) {
		return fmt.Errorf("final status %s, %v", data, err)
	}
	if _, _, err := c.Read(ctx); ws.CloseStatus(err) != ws.StatusNormalClosure {
		return fmt.Errorf("close: %v", err)
	}
	return nil
}

// TestWebSocketClientNeverReads: a client opens a server stream that never
// ends (1 KiB books as fast as they go) and never reads its socket. Once
// the socket buffers are full the gateway's write waits; after
// websocket.write_timeout it drops the client: the drop is logged and
// counted in rosetta_streams_ended_total{reason="write_timeout"}, the
// upstream call is cancelled, the gateway lets go of the connection's
// descriptor and goroutines (while the client still holds its end open)
// and the client finds the socket closed once it reads. Other clients'
// calls are served throughout.
func TestWebSocketClientNeverReads(t *testing.T) {
	t.Parallel()
	u, ros, admin := startHostileWS(t)
	// The baseline, once the gateway has its upstream connection.
	if err := chatOnce(ros); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the normal call to end", func() bool { return metricValue(t, admin, "rosetta_websocket_connections") == 0 })
	goroutines, fds := metricValue(t, admin, "go_goroutines"), metricValue(t, admin, "process_open_fds")

	s := serveNormally(t, func() error { return chatOnce(ros) })
	// A client whose socket the test can read itself, once the drop is seen.
	var (
		mu  sync.Mutex
		raw net.Conn
	)
	dial := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		mu.Lock()
		raw = c
		mu.Unlock()
		return c, err
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c, _, err := ws.Dial(ctx, wsURL(ros, "StreamBooks"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPClient: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, ws.MessageText, []byte(`{"parent": "shelves/endless"}`)); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "the drop in the log", func() bool {
		return strings.Contains(ros.stderr.String(), "WebSocket client dropped: it read nothing for the write timeout")
	})
	waitFor(t, "the drop in /metrics", func() bool {
		_, body := adminGet(t, admin, "/metrics")
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, "rosetta_streams_ended_total{") && strings.Contains(line, `protocol="websocket"`) &&
				strings.Contains(line, `reason="write_timeout"`) && !strings.HasSuffix(line, " 0\n") {
				return true
			}
		}
		return false
	})
	u.waitCancelled(t)
	s.end("a WebSocket client that never reads")
	// The client still holds its end: what the gateway held is released.
	waitFor(t, "the gateway to let go of the dropped call", func() bool {
		return metricValue(t, admin, "rosetta_websocket_connections") == 0 &&
			metricValue(t, admin, "go_goroutines") <= goroutines && metricValue(t, admin, "process_open_fds") <= fds
	})
	// Reading now drains what the kernel still held, then meets the close.
	mu.Lock()
	conn := raw
	mu.Unlock()
	conn.SetReadDeadline(time.Now().Add(requestTimeout)) // a guard: the close is due at once
	n, err := io.Copy(io.Discard, conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the dropped client's socket: %v after %d bytes, want its end (closed by the gateway)", err, n)
	}
	t.Logf("the dropped client read %d KiB left in the socket buffers, then the end", n/1024)
}

// TestWebSocketTinyFrames: a message sent as one-byte frames (continuation
// frames, each with its own header and mask) is read whole and answered;
// one past max_message_bytes in one-byte frames is refused with
// RESOURCE_EXHAUSTED after at most that many bytes, like a single frame;
// other clients are served meanwhile.
func TestWebSocketTinyFrames(t *testing.T) {
	t.Parallel()
	_, ros, _ := startHostileWS(t)
	s := serveNormally(t, func() error { return chatOnce(ros) })
	defer s.end("tiny WebSocket frames")
	// sendTiny sends msg in one-byte frames.
	sendTiny := func(t *testing.T, c *wsCall, msg string) {
		t.Helper()
		w, err := c.conn.Writer(c.ctx, ws.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		for i := range len(msg) {
			if _, err := w.Write([]byte{msg[i]}); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("within the limit", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		text := strings.Repeat("t", 3000)
		msg, _ := json.Marshal(map[string]string{"message": text})
		sendTiny(t, c, string(msg))
		if r := result(t, c.recv()); r["message"] != text {
			t.Errorf("echo of %d bytes: %d bytes", len(text), len(fmt.Sprint(r["message"])))
		}
		c.closeSend()
		c.finish(codes.OK)
	})

	t.Run("past the limit", func(t *testing.T) {
		c := dialWS(t, ros, "Chat", nil)
		sendTiny(t, c, `{"message": "`+strings.Repeat("t", 5000)+`"}`)
		c.finish(codes.ResourceExhausted)
	})
}
