package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	ws "github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// TestObservability sends calls over every protocol (REST, gRPC, Connect,
// gRPC-Web, WebSocket, MQTT 5) to one gateway, then checks what it exports
// of them: metric names and units (promlint), one access-log line per
// call, the series the committed Grafana dashboard queries, and a real
// Prometheus scraping them.
func TestObservability(t *testing.T) {
	t.Parallel()
	lib := startObservedUpstream(t, "")
	iot := startIoTUpstream(t)
	admin, broker := freePort(t), freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q, mqtt: %q", admin, broker), fmt.Sprintf(`schemas:
%s  - descriptor_set: %q
upstreams:
  library: {grpc: {targets: [%q]}, timeout: 5s}
  iot: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: example.library.v1.LibraryService
    upstream: library
  - name: example.iot.v1.DeviceService
    upstream: iot
security: {policies: [generous]}
policies:
  generous: {rate_limit: {rate: 1000/s, burst: 1000, key: global}}
%s
routes:
%s`, descriptorSetSchema(), filepath.Join(repoRoot, "proto", "iot.binpb"), lib.addr, iot.addr, anonymous, uplinkRoutes))
	const getShelf = "/example.library.v1.LibraryService/GetShelf"

	// One call per protocol, each with its request id.
	if r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"X-Request-Id": "req-http"}}); r.status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.status, r.body)
	}
	conn := gw.grpcConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := libraryv1.NewLibraryServiceClient(conn).GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"}); err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	if r := do(t, gw.base, request{method: "POST", path: getShelf, body: `{"name":"shelves/1"}`,
		header: map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1"}}); r.status != http.StatusOK {
		t.Fatalf("Connect: %d %s", r.status, r.body)
	}
	frame := append([]byte{0, 0, 0, 0, 11}, []byte("\n\x09shelves/1")...)
	if r := do(t, gw.base, request{method: "POST", path: getShelf, body: string(frame),
		header: map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}}); r.status != http.StatusOK {
		t.Fatalf("gRPC-Web: %d %s", r.status, r.body)
	}
	c := dialWS(t, gw, "GetShelf", &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
	c.send(`{"name":"shelves/1"}`)
	c.recv()
	c.conn.CloseNow()
	if out, code := publish(t, broker, "mqttv5", "-u", "d1", "-q", "1", "-t", "devices/d1/telemetry", "-m", `{"id":"o1","reading":{"temperature":20}}`); code != 0 {
		t.Fatalf("mosquitto_pub: %d\n%s", code, out)
	}

	// Every call has its access-log line, written once the answer was sent.
	protocols := []string{"http", "grpc", "connect", "grpc-web", "websocket", "mqtt"}
	lines := waitAccessLines(t, gw, protocols)
	t.Run("access log", func(t *testing.T) {
		for _, p := range protocols {
			l := lines[p]
			route := "example.library.v1.LibraryService/GetShelf"
			if p == "mqtt" {
				route = "example.iot.v1.DeviceService/Record"
			}
			if l["route"] != route || l["code"] != "OK" || l["attempts"] != 1.0 || l["latency_ms"] == nil || l["bytes_in"] == nil || l["bytes_out"] == nil {
				t.Errorf("%s: access line %v, want route %s, code OK, one attempt, latency and bytes", p, l, route)
			}
			if want := map[string]string{"mqtt": "iot"}[p]; want != "" && l["upstream"] != want || want == "" && l["upstream"] != "library" {
				t.Errorf("%s: upstream %v", p, l["upstream"])
			}
		}
		if l := lines["http"]; l["request_id"] != "req-http" || l["status"] != 200.0 || l["method"] != "GET" || l["path"] != "/v1/shelves/1" || l["bytes_out"].(float64) == 0 {
			t.Errorf("REST access line %v", l)
		}
		if l := lines["websocket"]; l["bytes_in"] != float64(len(`{"name":"shelves/1"}`)) {
			t.Errorf("WebSocket access line %v: bytes_in counts the messages", l)
		}
	})

	code, metrics := adminGet(t, admin, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	t.Run("promlint", func(t *testing.T) {
		problems, err := promlint.New(strings.NewReader(metrics)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		for _, p := range []string{"http", "grpc", "grpc-web", "websocket", "mqtt"} {
			if !strings.Contains(metrics, `protocol="`+p+`"`) {
				t.Errorf("no calls counted for %s", p)
			}
		}
		for _, want := range []string{
			`rosetta_websocket_messages_total{direction="received"} 1`,
			`rosetta_websocket_messages_total{direction="sent"} 1`,
			`rosetta_websocket_connections 0`,
			`rosetta_mqtt_messages_received_total 1`,
			`rosetta_mqtt_acks_total{reason="success"} 1`,
			`rosetta_mqtt_messages_published_total 1`, // the reply
			`rosetta_mqtt_connected_devices 0`,
			`rosetta_mqtt_dead_letters_total 0`,
			`rosetta_config_last_reload_successful 1`,
		} {
			if !strings.Contains(metrics, "\n"+want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	queried := dashboardMetrics(t)
	t.Run("dashboard", func(t *testing.T) {
		for _, m := range queried {
			if !strings.Contains(metrics, "\n"+m+" ") && !strings.Contains(metrics, "\n"+m+"{") {
				t.Errorf("the dashboard queries %s, which the gateway does not export", m)
			}
		}
	})
	t.Run("Prometheus", func(t *testing.T) {
		prom := startPrometheus(t, admin)
		for _, m := range queried {
			if n := prom.series(t, m); n == 0 {
				t.Errorf("Prometheus holds no series of %s", m)
			}
		}
	})
}

// waitAccessLines waits for gw's access log to hold a line of each of
// protocols (a line is written once its call's answer was sent) and returns
// the latest line of each protocol.
func waitAccessLines(t testing.TB, gw *rosetta, protocols []string) map[string]map[string]any {
	t.Helper()
	var lines map[string]map[string]any
	waitFor(t, "an access-log line of each of "+strings.Join(protocols, ", "), func() bool {
		lines = accessLines(t, gw.stderr.String())
		for _, p := range protocols {
			if lines[p] == nil {
				return false
			}
		}
		return true
	})
	return lines
}

// accessLines returns the latest access-log line of each protocol in log.
func accessLines(t testing.TB, log string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"msg":"access"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("an access-log line is not JSON: %v\n%s", err, line)
		}
		if p, ok := m["protocol"].(string); ok {
			out[p] = m
		}
	}
	return out
}

// dashboardMetrics returns the metric names the committed Grafana dashboard
// queries.
func dashboardMetrics(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "grafana", "dashboards", "rosetta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var names []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range regexp.MustCompile(`\brosetta_[a-z_]+`).FindAllString(q.Expr, -1) {
				if !slices.Contains(names, m) {
					names = append(names, m)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("the dashboard queries no rosetta metric")
	}
	return names
}

// promServer is a Prometheus server started by a test.
type promServer struct{ base string }

// startPrometheus runs Debian's prometheus scraping the admin listener at
// target every second, and waits for its first successful scrape.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed (scripts/test.sh installs it: apt-get install -y prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: rosetta\n    static_configs: [{targets: [%q]}]\n", target), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	p := &process{name: "prometheus", cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	prom := &promServer{base: "http://" + addr}
	// A target shows as up before its scrape's samples are committed (one
	// CI run queried in between and found none): wait for the scrape's
	// own up series, committed with the samples.
	waitFor(t, "Prometheus's first scrape of the gateway", func() bool {
		if p.exited() {
			t.Fatalf("prometheus exited:\n%s", p.stderr)
		}
		n, err := prom.count("up")
		return err == nil && n == 1
	})
	return prom
}

// count returns the number of series of metric Prometheus holds now.
func (p *promServer) count(metric string) (int, error) {
	var r struct {
		Status string
		Data   struct{ Result []json.RawMessage }
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(metric), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", metric, r.Status)
	}
	return len(r.Data.Result), nil
}

// get decodes the JSON answer of a Prometheus API path.
func (p *promServer) get(path string, v any) error {
	resp, err := client.Get(p.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// series returns the number of series of metric Prometheus holds now.
func (p *promServer) series(t testing.TB, metric string) int {
	t.Helper()
	n, err := p.count(metric)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAccessLogNamesStreamEndpoint: a streaming call's access-log line names
// the upstream endpoint it went to, as a unary call's does, whether the
// stream ends well (a WebSocket Chat) or with the upstream's error (a native
// gRPC StreamBooks that fails after one book).
func TestAccessLogNamesStreamEndpoint(t *testing.T) {
	t.Parallel()
	up, gw := startStreaming(t, "")

	if r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1"}); r.status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.status, r.body)
	}
	c := dialWS(t, gw, "Chat", nil)
	c.send(`{"message":"hi"}`)
	c.recv()
	c.closeSend()
	c.finish(codes.OK)
	conn := gw.grpcConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	s, err := libraryv1.NewLibraryServiceClient(conn).StreamBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/fail"})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.DataLoss {
		t.Fatalf("StreamBooks ended with %v, want DATA_LOSS", err)
	}

	protocols := []string{"http", "websocket", "grpc"}
	lines := waitAccessLines(t, gw, protocols)
	for _, p := range protocols {
		if l := lines[p]; l["endpoint"] != up.addr {
			t.Errorf("%s: access line %v, want endpoint %s", p, l, up.addr)
		}
	}
}
