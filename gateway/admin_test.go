package gateway

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/admin"
)

// TestMetricsCountEveryWayIn builds the IoT example with metrics and checks
// that a call of every route (REST, the per-method routes of WebSocket and
// gRPC, MQTT rules) is counted under the chain of its method, with its
// protocol.
func TestMetricsCountEveryWayIn(t *testing.T) {
	cfg, err := LoadConfig("../examples/iot/rosetta.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := admin.NewMetrics()
	g, err := Build(context.Background(), cfg, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	type routed struct {
		r     *router.Route
		p     router.Protocol
		label string
	}
	// A method of the schema is counted under its name whichever way it is
	// reached; a route without one (a watch, a state route) under its own.
	label := func(r *router.Route) string {
		if r.Method != nil {
			if d, err := g.schema.Files().FindDescriptorByName(r.Method.FullName()); err == nil && d == r.Method {
				return strings.TrimPrefix(methodPath(r.Method), "/")
			}
		}
		return r.HTTPMethod + " " + r.Template.Source
	}
	var all []routed
	for _, r := range g.routes.HTTP.Routes() {
		all = append(all, routed{r, router.HTTP, label(r)})
	}
	for _, r := range g.routes.Methods {
		all = append(all, routed{r, router.GRPC, label(r)})
	}
	for _, rule := range g.mqtt.rules {
		all = append(all, routed{rule.Route, router.MQTT, label(rule.Route)})
	}
	if len(g.routes.Methods) == 0 || len(g.mqtt.rules) == 0 {
		t.Fatalf("the example has %d methods and %d MQTT rules, want some of each", len(g.routes.Methods), len(g.mqtt.rules))
	}
	// The decode fails, so no call reaches the (absent) upstream.
	bad := func() ([]byte, error) { return nil, status.Error(codes.InvalidArgument, "bad") }
	for _, c := range all {
		c.r.Handler.Handle(context.Background(), &router.Call{Route: c.r, Protocol: c.p, Target: c.r.Target, Decode: bad})
	}

	rec := httptest.NewRecorder()
	admin.New(admin.Options{Metrics: m, Ready: func() bool { return true }}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	for _, c := range all {
		want := `rosetta_calls_total{code="InvalidArgument",protocol="` + string(c.p) + `",route="` + c.label + `"} `
		if !strings.Contains(string(body), want) {
			t.Errorf("no count for %s (%s)", c.label, c.p)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
