package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rosettagw/rosetta/router"
)

// splitConfig is a configuration of the library service with the given
// service lines and routes.
func splitConfig(service, routes string) string {
	return fmt.Sprintf(`schemas:
  - descriptor_set: ../proto/library.binpb
upstreams:
  v1: {grpc: {targets: [127.0.0.1:1]}, timeout: 2s}
  v2: {grpc: {targets: [127.0.0.1:2]}, timeout: 3s}
  web: {http: {url: http://127.0.0.1:3}}
services:
  - name: example.library.v1.LibraryService
%s%s`, service, routes)
}

func buildSplit(t *testing.T, cfg string) (*Generation, error) {
	t.Helper()
	c, err := ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(context.Background(), c, Options{})
	if g != nil {
		t.Cleanup(g.Close)
	}
	return g, err
}

// TestSplitBuild: a service's split is one Split shared by its routes,
// with the split step in the method's chain, the longest default deadline
// of its upstreams, and a route may split on its own.
func TestSplitBuild(t *testing.T) {
	g, err := buildSplit(t, splitConfig(`    split:
      - {upstream: v1, weight: 90}
      - {upstream: v2, weight: 10, pin: {header: X-Canary}}
    sticky: {cookie: uid}
`, `routes:
  - get: /v2/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
    split: [{upstream: v2, weight: 1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := g.routes.Methods["/example.library.v1.LibraryService/GetShelf"]
	s, ok := r.Invoker.(*router.Split)
	if !ok {
		t.Fatalf("the method's invoker is %T, want a split", r.Invoker)
	}
	if want := "split(v1 90, v2 10; pin header x-canary = 1 → v2; sticky: identity, cookie uid)"; s.String() != want {
		t.Errorf("split %q, want %q", s, want)
	}
	if r.Timeout.Seconds() != 3 || r.Upstream != "v1" {
		t.Errorf("timeout %v, upstream %q; want 3s (the longest) and v1 (the first)", r.Timeout, r.Upstream)
	}
	for _, hr := range g.routes.HTTP.Routes() {
		if hr.Method == nil {
			continue // the OpenAPI document's
		}
		own := hr.Template.Source == "/v2/{name=shelves/*}"
		if got, ok := hr.Invoker.(*router.Split); !ok || (got == s) == own {
			t.Errorf("%s: invoker %v, want the service's split unless the route has its own", hr, hr.Invoker)
		}
	}
	if chain := g.methods["example.library.v1.LibraryService/GetShelf"].Chain; !slices.Contains(chain, "split") {
		t.Errorf("chain %v lacks the split step", chain)
	}
}

// TestSplitErrors: what a split may not be.
func TestSplitErrors(t *testing.T) {
	for _, tc := range []struct{ service, routes, want string }{
		{"    upstream: v1\n    split: [{upstream: v2, weight: 1}]\n", "", "set upstream or split, not both"},
		{"    split: [{upstream: nope, weight: 1}]\n", "", `split[0]: unknown upstream "nope"`},
		{"    split: [{upstream: web, weight: 1}]\n", "", "not a gRPC upstream"},
		{"    split: [{upstream: v1, weight: -1}, {upstream: v2, weight: 2}]\n", "", "weight must not be negative"},
		{"    split: [{upstream: v1, weight: 0}]\n", "", "the weights add up to zero"},
		{"    split: [{upstream: v1, weight: 1}, {upstream: v1, weight: 1}]\n", "", "listed twice"},
		{"    split: [{upstream: v1, weight: 1, pin: {value: x}}]\n", "", "set a header, a cookie or both"},
		{"    split: [{upstream: v1, weight: 1, pin: {header: 'a b'}}]\n", "", "not a header name"},
		{"    upstream: v1\n    sticky: {header: X-User}\n", "", "sticky needs a split"},
		{"    upstream: v1\n", "routes:\n  - {get: /x, upstream: web, split: [{upstream: v1, weight: 1}]}\n", "split and sticky are for services and routes with a call"},
	} {
		_, err := buildSplit(t, splitConfig(tc.service, tc.routes))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.service, err, tc.want)
		}
	}
}
