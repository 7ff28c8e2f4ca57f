package test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// Long-lived calls: how streams end when they go quiet, when the gateway
// stops, and what a client that vanishes mid-stream leaves behind.

// streamEnd is how an open stream ended, as its client saw it.
type streamEnd struct {
	name string
	code codes.Code
	msg  string
}

// quietStreams opens one stream of each streaming protocol (native gRPC
// on both listeners when the gateway has listen.grpc), each of which
// then carries nothing (a bidirectional Chat after one echo, or a watch of
// shelves/quiet after its one book), and returns once every one has
// received its first message. Each stream's end arrives on the channel.
func quietStreams(t *testing.T, ros *rosetta) (n int, ends <-chan streamEnd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	quiet := &libraryv1.ListBooksRequest{Parent: "shelves/quiet"}
	opens := map[string]func(ready func()) (codes.Code, string){}
	// The gRPC streams, on the shared listener and on the native one.
	grpcAddrs := map[string]string{"gRPC": strings.TrimPrefix(ros.base, "http://")}
	if ros.grpc != "" {
		grpcAddrs["native gRPC"] = ros.grpc
	}
	for name, addr := range grpcAddrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		lib := libraryv1.NewLibraryServiceClient(conn)
		opens[name+" bidirectional"] = func(ready func()) (codes.Code, string) {
			s, err := lib.Chat(ctx)
			if err == nil {
				err = s.Send(&libraryv1.PingRequest{Message: "hello"})
			}
			for err == nil {
				if _, err = s.Recv(); err == nil {
					ready()
				}
			}
			return status.Code(err), status.Convert(err).Message()
		}
		opens[name+" server stream"] = func(ready func()) (codes.Code, string) {
			s, err := lib.StreamBooks(ctx, quiet)
			for err == nil {
				if _, err = s.Recv(); err == nil {
					ready()
				}
			}
			return status.Code(err), status.Convert(err).Message()
		}
	}
	for name, open := range map[string]func(ready func()) (codes.Code, string){
		"REST SSE": func(ready func()) (codes.Code, string) {
			body := openGET(ctx, ros.base+"/v1/shelves/quiet/books:stream", "text/event-stream")
			defer body.Close()
			var last string
			sc := bufio.NewScanner(body)
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					ready()
					last = data
				}
			}
			return statusIn(last, "")
		},
		"REST NDJSON": func(ready func()) (codes.Code, string) {
			body := openGET(ctx, ros.base+"/v1/shelves/quiet/books:stream", "")
			defer body.Close()
			var last string
			sc := bufio.NewScanner(body)
			for sc.Scan() {
				ready()
				last = sc.Text()
			}
			return statusIn(last, "error")
		},
		"gRPC-Web": func(ready func()) (codes.Code, string) {
			msg, _ := proto.Marshal(quiet)
			req, _ := http.NewRequestWithContext(ctx, "POST", ros.base+"/example.library.v1.LibraryService/StreamBooks", strings.NewReader(string(append(envelope(msg), msg...))))
			req.Header.Set("Content-Type", "application/grpc-web+proto")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return codes.Unknown, err.Error()
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for {
				var prefix [5]byte
				if _, err := io.ReadFull(br, prefix[:]); err != nil {
					return codes.Unknown, "no trailer frame: " + err.Error()
				}
				payload := make([]byte, binary.BigEndian.Uint32(prefix[1:]))
				if _, err := io.ReadFull(br, payload); err != nil {
					return codes.Unknown, "truncated frame: " + err.Error()
				}
				if prefix[0]&0x80 == 0 {
					ready()
					continue
				}
				m := regexp.MustCompile(`(?i)grpc-status: ?(\d+)`).FindSubmatch(payload)
				if m == nil {
					return codes.Unknown, "trailer without grpc-status: " + string(payload)
				}
				c, _ := strconv.Atoi(string(m[1]))
				msg := regexp.MustCompile(`(?i)grpc-message: ?([^\r\n]*)`).FindSubmatch(payload)
				if msg == nil {
					return codes.Code(c), ""
				}
				text, _ := url.PathUnescape(string(msg[1])) // grpc-message is percent-encoded
				return codes.Code(c), text
			}
		},
		"WebSocket": func(ready func()) (codes.Code, string) {
			conn, _, err := ws.Dial(ctx, wsURL(ros, "Chat"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
			if err != nil {
				return codes.Unknown, err.Error()
			}
			defer conn.CloseNow()
			if err := conn.Write(ctx, ws.MessageText, []byte(`{"message":"hello"}`)); err != nil {
				return codes.Unknown, err.Error()
			}
			var last string
			for {
				_, data, err := conn.Read(ctx)
				if err != nil {
					break
				}
				ready()
				last = string(data)
			}
			var frame struct{ Status json.RawMessage }
			json.Unmarshal([]byte(last), &frame)
			return statusIn(string(frame.Status), "")
		},
	} {
		opens[name] = open
	}
	out := make(chan streamEnd, len(opens))
	readies := make(chan string, len(opens))
	for name, open := range opens {
		go func() {
			first := true
			code, msg := open(func() {
				if first {
					first = false
					readies <- name
				}
			})
			if first {
				readies <- name + " (ended before its first message)"
			}
			out <- streamEnd{name: name, code: code, msg: msg}
		}()
	}
	for range opens {
		select {
		case name := <-readies:
			t.Logf("open: %s", name)
		case <-ctx.Done():
			t.Fatal("the streams did not all open")
		}
	}
	return len(opens), out
}

// openGET opens a streaming GET; a failure shows as an empty body.
func openGET(ctx context.Context, url, accept string) io.ReadCloser {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return io.NopCloser(strings.NewReader(""))
	}
	return resp.Body
}

// statusIn reads the code and message of a google.rpc.Status in JSON,
// under key when set.
func statusIn(doc, key string) (codes.Code, string) {
	var v map[string]any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return codes.Unknown, "not a status: " + doc
	}
	if key != "" {
		v, _ = v[key].(map[string]any)
	}
	msg, _ := v["message"].(string)
	return codes.Code(codeOf(v)), msg
}

// collectEnds waits (bounded) for n stream ends.
func collectEnds(t *testing.T, n int, ends <-chan streamEnd) []streamEnd {
	t.Helper()
	var out []streamEnd
	for range n {
		select {
		case e := <-ends:
			out = append(out, e)
		case <-time.After(time.Minute):
			t.Fatalf("only %d of %d streams ended: %v", len(out), n, out)
		}
	}
	return out
}

// metricSum adds the values of the samples of a metric whose labels
// contain every one of labels.
func metricSum(t testing.TB, admin, name string, labels ...string) float64 {
	t.Helper()
	_, text := adminGet(t, admin, "/metrics")
	sum := 0.0
	for line := range strings.Lines(text) {
		series, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && match {
			sum += v
		}
	}
	return sum
}

// TestStreamIdleLimit: a stream that carries no message either way for
// http.stream_idle_timeout ends with DEADLINE_EXCEEDED, whatever its
// protocol, and the ends are counted by reason.
func TestStreamIdleLimit(t *testing.T) {
	t.Parallel()
	u := startStreamUpstream(t)
	admin := freePort(t)
	ros := startRosettaGRPC(t, fmt.Sprintf("admin: %q", admin),
		libraryConfig(descriptorSetSchema(), u.addr, "    auto_mapping: true\n", "http: {stream_idle_timeout: 2s}\n"))
	n, ends := quietStreams(t, ros)
	for _, e := range collectEnds(t, n, ends) {
		if e.code != codes.DeadlineExceeded || !strings.Contains(e.msg, "idle") {
			t.Errorf("%s ended with %v %q, want DEADLINE_EXCEEDED naming the idle timeout", e.name, e.code, e.msg)
		}
	}
	if got := metricSum(t, admin, "rosetta_streams_ended_total", `reason="idle"`); got != float64(n) {
		t.Errorf("rosetta_streams_ended_total{reason=\"idle\"} = %v, want %d", got, n)
	}
}

// TestShutdownEndsStreams stops the gateway while a stream of every
// protocol is open and quiet: each client gets UNAVAILABLE at once, and
// the gateway exits 0 well within its shutdown_timeout rather than
// waiting for the streams and failing the drain.
func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	u := startStreamUpstream(t)
	ros := startRosettaGRPC(t, "", libraryConfig(descriptorSetSchema(), u.addr, "    auto_mapping: true\n", "shutdown_timeout: 5s\n"))
	n, ends := quietStreams(t, ros)
	if code := ros.stop(t); code != 0 {
		t.Errorf("rosetta exited with %d after SIGTERM, want 0\n%s", code, ros.stderr)
	}
	for _, e := range collectEnds(t, n, ends) {
		if e.code != codes.Unavailable || !strings.Contains(e.msg, "shutting down") {
			t.Errorf("%s ended with %v %q, want UNAVAILABLE: the gateway is shutting down", e.name, e.code, e.msg)
		}
	}
}

// processCounts are the gateway's goroutines and open descriptors, as its
// /metrics shows them.
func processCounts(t testing.TB, admin string) (goroutines, fds float64) {
	t.Helper()
	return metricSum(t, admin, "go_goroutines"), metricSum(t, admin, "process_open_fds")
}

// wantBaseline runs rounds of churn and then waits (bounded) until the
// gateway's goroutines and descriptors are back where they were before
// them, within slack: a leak of one per round would pass it.
func wantBaseline(t *testing.T, admin string, rounds int, churn func(round int)) {
	t.Helper()
	churn(-1) // a first round warms up what is made once (upstream connections, pools)
	g0, f0 := processCounts(t, admin)
	for i := range rounds {
		churn(i)
	}
	const slack = 4
	var g, f float64
	waitFor(t, fmt.Sprintf("the gateway's goroutines and descriptors back to their baseline (%v, %v) after %d rounds", g0, f0, rounds), func() bool {
		g, f = processCounts(t, admin)
		return g <= g0+slack && f <= f0+slack
	})
	t.Logf("after %d rounds: %v goroutines (baseline %v), %v open descriptors (baseline %v)", rounds, g, g0, f, f0)
}

// TestDisconnectLeavesNothing: clients that vanish mid-stream (REST NDJSON
// and SSE, gRPC and gRPC-Web server streams, a gRPC bidirectional stream,
// a WebSocket closed without a close frame) leave no goroutine and no
// descriptor behind in the gateway.
func TestDisconnectLeavesNothing(t *testing.T) {
	t.Parallel()
	u := startStreamUpstream(t)
	admin := freePort(t)
	ros := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), u.addr, "    auto_mapping: true\n", ""))
	endless := &libraryv1.ListBooksRequest{Parent: "shelves/endless"}
	firstLine := func(accept string) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		body := openGET(ctx, ros.base+"/v1/shelves/endless/books:stream", accept)
		if _, err := bufio.NewReader(body).ReadBytes('\n'); err != nil {
			t.Fatalf("no first line: %v", err)
		}
		body.Close() // the connection goes with it, mid-stream
	}
	grpcConn := func(f func(context.Context, libraryv1.LibraryServiceClient) error) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		conn, err := grpc.NewClient(strings.TrimPrefix(ros.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close() // the whole connection goes, the stream still open
		if err := f(ctx, libraryv1.NewLibraryServiceClient(conn)); err != nil {
			t.Fatal(err)
		}
	}
	wantBaseline(t, admin, 5, func(int) {
		firstLine("")
		firstLine("text/event-stream")
		grpcConn(func(ctx context.Context, c libraryv1.LibraryServiceClient) error {
			s, err := c.StreamBooks(ctx, endless)
			if err == nil {
				_, err = s.Recv()
			}
			return err
		})
		grpcConn(func(ctx context.Context, c libraryv1.LibraryServiceClient) error {
			s, err := c.Chat(ctx)
			if err == nil {
				err = s.Send(&libraryv1.PingRequest{Message: "hello"})
			}
			if err == nil {
				_, err = s.Recv()
			}
			return err
		})
		func() { // gRPC-Web
			msg, _ := proto.Marshal(endless)
			req, _ := http.NewRequest("POST", ros.base+"/example.library.v1.LibraryService/StreamBooks", strings.NewReader(string(append(envelope(msg), msg...))))
			req.Header.Set("Content-Type", "application/grpc-web+proto")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 5)); err != nil {
				t.Fatalf("no first frame: %v", err)
			}
			resp.Body.Close()
		}()
		func() { // WebSocket, dropped without a close frame
			c := dialWS(t, ros, "Chat", nil)
			c.send(`{"message":"hello"}`)
			c.recv()
			c.conn.CloseNow()
		}()
	})
}

// TestMQTTDropLeavesNothing: a device that subscribed with QoS 1 and drops
// its connection while a command to it is in flight (published, never
// acknowledged) leaves no goroutine and no descriptor behind.
func TestMQTTDropLeavesNothing(t *testing.T) {
	t.Parallel()
	up := startIoTUpstream(t)
	broker, admin := freePort(t), freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q, admin: %q", broker, admin), iotConfig(up.addr, anonymous, uplinkRoutes+downlinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	wantBaseline(t, admin, 10, func(round int) {
		device := fmt.Sprintf("drop-%d", round+1)
		c := mqttConnect(t, broker, device, device, "x")
		defer c.Close()
		sub := binary.BigEndian.AppendUint16(nil, 1)         // packet identifier
		sub = append(sub, 0)                                 // no properties
		sub = mqttString(sub, "devices/"+device+"/commands") //
		sub = append(sub, 1)                                 // QoS 1
		if _, err := c.Write(mqttPacket(0x82, sub)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(requestTimeout))
		if typ := readMQTTPacket(t, c); typ>>4 != 9 {
			t.Fatalf("packet type %d, want SUBACK", typ>>4)
		}
		if r := do(t, gw.base, request{method: "POST", path: "/v1/devices/" + device + "/commands", body: `{"led":"on"}`}); r.status != http.StatusAccepted {
			t.Fatalf("command: %d %s", r.status, r.body)
		}
		if typ := readMQTTPacket(t, c); typ>>4 != 3 || typ&0x06 != 0x02 {
			t.Fatalf("packet %#x, want a QoS 1 PUBLISH", typ)
		}
		// No PUBACK: the device drops with the message in flight.
	})
}

// readMQTTPacket reads one MQTT packet and returns its first byte.
func readMQTTPacket(t *testing.T, c net.Conn) byte {
	t.Helper()
	br := bufio.NewReader(c)
	typ, err := br.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	n, mult := 0, 1
	for {
		b, err := br.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if _, err := io.ReadFull(br, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if br.Buffered() > 0 {
		t.Fatalf("%d bytes of a further packet read ahead", br.Buffered())
	}
	return typ
}

// TestMQTTPacketTooLarge: an MQTT 5 device that sends a packet over
// mqtt.max_packet_bytes gets DISCONNECT with reason 0x95 (Packet too
// large) and an orderly close, not a TCP reset; an MQTT 3.1.1 device, whose
// protocol has no such DISCONNECT, is closed.
func TestMQTTPacketTooLarge(t *testing.T) {
	t.Parallel()
	up := startIoTUpstream(t)
	broker := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, "mqtt: {allow_anonymous: true, max_packet_bytes: 1KiB}", uplinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	big := strings.Repeat("x", 4<<10)

	t.Run("raw MQTT 5", func(t *testing.T) {
		c := mqttConnect(t, broker, "big-1", "big-1", "x")
		if _, err := c.Write(publishPacket("devices/big-1/telemetry", "k", "v", big)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(requestTimeout))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("after the large packet: %v (read %x), want DISCONNECT then an orderly close", err, got)
		}
		if len(got) < 3 || got[0] != 0xE0 || got[2] != 0x95 {
			t.Errorf("read %x, want DISCONNECT with reason 0x95", got)
		}
	})

	t.Run("mosquitto_pub", func(t *testing.T) {
		needTool(t, "mosquitto_pub")
		for _, v := range []string{"mqttv5", "mqttv311"} {
			out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strings.Split(broker, ":")[1], "-V", v, "-d",
				"-i", "big-"+v, "-u", "big-"+v, "-t", "devices/big-"+v+"/telemetry", "-q", "1", "-m", big).CombinedOutput()
			t.Logf("mosquitto_pub -V %s: %v\n%s", v, err, out)
			if err == nil {
				t.Errorf("mosquitto_pub -V %s succeeded with a message over the limit", v)
			}
			if v == "mqttv5" && !strings.Contains(string(out), "Received DISCONNECT (149)") {
				t.Errorf("mosquitto_pub -V mqttv5 did not receive DISCONNECT 0x95 (149)")
			}
		}
	})

	if !strings.Contains(gw.stderr.String(), "MQTT packet over the size limit") {
		t.Errorf("no log line for the refused packets\n%s", gw.stderr)
	}
}
