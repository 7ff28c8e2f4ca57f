package main

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

// TestAdminMetricsCountEveryRoute builds the IoT example with an admin
// listener and checks that a call of every route (REST, the per-method
// routes of WebSocket and gRPC, MQTT rules) is counted under its route.
func TestAdminMetricsCountEveryRoute(t *testing.T) {
	cfg, err := LoadConfig("../../examples/iot/rosetta.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen.Admin = "127.0.0.1:0"
	g, err := build(context.Background(), cfg)
	defer g.close()
	if err != nil {
		t.Fatal(err)
	}
	type routed struct {
		r     *router.Route
		p     router.Protocol
		label string
	}
	var all []routed
	for _, r := range g.table.Routes() {
		all = append(all, routed{r, router.HTTP, r.HTTPMethod + " " + r.Template.Source})
	}
	for path, r := range g.methods {
		all = append(all, routed{r, router.GRPC, "POST " + path})
	}
	for _, rule := range g.mqtt.rules {
		all = append(all, routed{rule.Route, router.MQTT, "MQTT " + rule.Filter})
	}
	if len(g.methods) == 0 || len(g.mqtt.rules) == 0 {
		t.Fatalf("the example has %d methods and %d MQTT rules, want some of each", len(g.methods), len(g.mqtt.rules))
	}
	// The decode fails, so no call reaches the (absent) upstream.
	bad := func() ([]byte, error) { return nil, status.Error(codes.InvalidArgument, "bad") }
	for _, c := range all {
		c.r.Handler.Handle(context.Background(), &router.Call{Route: c.r, Protocol: c.p, Target: c.r.Target, Decode: bad})
	}

	rec := httptest.NewRecorder()
	admin.New(admin.Options{Metrics: g.metrics, Ready: func() bool { return true }}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	for _, c := range all {
		want := `rosetta_calls_total{code="InvalidArgument",protocol="` + string(c.p) + `",route="` + c.label + `"} `
		if !strings.Contains(string(body), want) {
			t.Errorf("no count for %s (%s)", c.label, c.p)
		}
	}
}

// TestAdminMetricsOffWithoutListener: without listen.admin no metric is
// kept.
func TestAdminMetricsOffWithoutListener(t *testing.T) {
	cfg, err := LoadConfig("../../examples/iot/rosetta.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := build(context.Background(), cfg)
	defer g.close()
	if err != nil {
		t.Fatal(err)
	}
	if g.metrics != nil {
		t.Fatal("metrics built without listen.admin")
	}
}
