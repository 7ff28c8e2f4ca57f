package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// adminGet fetches path from the admin listener at addr.
func adminGet(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// TestAdminMetricsAndRoutes makes REST calls (one refused by the upstream,
// some by a rate limit) and reads them back from the admin listener's
// /metrics, by route and code; /routes is the table `rosetta routes` prints.
func TestAdminMetricsAndRoutes(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), up.addr, "", `routes:
  - get: /limited/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
    policies: [tight]
policies:
  tight: {rate_limit: {rate: 1/h, key: global}}
`))
	for range 2 {
		if r := get(t, gw.base, "/v1/shelves/1/books"); r.status != 200 {
			t.Fatalf("ListBooks: %d %s", r.status, r.body)
		}
	}
	wantStatus(t, get(t, gw.base, "/v1/shelves/1/books/no-such-book"), 404, 5, "")
	if r := get(t, gw.base, "/limited/shelves/1"); r.status != 200 {
		t.Fatalf("first limited GetShelf: %d %s", r.status, r.body)
	}
	// The limit guards the method on its annotation binding too: one chain
	// per method, counted under the method.
	wantStatus(t, get(t, gw.base, "/limited/shelves/1"), 429, 8, "")
	wantStatus(t, get(t, gw.base, "/v1/shelves/1"), 429, 8, "")

	code, metrics := adminGet(t, admin, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, metrics)
	}
	for _, want := range []string{
		`rosetta_calls_total{code="OK",protocol="http",route="example.library.v1.LibraryService/ListBooks"} 2`,
		`rosetta_calls_total{code="NotFound",protocol="http",route="example.library.v1.LibraryService/GetBook"} 1`,
		`rosetta_calls_total{code="OK",protocol="http",route="example.library.v1.LibraryService/GetShelf"} 1`,
		`rosetta_calls_total{code="ResourceExhausted",protocol="http",route="example.library.v1.LibraryService/GetShelf"} 2`,
		`rosetta_call_duration_seconds_count{protocol="http",route="example.library.v1.LibraryService/ListBooks"} 2`,
		`rosetta_ratelimit_decisions_total{decision="allowed",policy="tight"} 1`,
		`rosetta_ratelimit_decisions_total{decision="refused",policy="tight"} 2`,
		`rosetta_validation_response_violations_total 0`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(metrics, "\ngo_goroutines ") || !strings.Contains(metrics, "\nprocess_resident_memory_bytes ") {
		t.Error("/metrics lacks the Go runtime and process metrics")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}

	code, body := adminGet(t, admin, "/routes")
	var table struct {
		Routes  []struct{ Method, Template, Target, Upstream string }
		Methods []struct {
			Method      string
			Ways, Chain []string
		}
	}
	if err := json.Unmarshal([]byte(body), &table); code != 200 || err != nil {
		t.Fatalf("/routes: %d %v\n%s", code, err, body)
	}
	rows := table.Routes
	limited := false
	for _, m := range table.Methods {
		limited = limited || m.Method == "example.library.v1.LibraryService/GetShelf" && slices.Contains(m.Chain, "tight") &&
			slices.Contains(m.Ways, "REST GET /v1/{name=shelves/*}") && slices.Contains(m.Ways, "REST GET /limited/{name=shelves/*}")
	}
	if !limited {
		t.Errorf("/routes lacks GetShelf's chain with the rate limit and its ways in:\n%s", body)
	}
	found := false
	for _, r := range rows {
		found = found || r.Method == "GET" && r.Template == "/v1/{parent=shelves/*}/books" &&
			r.Target == "example.library.v1.LibraryService.ListBooks" && r.Upstream == "library"
	}
	if !found {
		t.Errorf("/routes lacks GET /v1/{parent=shelves/*}/books → ListBooks:\n%s", body)
	}
	exit, out, stderr := runRosetta(t, "routes", "-config", gw.config)
	if exit != 0 {
		t.Fatalf("rosetta routes: %d\n%s", exit, stderr)
	}
	out, _, _ = strings.Cut(out, "\nCHAINS")
	if lines := strings.Count(strings.TrimSpace(out), "\n"); lines != len(rows) {
		t.Errorf("rosetta routes prints %d routes, /routes has %d", lines, len(rows))
	}

	if code, body := adminGet(t, admin, "/nope"); code != 404 || !strings.Contains(body, `"code":5`) {
		t.Errorf("/nope: %d %s, want 404 NOT_FOUND", code, body)
	}
}

// TestAdminReadinessDrains: /readyz is 200 while serving and 503 as soon as
// SIGTERM starts the drain, while a held call is still in flight; /healthz
// stays 200 until the process ends.
func TestAdminReadinessDrains(t *testing.T) {
	t.Parallel()
	const ping = "/example.library.v1.LibraryService/Ping"
	up := startObservedUpstream(t, ping)
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), up.addr, "    auto_mapping: true\n", "shutdown_timeout: 10s\n"))
	if code, body := adminGet(t, admin, "/readyz"); code != 200 {
		t.Fatalf("/readyz while serving: %d %s", code, body)
	}
	if code, body := adminGet(t, admin, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Post(gw.base+ping, "application/json", strings.NewReader(`{"message":"draining"}`))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-up.entered:
	case <-time.After(startTimeout):
		t.Fatal("the call did not reach the upstream")
	}
	gw.stopping = true
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to answer 503 after SIGTERM", func() bool {
		code, _ := adminGet(t, admin, "/readyz")
		return code == http.StatusServiceUnavailable
	})
	if gw.exited() {
		t.Fatal("the gateway exited with a call in flight")
	}
	if code, _ := adminGet(t, admin, "/healthz"); code != 200 {
		t.Errorf("/healthz while draining: %d, want 200", code)
	}
	close(up.release)
	select {
	case r := <-done:
		if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"message":"draining"`) {
			t.Errorf("in-flight call: %d %q %v", r.status, r.body, r.err)
		}
	case <-time.After(requestTimeout):
		t.Fatal("the in-flight call did not finish")
	}
	if code := gw.stop(t); code != 0 {
		t.Errorf("rosetta exited with status %d, want 0\nstderr:\n%s", code, gw.stderr)
	}
}

// TestAdminMQTT: with the embedded broker configured, /readyz is 200 only
// once the broker takes connections, and a device's publish is counted
// under its rule with protocol mqtt.
func TestAdminMQTT(t *testing.T) {
	t.Parallel()
	up := startIoTUpstream(t)
	broker, admin := freePort(t), freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q, admin: %q", broker, admin), iotConfig(up.addr, anonymous, uplinkRoutes))
	if code, body := adminGet(t, admin, "/readyz"); code != 200 {
		t.Fatalf("/readyz while serving: %d %s", code, body)
	}
	c, err := net.Dial("tcp", broker)
	if err != nil {
		t.Fatalf("/readyz is 200 but the broker refuses connections: %v", err)
	}
	c.Close()
	if out, code := publish(t, broker, "mqttv5", "-u", "d1", "-q", "1", "-t", "devices/d1/telemetry", "-m", `{"id":"m1","reading":{"temperature":21.5}}`); code != 0 {
		t.Fatalf("mosquitto_pub: status %d\n%s", code, out)
	}
	const want = `rosetta_calls_total{code="OK",protocol="mqtt",route="example.iot.v1.DeviceService/Record"} 1`
	waitFor(t, "the MQTT call in /metrics", func() bool {
		_, metrics := adminGet(t, admin, "/metrics")
		return strings.Contains(metrics, "\n"+want+"\n")
	})
}
