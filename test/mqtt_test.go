package test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rosettagw/rosetta/examples/iot"
	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
)

// iotUpstream is the example DeviceService served in the test process,
// behind an interceptor that counts the Record calls by message id and
// remembers the metadata of the last call. It can be stopped and started
// again on the same address.
type iotUpstream struct {
	t    testing.TB
	addr string

	// total counts every call.
	total atomic.Int64

	mu      sync.Mutex
	srv     *grpc.Server
	records map[string]int // by RecordRequest.id
	last    metadata.MD
}

func startIoTUpstream(t testing.TB) *iotUpstream {
	t.Helper()
	u := &iotUpstream{t: t, records: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.serve(ln)
	t.Cleanup(u.stop)
	return u
}

func (u *iotUpstream) serve(ln net.Listener) {
	srv := grpc.NewServer(grpc.UnaryInterceptor(u.intercept))
	iot.Register(srv)
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
	go srv.Serve(ln)
}

// stop stops the server; calls fail with UNAVAILABLE until restart.
func (u *iotUpstream) stop() {
	u.mu.Lock()
	srv := u.srv
	u.srv = nil
	u.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// restart serves again on the same address.
func (u *iotUpstream) restart() {
	u.t.Helper()
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		u.t.Fatalf("listen again on %s: %v", u.addr, err)
	}
	u.serve(ln)
}

func (u *iotUpstream) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	u.total.Add(1)
	u.mu.Lock()
	u.last = md.Copy()
	if r, ok := req.(*iotv1.RecordRequest); ok {
		u.records[r.GetId()]++
	}
	u.mu.Unlock()
	return handler(ctx, req)
}

// counts returns the number of distinct record ids seen and of calls.
func (u *iotUpstream) counts() (unique, calls int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.records {
		calls += n
	}
	return len(u.records), calls
}

// seen returns how often the id was recorded.
func (u *iotUpstream) seen(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.records[id]
}

// lastMetadata returns the metadata of the latest call.
func (u *iotUpstream) lastMetadata() metadata.MD {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// iotSchema is the schemas section loading the IoT example's descriptor set.
func iotSchema() string {
	return fmt.Sprintf("schemas:\n  - descriptor_set: %q\n", filepath.Join(repoRoot, "proto", "iot.binpb"))
}

// anonymous is the mqtt section of an embedded broker admitting every device.
const anonymous = "mqtt: {allow_anonymous: true}"

// iotConfig serves the DeviceService at target with the MQTT routes given.
func iotConfig(target, mqttSection, routes string) string {
	return fmt.Sprintf(`%supstreams:
  iot: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: example.iot.v1.DeviceService
    upstream: iot
%s
routes:
%s`, iotSchema(), target, mqttSection, routes)
}

// uplinkRoutes are the uplink rules of the end-to-end tests.
const uplinkRoutes = `  - mqtt: devices/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    reply: devices/{device_id}/reply
    dead_letter: dead/{device_id}
    owner: device_id
  - mqtt: devices/{device_id}/telemetry/pb
    call: example.iot.v1.DeviceService/Record
    payload: proto
    reply: devices/{device_id}/reply
  - mqtt: devices/{device_id}/upload
    call: example.iot.v1.DeviceService/Upload
    payload: raw
    body: data
    reply: devices/{device_id}/reply
  - mqtt: devices/{device_id}/blob/#
    call: example.iot.v1.DeviceService/UploadBody
    payload: raw
    body: body
    reply: devices/{device_id}/reply
`

// needTool fails the test when a program the test drives is missing;
// scripts/test.sh installs them.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (scripts/test.sh installs it: apt-get install -y mosquitto mosquitto-clients)", name)
	}
}

// mqttVersions are the protocol versions devices speak, as mosquitto_pub
// and mosquitto_sub name them.
var mqttVersions = []string{"mqttv311", "mqttv5"}

// subscriber is a running mosquitto_sub.
type subscriber struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	err  *syncBuffer
	done chan struct{}
}

// subscribe runs mosquitto_sub on broker for topic, printing each message
// on a line, and returns once the broker acknowledged the subscription.
func subscribe(t testing.TB, broker, version, topic string, extra ...string) *subscriber {
	t.Helper()
	needTool(t, "mosquitto_sub")
	host, port, _ := net.SplitHostPort(broker)
	// Line-buffered, so that the debug line of the SUBACK shows at once;
	// each payload is printed in hex on a line of its own.
	args := append([]string{"-oL", "mosquitto_sub", "-h", host, "-p", port, "-V", version, "-t", topic, "-q", "1", "-d", "-F", "msg:%x"}, extra...)
	s := &subscriber{cmd: exec.Command("stdbuf", args...), out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.err
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	// mosquitto_sub logs "received SUBACK" and then, in a write of its
	// own, the line with the granted QoS ("Subscribed (mid: 1): 1", or 128
	// when refused): wait for that whole line, which callers read.
	waitFor(t, "mosquitto_sub "+topic+" subscribed", func() bool { return subackLine.MatchString(s.out.String()) })
	return s
}

// subackLine is mosquitto_sub's debug line of a SUBACK's granted QoS.
var subackLine = regexp.MustCompile(`(?m)^Subscribed \(mid: \d+\): [^\n]*\n`)

// messages returns the payloads received so far.
func (s *subscriber) messages() []string {
	var out []string
	for _, l := range strings.Split(s.out.String(), "\n") {
		if h, ok := strings.CutPrefix(l, "msg:"); ok {
			b, _ := hex.DecodeString(h)
			out = append(out, string(b))
		}
	}
	return out
}

// next waits for the n-th message (from 1) and returns it.
func (s *subscriber) next(t testing.TB, n int) string {
	t.Helper()
	waitFor(t, fmt.Sprintf("message %d on mosquitto_sub", n), func() bool { return len(s.messages()) >= n })
	return s.messages()[n-1]
}

// publish runs mosquitto_pub on broker and returns its debug output (which
// shows the PUBACK reason code) and exit status.
func publish(t testing.TB, broker, version string, args ...string) (string, int) {
	t.Helper()
	needTool(t, "mosquitto_pub")
	host, port, _ := net.SplitHostPort(broker)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append([]string{"-h", host, "-p", port, "-V", version, "-d"}, args...)...)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mosquitto_pub %v did not finish within %v\n%s", args, requestTimeout, out)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// startMosquitto runs a Mosquitto broker on a random loopback port and
// returns its address.
func startMosquitto(t testing.TB) string {
	t.Helper()
	needTool(t, "mosquitto")
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 100\nmessage_size_limit 65536\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto", "-c", conf)
	p := &process{name: "mosquitto", cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	waitFor(t, "mosquitto listening on "+addr, func() bool {
		if p.exited() {
			t.Fatalf("mosquitto exited: %s", p.stderr)
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// wantPayload checks that an MQTT payload is the JSON document want.
func wantPayload(t testing.TB, payload, want string) {
	t.Helper()
	wantJSON(t, &response{status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: []byte(payload)}, want)
}

// statusOf decodes a google.rpc.Status JSON document.
func statusOf(t testing.TB, doc string) rpcStatus {
	t.Helper()
	var st rpcStatus
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		t.Fatalf("not a google.rpc.Status: %v\n%s", err, doc)
	}
	return st
}

// TestMQTTEmbeddedUplink drives the embedded broker with mosquitto_pub and
// mosquitto_sub as devices, over MQTT 3.1.1 and 5: each payload encoding,
// replies, and the bad inputs, which leave the gateway serving.
func TestMQTTEmbeddedUplink(t *testing.T) {
	up := startIoTUpstream(t)
	broker := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, anonymous, uplinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			dev := "d-" + v
			replies := subscribe(t, broker, v, "devices/"+dev+"/reply")
			out, code := publish(t, broker, v, "-u", dev, "-q", "1", "-t", "devices/"+dev+"/telemetry", "-m", `{"id":"m1","reading":{"temperature":21.5,"humidity":40}}`)
			if code != 0 {
				t.Fatalf("mosquitto_pub: status %d\n%s", code, out)
			}
			wantPayload(t, replies.next(t, 1), `{"deviceId":"`+dev+`","id":"m1","count":"1"}`)
			if up.seen("m1") == 0 {
				t.Error("the upstream did not see m1")
			}
			if md := up.lastMetadata(); md.Get("x-mqtt-topic")[0] != "devices/"+dev+"/telemetry" || md.Get("x-mqtt-client-id") == nil {
				t.Errorf("upstream metadata %v lacks x-mqtt-topic or x-mqtt-client-id", md)
			}

			// A binary protobuf payload; the topic's device_id wins over the payload's.
			pb, _ := proto.Marshal(&iotv1.RecordRequest{DeviceId: "spoofed", Id: "m2", Reading: &iotv1.Reading{Temperature: 20}})
			pbFile := filepath.Join(t.TempDir(), "m2.pb")
			os.WriteFile(pbFile, pb, 0o644)
			publish(t, broker, v, "-u", dev, "-q", "1", "-t", "devices/"+dev+"/telemetry/pb", "-f", pbFile)
			var rr iotv1.RecordResponse
			if err := proto.Unmarshal([]byte(replies.next(t, 2)), &rr); err != nil || rr.GetDeviceId() != dev || rr.GetId() != "m2" {
				t.Errorf("protobuf reply: %v, %v; want device %s, id m2", &rr, err, dev)
			}

			// Raw bytes into a bytes field and into a google.api.HttpBody.
			publish(t, broker, v, "-u", dev, "-q", "1", "-t", "devices/"+dev+"/upload", "-m", "0123456789")
			wantPayload(t, replies.next(t, 3), `{"deviceId":"`+dev+`","size":"10"}`)
			publish(t, broker, v, "-u", dev, "-q", "1", "-t", "devices/"+dev+"/blob/logs", "-m", "hello")
			wantPayload(t, replies.next(t, 4), `{"deviceId":"`+dev+`","size":"5"}`)

			// The upstream's error comes back as a google.rpc.Status.
			publish(t, broker, v, "-u", dev, "-q", "1", "-t", "devices/"+dev+"/telemetry", "-m", `{"id":"m5","reading":{"temperature":900}}`)
			if st := statusOf(t, replies.next(t, 5)); st.Code != 3 || !hasFieldViolation(st, "reading.temperature") {
				t.Errorf("error reply %+v: want INVALID_ARGUMENT naming reading.temperature", st)
			}
		})
	}
	testMQTTBadInput(t, gw, up, broker)
}

// testMQTTBadInput sends what the gateway must refuse: an undecodable
// payload, a topic no rule takes, another device's topic and an oversize
// packet. MQTT 5 devices get the PUBACK reason code; MQTT 3.1.1 devices
// cannot, so the message is dead-lettered; either way the connection stays
// up and the gateway serves the next message.
func testMQTTBadInput(t *testing.T, gw *rosetta, up *iotUpstream, broker string) {
	cases := []struct {
		name, user, topic, payload string
		reason                     string // PUBACK reason code of MQTT 5
		deadLetter                 bool   // whether dead/<device> receives it
	}{
		{"undecodable", "bad1", "devices/bad1/telemetry", `{"reading":`, "153", true},
		{"unknown field", "bad1", "devices/bad1/telemetry", `{"colour":"red"}`, "153", true},
		{"no rule", "bad1", "elsewhere/bad1", `{}`, "135", false},
		{"not its own topic", "bad2", "devices/bad1/telemetry", `{"id":"x"}`, "135", true},
	}
	for _, v := range mqttVersions {
		for _, c := range cases {
			t.Run(v+"/"+c.name, func(t *testing.T) {
				dead := subscribe(t, broker, v, "dead/bad1")
				// One connection: the bad message, then a good one (-l
				// sends each line of standard input).
				host, port, _ := net.SplitHostPort(broker)
				cmd := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", v, "-d", "-u", c.user, "-q", "1", "-t", c.topic, "-l")
				cmd.Stdin = strings.NewReader(c.payload + "\n")
				out, err := cmd.CombinedOutput()
				if err != nil && v == "mqttv311" {
					t.Fatalf("mosquitto_pub: %v\n%s", err, out)
				}
				if v == "mqttv5" && !strings.Contains(string(out), "received PUBACK (Mid: 1, RC:"+c.reason+")") {
					t.Errorf("PUBACK: want reason code %s\n%s", c.reason, out)
				}
				if c.deadLetter {
					var rec struct {
						Topic   string
						Payload []byte
						Error   rpcStatus
					}
					if err := json.Unmarshal([]byte(dead.next(t, 1)), &rec); err != nil {
						t.Fatal(err)
					}
					if rec.Topic != c.topic || string(rec.Payload) != c.payload || rec.Error.Code == 0 {
						t.Errorf("dead letter %+v: want topic %s, the payload and an error", rec, c.topic)
					}
				}
			})
		}
	}
	t.Run("oversize", func(t *testing.T) {
		big := filepath.Join(t.TempDir(), "big")
		os.WriteFile(big, []byte(strings.Repeat("x", 300<<10)), 0o644)
		out, code := publish(t, broker, "mqttv5", "-u", "bad1", "-q", "1", "-t", "devices/bad1/upload", "-f", big)
		if code == 0 {
			t.Errorf("an oversize packet was accepted\n%s", out)
		}
	})
	t.Run("still serving", func(t *testing.T) {
		replies := subscribe(t, broker, "mqttv5", "devices/ok/reply")
		publish(t, broker, "mqttv5", "-u", "ok", "-q", "1", "-t", "devices/ok/telemetry", "-m", `{"id":"after-bad","reading":{"temperature":1}}`)
		wantPayload(t, replies.next(t, 1), `{"deviceId":"ok","id":"after-bad","count":"1"}`)
		if got := get(t, gw.base, "/v1/devices/ok"); got.status != 200 {
			t.Errorf("GET /v1/devices/ok: %d %s", got.status, got.body)
		}
	})
}

// device5 is an MQTT 5 device written with paho.golang.
type device5 struct {
	c *paho.Client
}

// connect5 connects an MQTT 5 device to broker; received messages go to
// onMessage (nil: none).
func connect5(t testing.TB, broker, clientID string, onMessage func(*paho.Publish)) *device5 {
	t.Helper()
	conn, err := net.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{ClientID: clientID, Conn: conn}
	if onMessage != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMessage(pr.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true, Username: clientID, UsernameFlag: true})
	if err != nil {
		t.Fatalf("connect %s: %v (%v)", clientID, err, ack)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return &device5{c: c}
}

func (d *device5) subscribe(t testing.TB, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := d.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

// downlinkRoutes are the REST routes that command devices and read their
// state.
const downlinkRoutes = `  - post: /v1/devices/{device_id}/commands
    publish: devices/{device_id}/commands
    qos: 1
  - post: /v1/devices/{device_id}/commands:call
    publish: devices/{device_id}/commands
    qos: 1
    wait: 5s
  - post: /v1/devices/{device_id}/questions
    publish: devices/{device_id}/questions
    reply: devices/{device_id}/answers
    qos: 1
    wait: 5s
  - get: /v1/devices/{device_id}/state
    state: devices/{device_id}/telemetry
  - get: /v1/devices/{device_id}/events
    watch: devices/{device_id}/#
`

// TestMQTTDownlink commands devices from REST: fire and forget, request and
// response with an MQTT 5 device (response topic and correlation data) and
// an MQTT 3.1.1 device (a reply topic), a device that does not answer, and
// the last known state of a topic.
func TestMQTTDownlink(t *testing.T) {
	up := startIoTUpstream(t)
	broker := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, anonymous, uplinkRoutes+downlinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	t.Run("fire and forget", func(t *testing.T) {
		cmds := subscribe(t, broker, "mqttv5", "devices/d1/commands")
		r := do(t, gw.base, request{method: "POST", path: "/v1/devices/d1/commands", body: `{"led":"on"}`})
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d, want 202\n%s", r.status, r.body)
		}
		if got := cmds.next(t, 1); got != `{"led":"on"}` {
			t.Errorf("device got %q", got)
		}
		// The caller chooses retain: a device subscribing later gets it.
		do(t, gw.base, request{method: "POST", path: "/v1/devices/d1/commands?retain=true&qos=0", body: `{"led":"off"}`})
		late := subscribe(t, broker, "mqttv311", "devices/d1/commands")
		if got := late.next(t, 1); got != `{"led":"off"}` {
			t.Errorf("retained command: got %q", got)
		}
	})

	t.Run("MQTT 5 request and response", func(t *testing.T) {
		var dev *device5
		dev = connect5(t, broker, "d5", func(p *paho.Publish) {
			go dev.c.Publish(context.Background(), &paho.Publish{
				Topic: p.Properties.ResponseTopic, QoS: 1, Payload: []byte(`{"ok":true,"echo":` + string(p.Payload) + `}`),
				Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData, ContentType: "application/json"},
			})
		})
		dev.subscribe(t, "devices/d5/commands")
		r := do(t, gw.base, request{method: "POST", path: "/v1/devices/d5/commands:call", body: `{"reboot":1}`})
		wantJSON(t, r, `{"ok":true,"echo":{"reboot":1}}`)
	})

	t.Run("MQTT 3.1.1 request and reply topic", func(t *testing.T) {
		questions := subscribe(t, broker, "mqttv311", "devices/d3/questions")
		answered := make(chan *response, 1)
		go func() {
			answered <- do(t, gw.base, request{method: "POST", path: "/v1/devices/d3/questions", body: `"status?"`})
		}()
		if q := questions.next(t, 1); q != `"status?"` {
			t.Errorf("device got %q", q)
		}
		publish(t, broker, "mqttv311", "-u", "d3", "-q", "1", "-t", "devices/d3/answers", "-m", `{"battery":97}`)
		wantJSON(t, <-answered, `{"battery":97}`)
	})

	t.Run("no answer", func(t *testing.T) {
		r := do(t, gw.base, request{method: "POST", path: "/v1/devices/mute/commands:call?wait=100ms", body: `{}`})
		wantStatus(t, r, http.StatusGatewayTimeout, 4, "")
	})

	t.Run("bad requests", func(t *testing.T) {
		wantStatus(t, do(t, gw.base, request{method: "POST", path: "/v1/devices/a+b/commands", body: `{}`}), 400, 3, "")
		wantStatus(t, do(t, gw.base, request{method: "POST", path: "/v1/devices/d1/commands?qos=2", body: `{}`}), 400, 3, "")
		wantStatus(t, do(t, gw.base, request{method: "POST", path: "/v1/devices/d1/commands?wait=1h", body: `{}`}), 400, 3, "")
	})

	t.Run("watch", func(t *testing.T) {
		for _, sse := range []bool{true, false} {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", gw.base+"/v1/devices/w1/events", nil)
			if sse {
				req.Header.Set("Accept", "text/event-stream")
			}
			// The answer's header comes with the first message.
			lines := make(chan string, 16)
			go func() {
				defer close(lines)
				resp, err := client.Do(req)
				if err != nil {
					lines <- err.Error()
					return
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					case <-ctx.Done():
						return
					}
				}
			}()
			// The subscription is made once the stream is open: publish
			// until the telemetry comes through (after the gateway's
			// reply to it, on devices/w1/reply).
			want := `{"result":{"topic":"devices/w1/telemetry",`
			if sse {
				want = `data: {"topic":"devices/w1/telemetry",`
			}
			var got string
			waitFor(t, "a watched message", func() bool {
				publish(t, broker, "mqttv5", "-u", "w1", "-q", "1", "-t", "devices/w1/telemetry", "-m", `{"id":"w","reading":{"temperature":2}}`)
				for {
					select {
					case got = <-lines:
						if strings.HasPrefix(got, want) {
							return true
						}
					case <-time.After(100 * time.Millisecond):
						return false
					}
				}
			})
			cancel()
			var event struct {
				Topic   string
				Payload []byte
				JSON    map[string]any
			}
			doc := strings.TrimPrefix(got, "data: ")
			if !sse {
				var line struct{ Result json.RawMessage }
				json.Unmarshal([]byte(got), &line)
				doc = string(line.Result)
			}
			if err := json.Unmarshal([]byte(doc), &event); err != nil || string(event.Payload) != `{"id":"w","reading":{"temperature":2}}` || event.JSON["id"] != "w" {
				t.Errorf("sse %v: got %s (%v)", sse, got, err)
			}
		}
		// The watch is the stream: its refusal is framed as grpc-gateway
		// frames a stream that fails before its first message.
		r := get(t, gw.base, "/v1/devices/a+b/events")
		var line struct{ Error json.RawMessage }
		if err := json.Unmarshal(r.body, &line); err != nil || len(line.Error) == 0 {
			t.Fatalf("a watch of a bad topic level: %d %s, want an {\"error\": status} line", r.status, r.body)
		}
		r.body = line.Error
		wantStatus(t, r, 400, 3, "")
	})

	t.Run("state", func(t *testing.T) {
		wantStatus(t, get(t, gw.base, "/v1/devices/s1/state"), 404, 5, "")
		publish(t, broker, "mqttv5", "-u", "s1", "-q", "1", "-t", "devices/s1/telemetry", "-m", `{"id":"s1-1","reading":{"temperature":5}}`)
		waitFor(t, "the state of devices/s1/telemetry", func() bool { return get(t, gw.base, "/v1/devices/s1/state").status == 200 })
		r := get(t, gw.base, "/v1/devices/s1/state")
		wantJSON(t, r, `{"id":"s1-1","reading":{"temperature":5}}`)
		if r.header.Get("Grpc-Metadata-Mqtt-Retain") != "false" || r.header.Get("Grpc-Metadata-Mqtt-Received-At") == "" {
			t.Errorf("state headers: %v", r.header)
		}
		// A refused message is not state.
		publish(t, broker, "mqttv5", "-u", "s1", "-q", "1", "-t", "devices/s1/telemetry", "-m", `{"broken`)
		wantJSON(t, get(t, gw.base, "/v1/devices/s1/state"), `{"id":"s1-1","reading":{"temperature":5}}`)
	})
}

// brokerSection is the mqtt section connecting to an external broker.
func brokerSection(broker string, version int, clientID, extra string) string {
	return fmt.Sprintf("mqtt:\n  broker: {url: \"mqtt://%s\", version: %d, client_id: %q%s}\n", broker, version, clientID, extra)
}

// TestMQTTMosquitto bridges devices on a real Mosquitto, the gateway being
// an MQTT 5 client (paho.golang) and an MQTT 3.1.1 client
// (paho.mqtt.golang) of it, with mosquitto_pub and mosquitto_sub as devices
// of both versions.
func TestMQTTMosquitto(t *testing.T) {
	up := startIoTUpstream(t)
	broker := startMosquitto(t)
	for _, gwVersion := range []int{5, 4} {
		t.Run(fmt.Sprintf("gateway MQTT %d", gwVersion), func(t *testing.T) {
			gw := startRosetta(t, iotConfig(up.addr, brokerSection(broker, gwVersion, fmt.Sprintf("gw-%d", gwVersion), ""), uplinkRoutes+downlinkRoutes))
			for _, v := range mqttVersions {
				dev := fmt.Sprintf("m%d-%s", gwVersion, v)
				replies := subscribe(t, broker, v, "devices/"+dev+"/reply")
				publish(t, broker, v, "-q", "1", "-t", "devices/"+dev+"/telemetry", "-m", `{"id":"`+dev+`","reading":{"temperature":3}}`)
				wantPayload(t, replies.next(t, 1), `{"deviceId":"`+dev+`","id":"`+dev+`","count":"1"}`)

				// Through an external broker the device gets no reason
				// code: an undecodable message is dead-lettered.
				dead := subscribe(t, broker, v, "dead/"+dev)
				publish(t, broker, v, "-q", "1", "-t", "devices/"+dev+"/telemetry", "-m", `not json`)
				if st := statusOf(t, replies.next(t, 2)); st.Code != 3 {
					t.Errorf("error reply: %+v, want INVALID_ARGUMENT", st)
				}
				var rec struct{ Topic string }
				if err := json.Unmarshal([]byte(dead.next(t, 1)), &rec); err != nil || rec.Topic != "devices/"+dev+"/telemetry" {
					t.Errorf("dead letter %+v (%v)", rec, err)
				}
			}

			// Downlink through the broker, to a 3.1.1 device with a
			// reply topic.
			dev := fmt.Sprintf("q%d", gwVersion)
			questions := subscribe(t, broker, "mqttv311", "devices/"+dev+"/questions")
			answered := make(chan *response, 1)
			go func() {
				answered <- do(t, gw.base, request{method: "POST", path: "/v1/devices/" + dev + "/questions", body: `"status?"`})
			}()
			questions.next(t, 1)
			publish(t, broker, "mqttv311", "-q", "1", "-t", "devices/"+dev+"/answers", "-m", `{"battery":50}`)
			wantJSON(t, <-answered, `{"battery":50}`)

			// State seen through the broker.
			publish(t, broker, "mqttv5", "-q", "1", "-r", "-t", "devices/"+dev+"/telemetry", "-m", `{"id":"st","reading":{"temperature":7}}`)
			waitFor(t, "state", func() bool { return get(t, gw.base, "/v1/devices/"+dev+"/state").status == 200 })
		})
	}
}

// TestMQTTNoLoss publishes 10,000 QoS 1 messages from several devices while
// the upstream is stopped and started again in the middle: every message
// must reach the upstream at least once, and the duplicates are counted.
// It runs through the embedded broker and through Mosquitto.
func TestMQTTNoLoss(t *testing.T) {
	const devices, perDevice = 8, 1250
	routes := `  - mqtt: fleet/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    qos: 1
    retry: {attempts: 300, backoff: 10ms, max_backoff: 100ms}
`
	for _, mode := range []string{"embedded", "mosquitto"} {
		t.Run(mode, func(t *testing.T) {
			up := startIoTUpstream(t)
			var broker string
			if mode == "embedded" {
				broker = freePort(t)
				startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, anonymous, routes))
			} else {
				broker = startMosquitto(t)
				startRosetta(t, iotConfig(up.addr, brokerSection(broker, 5, "noloss", ", workers: 32"), routes))
			}
			var wg sync.WaitGroup
			failed := make(chan string, devices*perDevice)
			for d := range devices {
				dev := connect5(t, broker, fmt.Sprintf("fleet-%d", d), nil)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perDevice {
						id := fmt.Sprintf("%d-%d", d, i)
						ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
						resp, err := dev.c.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("fleet/%d/telemetry", d), QoS: 1, Payload: []byte(`{"id":"` + id + `","reading":{"temperature":1}}`)})
						cancel()
						if err != nil || resp.ReasonCode >= 0x80 {
							failed <- fmt.Sprintf("%s: %v %v", id, err, resp)
						}
					}
				}()
			}
			// Stop the upstream a third of the way in; start it again once
			// the gateway has found it down (a listener that refuses the
			// handshake has seen it try to reconnect).
			waitFor(t, "a third of the messages upstream", func() bool { u, _ := up.counts(); return u >= devices*perDevice/3 })
			up.stop()
			down, err := net.Listen("tcp", up.addr)
			if err != nil {
				t.Fatal(err)
			}
			tried := make(chan struct{})
			go func() {
				c, err := down.Accept()
				if err == nil {
					c.Close()
					close(tried)
				}
			}()
			select {
			case <-tried:
			case <-time.After(startTimeout):
				t.Fatal("the gateway did not try to reach the stopped upstream")
			}
			down.Close()
			up.restart()
			wg.Wait()
			close(failed)
			for f := range failed {
				t.Errorf("publish not acknowledged: %s", f)
			}
			waitFor(t, "every message upstream", func() bool { u, _ := up.counts(); return u == devices*perDevice })
			unique, calls := up.counts()
			t.Logf("%s: %d messages, %d reached the upstream, %d duplicates", mode, devices*perDevice, unique, calls-unique)
		})
	}
}

// TestMQTTSharedSubscription runs two gateway replicas on one Mosquitto in
// one share group, each with its own upstream: the QoS 1 messages are split
// between them, none handled by both.
func TestMQTTSharedSubscription(t *testing.T) {
	const messages = 400
	broker := startMosquitto(t)
	routes := `  - mqtt: fleet/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    qos: 1
`
	var ups []*iotUpstream
	for i := range 2 {
		up := startIoTUpstream(t)
		ups = append(ups, up)
		startRosetta(t, iotConfig(up.addr, brokerSection(broker, 5, fmt.Sprintf("replica-%d", i), ", share_group: gateways"), routes))
	}
	dev := connect5(t, broker, "fleet-shared", nil)
	for i := range messages {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		_, err := dev.c.Publish(ctx, &paho.Publish{Topic: "fleet/shared/telemetry", QoS: 1, Payload: []byte(fmt.Sprintf(`{"id":"%d"}`, i))})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message upstream", func() bool {
		a, _ := ups[0].counts()
		b, _ := ups[1].counts()
		return a+b >= messages
	})
	a, callsA := ups[0].counts()
	b, callsB := ups[1].counts()
	both := 0
	for i := range messages {
		id := fmt.Sprint(i)
		if ups[0].seen(id) > 0 && ups[1].seen(id) > 0 {
			both++
		}
	}
	t.Logf("replica 0 handled %d messages, replica 1 %d", a, b)
	if a == 0 || b == 0 || both != 0 || a+b != messages || callsA != a || callsB != b {
		t.Errorf("split %d/%d (calls %d/%d), %d handled by both; want every one of %d messages handled once, by either", a, b, callsA, callsB, both, messages)
	}
}

// TestMQTTDeviceAuth admits to the embedded broker only the devices of a
// password file made by mosquitto_passwd, and lets them subscribe only
// under their own topics.
func TestMQTTDeviceAuth(t *testing.T) {
	needTool(t, "mosquitto_passwd")
	pwFile := filepath.Join(t.TempDir(), "devices.passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pwFile, "dev-1", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	up := startIoTUpstream(t)
	broker := freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, fmt.Sprintf("mqtt: {password_file: %q, subscribe: [\"devices/{owner}/#\"]}", pwFile), uplinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for _, v := range mqttVersions {
		msg := `{"id":"auth-` + v + `","reading":{"temperature":1}}`
		if out, code := publish(t, broker, v, "-u", "dev-1", "-P", "s3cret", "-q", "1", "-t", "devices/dev-1/telemetry", "-m", msg); code != 0 {
			t.Errorf("%s, right password: status %d\n%s", v, code, out)
		}
		for _, creds := range [][]string{{"-u", "dev-1", "-P", "wrong"}, {"-u", "dev-2", "-P", "s3cret"}, {}} {
			if out, code := publish(t, broker, v, append(creds, "-q", "1", "-t", "devices/dev-1/telemetry", "-m", msg)...); code == 0 {
				t.Errorf("%s, credentials %v: admitted\n%s", v, creds, out)
			}
		}
	}
	for _, c := range []struct {
		filter string
		ok     bool
	}{{"devices/dev-1/commands", true}, {"devices/dev-1/#", true}, {"devices/+/commands", false}, {"devices/dev-2/#", false}, {"#", false}} {
		for _, v := range mqttVersions {
			s := subscribe(t, broker, v, c.filter, "-u", "dev-1", "-P", "s3cret")
			if granted := strings.Contains(s.out.String(), "Subscribed (mid: 1): 1\n"); granted != c.ok {
				t.Errorf("%s: subscription to %s granted %v, want %v\n%s", v, c.filter, granted, c.ok, s.out)
			}
		}
	}
	if up.seen("auth-mqttv311") != 1 || up.seen("auth-mqttv5") != 1 {
		t.Errorf("the upstream saw the admitted messages %d and %d times, want once", up.seen("auth-mqttv311"), up.seen("auth-mqttv5"))
	}
}

// TestMQTTRoutes: `rosetta routes` lists the uplink rules beside the REST
// routes of the bridge.
func TestMQTTRoutes(t *testing.T) {
	path := writeConfig(t, "listen: {mqtt: 127.0.0.1:1883}\n"+iotConfig("127.0.0.1:1", anonymous, uplinkRoutes+downlinkRoutes))
	code, stdout, stderr := runRosetta(t, "routes", "-config", path)
	if code != 0 {
		t.Fatalf("rosetta routes: exit %d\n%s", code, stderr)
	}
	for _, want := range [][]string{
		{"MQTT", "devices/{device_id}/telemetry", "example.iot.v1.DeviceService.Record", "iot"},
		{"POST", "/v1/devices/{device_id}/commands", "devices/{device_id}/commands", "mqtt"},
		{"GET", "/v1/devices/{device_id}/state", "devices/{device_id}/telemetry", "mqtt"},
	} {
		found := false
		for _, line := range strings.Split(stdout, "\n") {
			found = found || slices.Equal(strings.Fields(line), want)
		}
		if !found {
			t.Errorf("routes lack %q\n%s", want, stdout)
		}
	}
}

// TestMQTTCheck: `rosetta check` finds the mistakes of an MQTT
// configuration, naming them.
func TestMQTTCheck(t *testing.T) {
	for _, c := range []struct {
		name, mqtt, listen, routes, want string
	}{
		{"no device admitted", "", "listen: {mqtt: 127.0.0.1:1883}\n", uplinkRoutes, "admits no device"},
		{"no broker", anonymous, "", uplinkRoutes, "need listen.mqtt"},
		{"both brokers", "mqtt: {broker: {url: mqtt://127.0.0.1:1, client_id: g}}", "listen: {mqtt: 127.0.0.1:1883}\n", uplinkRoutes, "not both"},
		{"no client id", "mqtt: {broker: {url: mqtt://127.0.0.1:1}}", "", uplinkRoutes, "client_id is required"},
		{"bad filter", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - mqtt: devices/#/x\n    call: example.iot.v1.DeviceService/Record\n", "# must be the last level"},
		{"unknown field", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - mqtt: devices/{nope}\n    call: example.iot.v1.DeviceService/Record\n", `no field "nope"`},
		{"no call", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - mqtt: devices/{device_id}\n", "needs call"},
		{"bad reply", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - post: /v1/x/{device_id}\n    publish: x/{device_id}\n    reply: x/+\n", "without wildcards"},
		{"state not get", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - post: /v1/x/{device_id}\n    state: x/{device_id}\n", "a state route is a get"},
		{"call level not a field", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - publish: x/{id}\n    call: example.iot.v1.DeviceCommands/Send\n", "has no string field id"},
		{"call served twice", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - publish: x/{device_id}\n    call: example.iot.v1.DeviceService/Record\n", "already served"},
		{"call unknown", anonymous, "listen: {mqtt: 127.0.0.1:1883}\n", "  - state: x/{device_id}\n    call: example.iot.v1.DeviceCommands/Nope\n", "has no method Nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.listen+iotConfig("127.0.0.1:1", c.mqtt, c.routes))
			code, _, stderr := runRosetta(t, "check", "-config", path)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("rosetta check: exit %d, want 1 with %q\n%s", code, c.want, stderr)
			}
		})
	}
}

// TestMQTTHTTPUpstream bridges a topic onto a plain HTTP upstream: the
// payload is the request body, a named segment goes into the path, the
// answer is the reply; a 503 is retried and a 400 dead-lettered.
func TestMQTTHTTPUpstream(t *testing.T) {
	var mu sync.Mutex
	var got []string
	fail503 := 1
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(body))
		switch {
		case string(body) == "bad":
			http.Error(w, "bad reading", http.StatusBadRequest)
		case fail503 > 0:
			fail503--
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "stored %d bytes", len(body))
		}
	}))
	defer hook.Close()
	broker := freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), fmt.Sprintf(`%supstreams:
  hooks: {http: {url: %q}, timeout: 5s}
%s
routes:
  - mqtt: sensors/{sensor}/raw
    upstream: hooks
    rewrite: {path: "/ingest/{sensor}"}
    reply: sensors/{sensor}/ack
    dead_letter: sensors/{sensor}/dead
    retry: {attempts: 3, backoff: 10ms}
`, iotSchema(), hook.URL, anonymous))
	acks := subscribe(t, broker, "mqttv5", "sensors/s7/ack")
	dead := subscribe(t, broker, "mqttv5", "sensors/s7/dead")
	publish(t, broker, "mqttv5", "-q", "1", "-t", "sensors/s7/raw", "-m", "21.5C")
	if a := acks.next(t, 1); a != "stored 5 bytes" {
		t.Errorf("reply %q", a)
	}
	publish(t, broker, "mqttv311", "-q", "1", "-t", "sensors/s7/raw", "-m", "bad")
	if st := statusOf(t, acks.next(t, 2)); st.Code != 3 {
		t.Errorf("error reply %+v, want INVALID_ARGUMENT", st)
	}
	var rec struct{ Attempts int }
	if err := json.Unmarshal([]byte(dead.next(t, 1)), &rec); err != nil || rec.Attempts != 1 {
		t.Errorf("dead letter %+v (%v)", rec, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"POST /ingest/s7 application/octet-stream 21.5C", "POST /ingest/s7 application/octet-stream 21.5C", "POST /ingest/s7 application/octet-stream bad"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upstream saw %q, want %q (the 503 retried)", got, want)
	}
}

// TestMQTTClientCertificates serves devices over TLS, admitting those with a
// certificate of the configured CA; the certificate's common name is the
// device's identity for the owner check.
func TestMQTTClientCertificates(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	ca := newTestCA(t)
	writeCert(t, file("ca.pem"), file("ca.key"), ca.cert, ca.key)
	srvCert, srvKey := issueCert(t, "gateway", 2, ca)
	writeCert(t, file("gw.pem"), file("gw.key"), srvCert, srvKey)
	devCert, devKey := issueCert(t, "dev-c", 3, ca)
	writeCert(t, file("dev.pem"), file("dev.key"), devCert, devKey)

	up := startIoTUpstream(t)
	broker := freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr,
		fmt.Sprintf("mqtt: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q}}", file("gw.pem"), file("gw.key"), file("ca.pem")), uplinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	tlsArgs := []string{"--cafile", file("ca.pem"), "--cert", file("dev.pem"), "--key", file("dev.key")}
	for _, v := range mqttVersions {
		out, code := publish(t, broker, v, append(tlsArgs, "-q", "1", "-t", "devices/dev-c/telemetry", "-m", `{"id":"tls-`+v+`"}`)...)
		if code != 0 || up.seen("tls-"+v) != 1 {
			t.Errorf("%s with a certificate: status %d, upstream saw it %d times\n%s", v, code, up.seen("tls-"+v), out)
		}
		if out, code := publish(t, broker, v, "--cafile", file("ca.pem"), "-q", "1", "-t", "devices/dev-c/telemetry", "-m", `{}`); code == 0 {
			t.Errorf("%s without a certificate: admitted\n%s", v, out)
		}
	}
	// The certificate names the device: dev-c may not publish as another.
	if out, _ := publish(t, broker, "mqttv5", append(tlsArgs, "-u", "other", "-q", "1", "-t", "devices/other/telemetry", "-m", `{}`)...); !strings.Contains(out, "RC:135") {
		t.Errorf("publishing under another device's topic: want PUBACK 135\n%s", out)
	}
}

// packetConn sends each MQTT packet in one WebSocket message, as MQTT over
// WebSocket clients do (paho writes a packet in several writes).
type packetConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (c *packetConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for len(c.buf) >= 2 {
		// The fixed header: a type byte, then the remaining length in
		// base-128 digits, least significant first.
		size, mult, i := 0, 1, 1
		for ; i < len(c.buf) && i <= 4; i++ {
			size += int(c.buf[i]&0x7f) * mult
			mult *= 128
			if c.buf[i]&0x80 == 0 {
				break
			}
		}
		if i >= len(c.buf) || len(c.buf) < i+1+size {
			break // incomplete
		}
		n := i + 1 + size
		if _, err := c.Conn.Write(c.buf[:n]); err != nil {
			return 0, err
		}
		c.buf = c.buf[n:]
	}
	return len(p), nil
}

// TestMQTTWebSocket publishes through the embedded broker's MQTT-over-
// WebSocket listener.
func TestMQTTWebSocket(t *testing.T) {
	up := startIoTUpstream(t)
	broker, ws := freePort(t), freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, fmt.Sprintf("mqtt: {allow_anonymous: true, websocket: %q}", ws), uplinkRoutes))
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var c *websocket.Conn
	waitFor(t, "the WebSocket listener", func() bool {
		var err error
		c, _, err = websocket.Dial(ctx, "ws://"+ws+"/mqtt", &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
		return err == nil
	})
	dev := paho.NewClient(paho.ClientConfig{ClientID: "ws1", Conn: &packetConn{Conn: websocket.NetConn(context.Background(), c, websocket.MessageBinary)}})
	if _, err := dev.Connect(ctx, &paho.Connect{ClientID: "ws1", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(&paho.Disconnect{})
	resp, err := dev.Publish(ctx, &paho.Publish{Topic: "devices/ws1/telemetry", QoS: 1, Payload: []byte(`{"id":"over-ws"}`)})
	if err != nil || resp.ReasonCode != 0 || up.seen("over-ws") != 1 {
		t.Errorf("publish over WebSocket: %v %v; upstream saw it %d times", resp, err, up.seen("over-ws"))
	}
}

// TestMQTTPersistentSession stops the gateway while devices publish QoS 1
// messages to Mosquitto: its session keeps them, and the gateway started
// again with the same client ID gets every one.
func TestMQTTPersistentSession(t *testing.T) {
	for _, version := range []int{5, 4} {
		t.Run(fmt.Sprintf("gateway MQTT %d", version), func(t *testing.T) {
			up := startIoTUpstream(t)
			broker := startMosquitto(t)
			cfg := iotConfig(up.addr, brokerSection(broker, version, "persistent", ""), uplinkRoutes)
			gw := startRosetta(t, cfg)
			publish(t, broker, "mqttv5", "-q", "1", "-t", "devices/p1/telemetry", "-m", `{"id":"before"}`)
			waitFor(t, "the first message upstream", func() bool { return up.seen("before") == 1 })
			if code := gw.stop(t); code != 0 {
				t.Fatalf("rosetta exited with %d\n%s", code, gw.stderr)
			}
			for i := range 20 {
				publish(t, broker, "mqttv311", "-q", "1", "-t", "devices/p1/telemetry", "-m", fmt.Sprintf(`{"id":"away-%d"}`, i))
			}
			startRosetta(t, cfg)
			waitFor(t, "the messages published while the gateway was away", func() bool {
				for i := range 20 {
					if up.seen(fmt.Sprintf("away-%d", i)) == 0 {
						return false
					}
				}
				return true
			})
		})
	}
}

// grpcDownlinkRoutes serve the DeviceCommands methods from the MQTT bridge:
// Send (which needs an API key) and GetTelemetry at their default paths,
// Call also at a REST path of its own.
const grpcDownlinkRoutes = `  - publish: devices/{device_id}/commands
    call: example.iot.v1.DeviceCommands/Send
    qos: 1
    policies: [key]
  - post: /v1/devices/{device_id}/commands:call
    publish: devices/{device_id}/commands
    call: example.iot.v1.DeviceCommands/Call
    qos: 1
    wait: 1s
  - state: devices/{device_id}/telemetry
    call: example.iot.v1.DeviceCommands/GetTelemetry
policies:
  key: {api_key: {keys: [{sha256: %s, identity: ops}]}}
`

// TestMQTTDownlinkGRPC commands devices and reads their state with a gRPC
// client of the gateway: a command reaches a device (mosquitto_sub) when
// the route's policy lets the caller through, a
// waiting call gets an MQTT 5 device's reply (and the same method over
// REST), a device that does not answer is DEADLINE_EXCEEDED after the
// route's wait, and the last telemetry is readable.
func TestMQTTDownlinkGRPC(t *testing.T) {
	up := startIoTUpstream(t)
	broker := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, anonymous, uplinkRoutes+fmt.Sprintf(grpcDownlinkRoutes, sha256Hex("device-ops"))))
	conn := gw.grpcConn(t)
	client := iotv1.NewDeviceCommandsClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()

	t.Run("send", func(t *testing.T) {
		cmds := subscribe(t, broker, "mqttv311", "devices/g1/commands")
		cmd := &iotv1.Command{DeviceId: "g1", Name: "led", Args: map[string]string{"state": "on"}}
		if _, err := client.Send(ctx, &iotv1.Command{DeviceId: "g1", Name: "unauthenticated"}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("without the API key: %v, want UNAUTHENTICATED", err)
		}
		keyed := metadata.AppendToOutgoingContext(ctx, "x-api-key", "device-ops")
		if _, err := client.Send(keyed, cmd); err != nil {
			t.Fatal(err)
		}
		wantPayload(t, cmds.next(t, 1), `{"name":"led","args":{"state":"on"}}`)
		for _, id := range []string{"", "a/b", "a+b"} {
			if _, err := client.Send(keyed, &iotv1.Command{DeviceId: id}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("device_id %q: %v, want INVALID_ARGUMENT", id, err)
			}
		}
	})

	t.Run("call", func(t *testing.T) {
		var dev *device5
		dev = connect5(t, broker, "g5", func(p *paho.Publish) {
			var cmd struct{ Name string }
			json.Unmarshal(p.Payload, &cmd)
			go dev.c.Publish(context.Background(), &paho.Publish{
				Topic: p.Properties.ResponseTopic, QoS: 1, Payload: []byte(`{"ok":true,"message":"did ` + cmd.Name + `"}`),
				Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData},
			})
		})
		dev.subscribe(t, "devices/g5/commands")
		reply, err := client.Call(ctx, &iotv1.Command{DeviceId: "g5", Name: "reboot"})
		if err != nil || !proto.Equal(reply, &iotv1.CommandReply{Ok: true, Message: "did reboot"}) {
			t.Errorf("reply %v, %v", reply, err)
		}
		r := do(t, gw.base, request{method: "POST", path: "/v1/devices/g5/commands:call", body: `{"name":"blink"}`})
		wantJSON(t, r, `{"ok":true,"message":"did blink"}`)
	})

	t.Run("no answer", func(t *testing.T) {
		_, err := client.Call(ctx, &iotv1.Command{DeviceId: "mute", Name: "reboot"})
		if st, _ := status.FromError(err); st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "no reply on") {
			t.Errorf("%v, want the gateway's DEADLINE_EXCEEDED", err)
		}
	})

	t.Run("state", func(t *testing.T) {
		if _, err := client.GetTelemetry(ctx, &iotv1.GetDeviceRequest{DeviceId: "gs"}); status.Code(err) != codes.NotFound {
			t.Errorf("before any telemetry: %v, want NOT_FOUND", err)
		}
		publish(t, broker, "mqttv5", "-u", "gs", "-q", "1", "-t", "devices/gs/telemetry", "-m", `{"id":"gs-1","reading":{"temperature":7}}`)
		var got *iotv1.RecordRequest
		waitFor(t, "the state of devices/gs/telemetry", func() bool {
			var err error
			got, err = client.GetTelemetry(ctx, &iotv1.GetDeviceRequest{DeviceId: "gs"})
			return err == nil
		})
		if got.GetId() != "gs-1" || got.GetReading().GetTemperature() != 7 {
			t.Errorf("state %v", got)
		}
		// The same method over REST (its default path) and Connect.
		for _, h := range []map[string]string{nil, {"Connect-Protocol-Version": "1"}} {
			r := do(t, gw.base, request{method: "POST", path: "/example.iot.v1.DeviceCommands/GetTelemetry", body: `{"deviceId":"gs"}`, header: h})
			wantJSON(t, r, `{"id":"gs-1","reading":{"temperature":7}}`)
		}
	})
}

// TestMQTTUserProperties forwards an MQTT 5 message's user properties
// upstream as metadata when the forward list (or the grpc-metadata- prefix)
// allows them, never the credentials.
func TestMQTTUserProperties(t *testing.T) {
	up := startIoTUpstream(t)
	broker := freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker),
		iotConfig(up.addr, anonymous+"\nhttp: {forward_headers: [X-Tenant, Authorization]}", uplinkRoutes))
	out, code := publish(t, broker, "mqttv5", "-u", "p1", "-i", "p1-client", "-q", "1", "-t", "devices/p1/telemetry", "-m", `{"id":"p1"}`,
		"-D", "publish", "user-property", "X-Tenant", "acme",
		"-D", "publish", "user-property", "grpc-metadata-trace-id", "t1",
		"-D", "publish", "user-property", "authorization", "Bearer secret",
		"-D", "publish", "user-property", "x-other", "not listed",
		"-D", "publish", "user-property", "grpc-metadata-x-mqtt-client-id", "spoofed")
	if code != 0 || up.seen("p1") != 1 {
		t.Fatalf("mosquitto_pub exit %d, upstream saw p1 %d times\n%s", code, up.seen("p1"), out)
	}
	md := up.lastMetadata()
	for k, want := range map[string][]string{
		"x-tenant": {"acme"}, "trace-id": {"t1"}, "x-mqtt-topic": {"devices/p1/telemetry"}, "x-mqtt-client-id": {"p1-client"},
		"authorization": nil, "x-other": nil,
	} {
		if got := md.Get(k); !slices.Equal(got, want) {
			t.Errorf("metadata %s: %q, want %q", k, got, want)
		}
	}
}
