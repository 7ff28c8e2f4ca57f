package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rosettagw/rosetta/discovery/discoverytest"
)

func discoveryConfig(upstream string) string {
	return fmt.Sprintf(`schemas:
  - descriptor_set: ../proto/library.binpb
upstreams:
  library: %s
services:
  - name: example.library.v1.LibraryService
    upstream: library
`, upstream)
}

// TestDiscoveryPooled: a discovered upstream is dialled with the first
// set, and a generation built from the same configuration on the same pool
// shares its client (and watch); a changed discovery makes a new one.
func TestDiscoveryPooled(t *testing.T) {
	c, addr := discoverytest.NewConsul(t)
	pool := NewPool()
	build := func(tag string) *Generation {
		t.Helper()
		cfg, err := ParseConfig([]byte(discoveryConfig(fmt.Sprintf("{grpc: {}, discovery: {consul: {address: %q, service: library, tag: %q}}}", addr, tag))))
		if err != nil {
			t.Fatal(err)
		}
		g, err := Build(context.Background(), cfg, Options{Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		return g
	}
	c.Set("library", discoverytest.ConsulInstance{ID: "a", Node: "n", NodeAddr: "127.0.0.1", Port: 9001, Weight: 1, Status: "passing", Tags: []string{"v1"}})
	g1, g2 := build("v1"), build("v1")
	if g1.upstreams["library"] != g2.upstreams["library"] {
		t.Error("the same discovery configuration made a new client")
	}
	cfg, _ := ParseConfig([]byte(discoveryConfig(fmt.Sprintf("{grpc: {}, discovery: {consul: {address: %q, service: library, tag: v2}, initial_timeout: 200ms}}", addr))))
	if _, err := Build(context.Background(), cfg, Options{Pool: pool}); err == nil || !strings.Contains(err.Error(), "found no endpoints within 200ms") {
		t.Errorf("a discovery that finds nothing: %v", err)
	}
}

// TestDiscoveryErrors: what a discovery section may not be.
func TestDiscoveryErrors(t *testing.T) {
	for _, tc := range []struct{ upstream, want string }{
		{"{grpc: {targets: [127.0.0.1:1]}, discovery: {dns: {name: x, port: 1}}}", "set grpc.targets (or http.targets) or discovery, not both"},
		{"{grpc: {}, discovery: {}}", "set exactly one of dns, etcd, consul"},
		{"{grpc: {}, discovery: {dns: {name: x}, etcd: {endpoints: [a], prefix: /p}}}", "set exactly one of dns, etcd, consul"},
		{"{grpc: {}, discovery: {dns: {name: x}}}", "port (1-65535) unless srv"},
		{"{grpc: {}, discovery: {etcd: {endpoints: [http://127.0.0.1:1]}}}", "etcd: set endpoints and prefix"},
		{"{grpc: {}, discovery: {consul: {address: 127.0.0.1:1}}}", "consul: set service"},
		{"{grpc: {}, discovery: {consul: {service: s, token_file: /nonexistent}}}", "consul.token_file"},
		{"{grpc: {}, discovery: {dns: {name: x, port: 1}, max_endpoints: -1}}", "max_endpoints must not be negative"},
	} {
		cfg, err := ParseConfig([]byte(discoveryConfig(tc.upstream)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.upstream, err, tc.want)
		}
	}
}
