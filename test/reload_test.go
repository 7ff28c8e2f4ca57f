package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	ws "github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// reloadStatus is what GET /admin/reload reports.
type reloadStatus struct {
	Generation int    `json:"generation"`
	Error      string `json:"error"`
}

func getReloadStatus(t testing.TB, admin string) reloadStatus {
	t.Helper()
	code, body := adminGet(t, admin, "/admin/reload")
	var st reloadStatus
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/admin/reload: %d %v\n%s", code, err, body)
	}
	return st
}

func postReload(t testing.TB, admin string) (int, string) {
	t.Helper()
	resp, err := client.Post("http://"+admin+"/admin/reload", "application/json", nil)
	if err != nil {
		t.Fatalf("POST /admin/reload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReloadUnderLoad keeps mixed traffic going (REST, gRPC and WebSocket
// calls over TLS, one long bidirectional WebSocket stream, MQTT QoS 1
// messages) while the configuration changes and is reloaded 24 times, by
// file change, SIGHUP and POST /admin/reload: routes come and go, a policy
// tightens and loosens, a schema is added and removed, the listener's
// certificate is rotated, and an invalid configuration is refused. No call
// the changes did not aim at fails, no MQTT message is lost, and the long
// stream runs on to its end.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	lib := startObservedUpstream(t, "")
	iot := startIoTUpstream(t)
	broker, admin := freePort(t), freePort(t)
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw.key")
	cert, key := issueCert(t, "gateway", 100, ca)
	writeCert(t, certFile, keyFile, cert, key)
	schema := func(name string) string {
		return fmt.Sprintf("  - descriptor_set: %q\n", filepath.Join(repoRoot, "proto", name+".binpb"))
	}
	// variant i of the configuration: odd ones add a schema, a service and a
	// route; every fourth closes Ping to every caller.
	variant := func(i int) string {
		var b strings.Builder
		odd := i%2 == 1
		b.WriteString("schemas:\n" + schema("library") + schema("iot"))
		if odd {
			b.WriteString(schema("order"))
		}
		// Odd variants list the library twice: a new client whose
		// connections replace the old one's, which drain.
		targets := fmt.Sprintf("%q", lib.addr)
		if odd {
			targets += ", " + targets
		}
		fmt.Fprintf(&b, "upstreams:\n  library: {grpc: {targets: [%s]}, timeout: 5s}\n  iot: {grpc: {targets: [%q]}, timeout: 5s}\n", targets, iot.addr)
		if odd {
			b.WriteString("  shop: {grpc: {targets: [\"127.0.0.1:1\"]}, timeout: 1s}\n")
		}
		b.WriteString("services:\n  - {name: example.library.v1.LibraryService, upstream: library, auto_mapping: true}\n  - {name: example.iot.v1.DeviceService, upstream: iot}\n")
		if odd {
			b.WriteString("  - {name: example.order.v1.ProductService, upstream: shop}\n")
		}
		fmt.Fprintf(&b, "security: {tls: {cert_file: %q, key_file: %q}}\n", certFile, keyFile)
		b.WriteString("mqtt: {allow_anonymous: true}\npolicies: {closed: {ip_filter: {deny: [0.0.0.0/0, \"::/0\"]}}}\n")
		b.WriteString("routes:\n  - mqtt: devices/{device_id}/telemetry\n    call: example.iot.v1.DeviceService/Record\n    qos: 1\n")
		if odd {
			b.WriteString("  - get: /v1/extra/{name=shelves/*}\n    call: example.library.v1.LibraryService/GetShelf\n")
		}
		if i%4 == 2 {
			b.WriteString("  - post: /v1/closed/ping\n    call: example.library.v1.LibraryService/Ping\n    policies: [closed]\n")
		}
		return b.String()
	}
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q, admin: %q", broker, admin), variant(0))
	first, err := os.ReadFile(gw.config)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(first), "\n") // the listen line, which stays
	write := func(body string) {
		t.Helper()
		tmp := gw.config + ".tmp"
		if err := os.WriteFile(tmp, []byte(head+"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, gw.config); err != nil { // as editors and config managers replace files
			t.Fatal(err)
		}
	}
	addr := strings.TrimPrefix(gw.base, "http://")
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	tlsCfg := &tls.Config{RootCAs: roots}
	https := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	waitFor(t, "the embedded broker", func() bool { return dialOK(broker) })

	var (
		mu       sync.Mutex
		failures []string
		calls    atomic.Int64
		sent     []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	loop := func(name string, call func(i int) error) {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := call(i); err != nil && ctx.Err() == nil {
					fail("%s #%d: %v", name, i, err)
				}
				calls.Add(1)
			}
		}()
	}
	loop("REST", func(int) error {
		resp, err := https.Get("https://" + addr + "/v1/shelves/1")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d %s", resp.StatusCode, b)
		}
		return nil
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	library := libraryv1.NewLibraryServiceClient(conn)
	loop("gRPC", func(int) error {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		_, err := library.GetShelf(cctx, &libraryv1.GetShelfRequest{Name: "shelves/2"})
		return err
	})
	wsOpts := func() *ws.DialOptions {
		return &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPClient: https}
	}
	wssURL := func(method string) string {
		return "wss://" + addr + "/ws/example.library.v1.LibraryService/" + method
	}
	loop("WebSocket", func(int) error {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		c, _, err := ws.Dial(cctx, wssURL("GetShelf"), wsOpts())
		if err != nil {
			return err
		}
		defer c.CloseNow()
		if err := c.Write(cctx, ws.MessageText, []byte(`{"name":"shelves/1"}`)); err != nil {
			return err
		}
		for {
			if _, _, err := c.Read(cctx); err != nil {
				if ws.CloseStatus(err) != ws.StatusNormalClosure {
					return err
				}
				return nil
			}
		}
	})
	device := connect5(t, broker, "reload-device", nil)
	loop("MQTT", func(i int) error {
		id := fmt.Sprintf("reload-%d", i)
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		resp, err := device.c.Publish(cctx, &paho.Publish{Topic: "devices/reload-device/telemetry", QoS: 1,
			Payload: fmt.Appendf(nil, `{"id":%q,"reading":{"temperature":20}}`, id)})
		if err != nil {
			return err
		}
		if resp.ReasonCode >= 0x80 {
			return fmt.Errorf("PUBACK reason code %d", resp.ReasonCode)
		}
		mu.Lock()
		sent = append(sent, id)
		mu.Unlock()
		return nil
	})

	// The long stream: a bidirectional Chat that lives through every reload.
	sctx, scancel := context.WithTimeout(context.Background(), startTimeout*10)
	defer scancel()
	chat, _, err := ws.Dial(sctx, wssURL("Chat"), wsOpts())
	if err != nil {
		t.Fatalf("open the long stream: %v", err)
	}
	defer chat.CloseNow()
	exchange := func(n int) {
		t.Helper()
		msg := fmt.Sprintf("step %d", n)
		if err := chat.Write(sctx, ws.MessageText, fmt.Appendf(nil, `{"message":%q}`, msg)); err != nil {
			t.Fatalf("the long stream, %s: %v", msg, err)
		}
		_, data, err := chat.Read(sctx)
		if err != nil || !strings.Contains(string(data), msg) {
			t.Fatalf("the long stream, %s: %s %v", msg, data, err)
		}
	}
	exchange(0)

	gen := getReloadStatus(t, admin).Generation
	for i := 1; i <= 24; i++ {
		write(variant(i))
		switch i % 3 {
		case 1:
			if code, body := postReload(t, admin); code != 200 {
				t.Fatalf("step %d: POST /admin/reload: %d %s", i, code, body)
			}
		case 2:
			if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		} // case 0: the file watch alone
		waitFor(t, fmt.Sprintf("step %d's generation", i), func() bool { return getReloadStatus(t, admin).Generation > gen })
		// A reload of the watch may follow an explicit one: wait for the
		// generation to settle on this step's file before looking.
		gen = getReloadStatus(t, admin).Generation
		odd := i%2 == 1
		waitFor(t, fmt.Sprintf("step %d's routes", i), func() bool {
			resp, err := https.Get("https://" + addr + "/v1/extra/shelves/1")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return (resp.StatusCode == 200) == odd
		})
		gen = getReloadStatus(t, admin).Generation
		connectReq, _ := http.NewRequest("POST", "https://"+addr+"/example.order.v1.ProductService/GetProduct", strings.NewReader(`{"id":"kb-1"}`))
		connectReq.Header.Set("Content-Type", "application/json")
		connectReq.Header.Set("Connect-Protocol-Version", "1")
		if resp, err := https.Do(connectReq); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
			if (resp.StatusCode != 404) != odd { // served (the upstream is down) or unknown
				t.Errorf("step %d: the order schema's method answered %d", i, resp.StatusCode)
			}
		}
		if resp, err := https.Post("https://"+addr+"/example.library.v1.LibraryService/Ping", "application/json", strings.NewReader(`{"message":"x"}`)); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
			if closed := i%4 == 2; (resp.StatusCode == http.StatusForbidden) != closed {
				t.Errorf("step %d: Ping answered %d with the closing policy %v", i, resp.StatusCode, closed)
			}
		}
		exchange(i)

		if i == 12 { // rotate the listener's certificate
			next, nextKey := issueCert(t, "gateway", 200, ca)
			writeCert(t, certFile+".new", keyFile+".new", next, nextKey)
			os.Rename(keyFile+".new", keyFile)
			os.Rename(certFile+".new", certFile)
			waitFor(t, "the rotated certificate", func() bool {
				c, err := tls.Dial("tcp", addr, tlsCfg)
				if err != nil {
					return false
				}
				defer c.Close()
				return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() == 200
			})
			gen = getReloadStatus(t, admin).Generation
		}
		if i == 18 { // an invalid configuration is refused; the running one serves on
			write(variant(i) + "no_such_key: 1\n")
			code, body := postReload(t, admin)
			if code != http.StatusBadRequest || !strings.Contains(body, "no_such_key") || !strings.Contains(body, `"code":9`) {
				t.Errorf("invalid configuration: %d %s, want 400 FAILED_PRECONDITION naming the key", code, body)
			}
			if st := getReloadStatus(t, admin); st.Generation != gen || !strings.Contains(st.Error, "no_such_key") {
				t.Errorf("after the invalid configuration: %+v, want generation %d and the error", st, gen)
			}
		}
	}
	stop()
	load.Wait()
	https.CloseIdleConnections()
	if err := chat.Write(sctx, ws.MessageText, nil); err != nil { // half-close
		t.Fatal(err)
	}
	if _, _, err := chat.Read(sctx); err != nil {
		t.Fatalf("the long stream's end: %v", err)
	} else if _, _, err := chat.Read(sctx); ws.CloseStatus(err) != ws.StatusNormalClosure {
		t.Errorf("the long stream ended with %v, want a normal closure", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	if n := calls.Load(); n < 100 {
		t.Errorf("only %d calls ran during the reloads", n)
	}
	waitFor(t, "every MQTT message at the upstream", func() bool {
		for _, id := range sent {
			if iot.seen(id) == 0 {
				return false
			}
		}
		return true
	})
	_, metrics := adminGet(t, admin, "/metrics")
	if !strings.Contains(metrics, `rosetta_reloads_total{result="failed"}`) || !strings.Contains(metrics, `rosetta_reloads_total{result="ok"}`) {
		t.Errorf("/metrics lacks the reload counts")
	}
	t.Logf("%d calls and %d MQTT messages through %d generations", calls.Load(), len(sent), getReloadStatus(t, admin).Generation)
}

// dialOK reports whether a TCP connection to addr opens.
func dialOK(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// TestReloadExternalBrokerSubscriptions: on a real Mosquitto, a reload that
// adds an uplink rule subscribes the gateway to its filter, and one that
// removes a rule unsubscribes from it, for both client libraries; the
// rules that stay keep working across the reload. POST /admin/reload
// answers once the broker has acknowledged the changes, so each step waits
// for the event itself.
func TestReloadExternalBrokerSubscriptions(t *testing.T) {
	t.Parallel()
	up := startIoTUpstream(t)
	broker := startMosquitto(t)
	const telemetry = "  - mqtt: devices/{device_id}/telemetry\n    call: example.iot.v1.DeviceService/Record\n"
	const extra = "  - mqtt: extra/{device_id}/telemetry\n    call: example.iot.v1.DeviceService/Record\n"
	for _, version := range []int{5, 4} {
		t.Run(fmt.Sprintf("gateway MQTT %d", version), func(t *testing.T) {
			admin := freePort(t)
			// One worker: the gateway handles messages in the order the
			// broker delivers them, which the removal check relies on.
			section := brokerSection(broker, version, fmt.Sprintf("reload-gw-%d", version), ", workers: 1")
			gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), iotConfig(up.addr, section, telemetry))
			first, err := os.ReadFile(gw.config)
			if err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(string(first), "\n")
			reload := func(routes string) {
				t.Helper()
				if err := os.WriteFile(gw.config, []byte(head+"\n"+iotConfig(up.addr, section, routes)), 0o600); err != nil {
					t.Fatal(err)
				}
				if code, body := postReload(t, admin); code != 200 {
					t.Fatalf("reload: %d %s", code, body)
				}
			}
			n := 0
			send := func(topic string) string {
				n++
				id := fmt.Sprintf("sub-%d-%d", version, n)
				publish(t, broker, "mqttv5", "-q", "1", "-t", topic, "-m", `{"id":"`+id+`","reading":{"temperature":1}}`)
				return id
			}
			arrives := func(topic string) {
				t.Helper()
				id := send(topic)
				waitFor(t, "message "+id+" on "+topic, func() bool { return up.seen(id) > 0 })
			}
			dev := fmt.Sprintf("r%d", version)
			arrives("devices/" + dev + "/telemetry")
			reload(telemetry + extra)
			arrives("extra/" + dev + "/telemetry")
			arrives("devices/" + dev + "/telemetry")
			reload(extra)
			removed := send("devices/" + dev + "/telemetry")
			arrives("extra/" + dev + "/telemetry") // handled after the removed rule's message, had the gateway taken it
			if up.seen(removed) != 0 {
				t.Error("a message on the removed rule's topic still reached the upstream")
			}
		})
	}
}

// TestReloadNamesRestartSettings: a reload that changes a setting read only
// at start (here the body limit of the HTTP listener) swaps the rest in and
// names that setting, in the answer and in GET /admin/reload.
func TestReloadNamesRestartSettings(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), lib, "", ""))
	first, err := os.ReadFile(gw.config)
	if err != nil {
		t.Fatal(err)
	}
	next := string(first) + "http: {max_body_bytes: 1KiB}\nroutes:\n  - get: /v2/{name=shelves/*}\n    call: example.library.v1.LibraryService/GetShelf\n"
	if err := os.WriteFile(gw.config, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := postReload(t, admin)
	var st struct{ Restart []string }
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || len(st.Restart) != 1 || st.Restart[0] != "http" {
		t.Fatalf("reload: %d %s, want 200 naming http as needing a restart", code, body)
	}
	if r := get(t, gw.base, "/v2/shelves/1"); r.status != http.StatusOK {
		t.Errorf("the new route: %d %s", r.status, r.body)
	}
}
