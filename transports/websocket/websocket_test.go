package websocket_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/websocket"
)

const chat = "/example.library.v1.LibraryService/Chat"

// bigMessage is the size of a message that a client not reading leaves
// blocked in the gateway's write: more than the socket buffers hold between
// the two (the client's receive buffer is fixed at clientRcvBuf by
// dialProto, the server's send buffer grows to 4 MiB by default). It is no
// larger than that needs, so that the tests stay quick under the race
// detector.
const bigMessage = 8 << 20

// clientRcvBuf is the receive buffer of the test's client sockets: fixed,
// so that the kernel does not grow it to hold a whole message.
const clientRcvBuf = 64 << 10

// bigSender serves Chat by sending a message of bigMessage bytes and then
// waiting for the call to end; closeTimeout is the handler's.
func bigSender(closeTimeout time.Duration) *websocket.Handler {
	big := bytes.Repeat([]byte{0x0a}, bigMessage)
	routes := &router.Routes{WebSocket: map[string]*router.Route{chat: {
		Method: libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName("Chat"),
		Handler: router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			if err := c.Stream.Send(big); err != nil {
				return err
			}
			<-ctx.Done() // Shutdown ends the call
			return ctx.Err()
		}),
	}}}
	return websocket.New(func(context.Context) *router.Routes { return routes }, websocket.Options{CloseTimeout: closeTimeout})
}

// dialProto opens a Chat socket with the rosetta.proto subprotocol.
func dialProto(ctx context.Context, t *testing.T, srv *httptest.Server) *ws.Conn {
	t.Helper()
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, clientRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	conn, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws"+chat, &ws.DialOptions{Subprotocols: []string{websocket.ProtoProtocol}, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	conn.SetReadLimit(-1)
	return conn
}

// TestStreamShutdownDuringWrite ends a call by Shutdown while a response
// message is still being written to a client that has not read it yet: the
// message must go out whole, followed by the UNAVAILABLE status and close
// code 4014, rather than the write's cancellation cutting the socket.
func TestStreamShutdownDuringWrite(t *testing.T) {
	// A 32 MiB message takes seconds to cross under the race detector on a
	// busy machine: the outcome must not depend on the close bound.
	h := bigSender(time.Minute)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := dialProto(ctx, t, srv)

	// The write has started once its first byte arrives; the client reads
	// no more until Shutdown has failed the call, which it has once new
	// calls are refused.
	typ, rd, err := conn.Reader(ctx)
	if err != nil || typ != ws.MessageBinary {
		t.Fatalf("first frame %v, error %v; want the binary message", typ, err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(rd, first); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(ctx) }()
	for refused := false; !refused; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ws"+chat, nil)
		req.Header.Set("Upgrade", "websocket")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		refused = resp.StatusCode == http.StatusServiceUnavailable
	}

	rest, err := io.ReadAll(rd)
	if err != nil || len(first)+len(rest) != bigMessage {
		t.Fatalf("read %d bytes of the message, error %v; want all %d", len(first)+len(rest), err, bigMessage)
	}
	_, last, err := conn.Read(ctx)
	if err != nil || !strings.Contains(string(last), `"code":14`) {
		t.Fatalf("read %s, error %v; want the UNAVAILABLE status", last, err)
	}
	if _, _, err := conn.Read(ctx); ws.CloseStatus(err) != 4014 {
		t.Fatalf("socket ended with %v, want close code 4014", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestStreamShutdownStuckClient ends a call by Shutdown while a response
// message waits for a client that never reads: the write must still end
// (the socket is cut after the grace for writes), and Shutdown return.
func TestStreamShutdownStuckClient(t *testing.T) {
	h := bigSender(100 * time.Millisecond) // the client never reads: the bound is what ends the write
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := dialProto(ctx, t, srv)
	if _, rd, err := conn.Reader(ctx); err != nil { // the write has started
		t.Fatal(err)
	} else if _, err := rd.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; want every call ended", err)
	}
}
