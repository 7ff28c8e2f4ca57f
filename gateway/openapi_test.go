package gateway

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"

	"github.com/rosettagw/rosetta/router"
)

// TestOpenAPIExamplesValidate builds every example configuration and checks
// that its OpenAPI document validates as OpenAPI 3.1 and describes its
// routes: the library's bindings, the order example's aggregate, the IoT
// example's MQTT downlink, state and watch routes.
func TestOpenAPIExamplesValidate(t *testing.T) {
	for _, tt := range []struct {
		config string
		ops    []string // "METHOD path operationId"
	}{
		{"../examples/library/rosetta.yaml", []string{
			"GET /v1/shelves/{name_shelves} LibraryService_GetShelf",
			"GET /v1/shelves/{name_shelves}/books/{name_books} LibraryService_GetBook",
			"POST /example.library.v1.LibraryService/Ping LibraryService_Ping",
		}},
		{"../examples/order/rosetta.yaml", []string{"POST /api/order/create post_api_order_create"}},
		{"../examples/iot/rosetta.yaml", []string{
			"POST /v1/devices/{device_id}/commands post_v1_devices_device_id_commands",
			"GET /v1/devices/{device_id}/telemetry get_v1_devices_device_id_telemetry",
			"GET /v1/devices/{device_id}/events get_v1_devices_device_id_events",
		}},
	} {
		t.Run(filepath.Base(filepath.Dir(tt.config)), func(t *testing.T) {
			cfg, err := LoadConfig(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Build(context.Background(), cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			doc, err := g.OpenAPI()
			if err != nil {
				t.Fatal(err)
			}
			if err := doc.Validate(context.Background()); err != nil {
				t.Fatalf("invalid document: %v", err)
			}
			// What a client reads: the served JSON, loaded afresh.
			loaded, err := openapi3.NewLoader().LoadFromData(g.openapi.get().json)
			if err != nil {
				t.Fatal(err)
			}
			if err := loaded.Validate(context.Background()); err != nil {
				t.Fatalf("the served JSON does not validate: %v", err)
			}
			for _, want := range tt.ops {
				f := strings.Fields(want)
				item := loaded.Paths.Value(f[1])
				if item == nil || item.GetOperation(f[0]) == nil {
					t.Errorf("no operation %s %s", f[0], f[1])
					continue
				}
				if id := item.GetOperation(f[0]).OperationID; id != f[2] {
					t.Errorf("%s %s: operationId %q, want %q", f[0], f[1], id, f[2])
				}
			}
			if loaded.Paths.Value("/openapi.json") != nil {
				t.Error("the document describes itself")
			}
		})
	}
}

// TestOpenAPIServedByChain checks the document's routes: JSON and YAML,
// through their chain (the global policies apply), and gone when switched
// off.
func TestOpenAPIServedByChain(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "hmac.jwk")
	if err := os.WriteFile(key, []byte(`{"kty":"oct","kid":"k","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := `
schemas: [{descriptor_set: ` + abs(t, "../proto/library.binpb") + `}]
upstreams: {library: {grpc: {targets: [127.0.0.1:1]}}}
services: [{name: example.library.v1.LibraryService, upstream: library, policies: [bearer, keys]}]
routes:
  - get: /v1/open/{parent=shelves/*}/books
    call: example.library.v1.LibraryService/ListBooks
    policies: [open]
  - get: /v1/certified/{name=shelves/*/books/*}
    call: example.library.v1.LibraryService/GetBook
    policies: [certs, admins]
policies:
  certs: {mtls: {identity: subject_cn}}
  bearer: {jwt: {issuer: https://id.test, audience: [rosetta], algorithms: [HS256], key_files: [` + key + `]}}
  keys: {api_key: {header: X-Key, query_param: key, keys: [{sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, identity: ci}]}}
  open: {authorize: {anonymous: true}}
  admins: {authorize: {scopes: [library.admin]}}
  local: {ip_filter: {allow: [10.0.0.0/8]}}
`
	build := func(extra string) *Generation {
		t.Helper()
		cfg, err := ParseConfig([]byte(base + extra))
		if err != nil {
			t.Fatal(err)
		}
		g, err := Build(context.Background(), cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		return g
	}
	get := func(g *Generation, path string) (int, string, []byte) {
		t.Helper()
		m := g.routes.HTTP.Lookup("GET", path, nil)
		if m.Route == nil {
			return 404, "", nil
		}
		c := &router.Call{Route: m.Route, Protocol: router.HTTP, Target: m.Route.Target, Decode: func() ([]byte, error) { return nil, nil }}
		if err := m.Route.Handler.Handle(context.Background(), c); err != nil {
			return 403, "", nil
		}
		return c.Reply.HTTPStatus, c.Reply.ContentType, c.Reply.Message
	}

	g := build("")
	code, ct, body := get(g, "/openapi.json")
	if code != 200 || ct != "application/json" {
		t.Fatalf("/openapi.json: %d %s", code, ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json: %v, openapi %v", err, doc["openapi"])
	}
	code, ct, ybody := get(g, "/openapi.yaml")
	var ydoc map[string]any
	if err := yaml.Unmarshal(ybody, &ydoc); code != 200 || ct != "application/yaml" || err != nil || ydoc["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.yaml: %d %s %v", code, ct, err)
	}

	// Security: the schemes of the policies, on the operations they guard.
	loaded, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	schemes := loaded.Components.SecuritySchemes
	if s := schemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" || s.Value.BearerFormat != "JWT" {
		t.Errorf("bearer scheme: %+v", s)
	}
	if s := schemes["keys"]; s == nil || s.Value.Type != "apiKey" || s.Value.In != "header" || s.Value.Name != "X-Key" {
		t.Errorf("keys scheme: %+v", s)
	}
	if s := schemes["keys.query"]; s == nil || s.Value.In != "query" || s.Value.Name != "key" {
		t.Errorf("keys.query scheme: %+v", s)
	}
	sec := func(method, path string) []string {
		op := loaded.Paths.Value(path).GetOperation(method)
		if op == nil || op.Security == nil {
			return nil
		}
		var out []string
		for _, req := range *op.Security {
			var names []string
			for n := range req {
				names = append(names, n)
			}
			slices.Sort(names)
			out = append(out, strings.Join(names, "+"))
		}
		return out
	}
	if got := sec("GET", "/v1/shelves/{name_shelves}"); !slices.Equal(got, []string{"bearer", "keys", "keys.query"}) {
		t.Errorf("GetShelf security %v, want any of bearer, keys, keys.query", got)
	}
	// ListBooks is also reached by a route naming "open": anonymous calls
	// pass on each of its bindings.
	if got := sec("GET", "/v1/shelves/{parent_shelves}/books"); !slices.Equal(got, []string{"bearer", "keys", "keys.query", ""}) {
		t.Errorf("ListBooks security %v, want bearer, keys, keys.query or none", got)
	}
	if got := sec("GET", "/v1/open/shelves/{parent_shelves}/books"); len(got) != 4 {
		t.Errorf("ListBooks (open route) security %v", got)
	}
	// GetBook adds a client certificate, and the scopes of "admins".
	if got := sec("GET", "/v1/shelves/{name_shelves}/books/{name_books}"); !slices.Equal(got, []string{"bearer", "keys", "keys.query", "certs"}) {
		t.Errorf("GetBook security %v, want any of bearer, keys, keys.query, certs", got)
	}
	if s := schemes["certs"]; s == nil || s.Value.Type != "mutualTLS" {
		t.Errorf("certs scheme: %+v", s)
	}
	if op := loaded.Paths.Value("/v1/shelves/{name_shelves}/books/{name_books}").Get; op.Security != nil && len(*op.Security) > 0 {
		if scopes := (*op.Security)[0]["bearer"]; !slices.Equal(scopes, []string{"library.admin"}) {
			t.Errorf("GetBook bearer scopes %v, want [library.admin]", scopes)
		}
	}

	// The global policies guard the document: a refused call gets no
	// document.
	if code, _, _ := get(build("security: {policies: [local]}\n"), "/openapi.json"); code == 200 {
		t.Error("the ip_filter of security.policies did not guard /openapi.json")
	}
	// Scopes of an authorize policy are listed with each scheme.
	g = build("openapi: {path: /api/spec.json, policies: [bearer, admins]}\n")
	if code, _, _ := get(g, "/api/spec.json"); code == 200 {
		t.Error("openapi.policies did not guard the document")
	}
	if code, _, _ := get(g, "/api/spec.yaml"); code == 200 {
		t.Error("openapi.policies did not guard the YAML document")
	}
	if code, _, _ := get(g, "/openapi.json"); code != 404 {
		t.Errorf("/openapi.json with openapi.path set: %d, want 404", code)
	}
	if code, _, _ := get(build("openapi: {enabled: false}\n"), "/openapi.json"); code != 404 {
		t.Errorf("/openapi.json with openapi.enabled false: %d, want 404", code)
	}
	// A path with variables, and two routes on one path, are refused.
	for _, extra := range []string{"openapi: {path: \"/v1/{x}\"}\n", "openapi: {path: /spec, yaml_path: /spec}\n"} {
		cfg, err := ParseConfig([]byte(base + extra))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), "openapi") {
			t.Errorf("%s: built (%v), want an openapi error", strings.TrimSpace(extra), err)
		}
	}
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestExplorerPage checks the explorer's files: the page loads Swagger UI
// from the gateway itself and points it at the document.
func TestExplorerPage(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
schemas: [{descriptor_set: ` + abs(t, "../proto/library.binpb") + `}]
upstreams: {library: {grpc: {targets: [127.0.0.1:1]}}}
services: [{name: example.library.v1.LibraryService, upstream: library}]
openapi: {path: /spec.json, explorer_path: /explore}
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	get := func(path string) (string, string) {
		m := g.routes.HTTP.Lookup("GET", path, nil)
		if m.Route == nil {
			t.Fatalf("no route GET %s", path)
		}
		c := &router.Call{Route: m.Route, Protocol: router.HTTP, Target: m.Route.Target, Decode: func() ([]byte, error) { return nil, nil }}
		if err := m.Route.Handler.Handle(context.Background(), c); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return c.Reply.ContentType, string(c.Reply.Message)
	}
	ct, page := get("/explore")
	if !strings.HasPrefix(ct, "text/html") || !strings.Contains(page, `src="/explore/swagger-ui-bundle.js"`) || strings.Contains(page, "https://") {
		t.Errorf("page %s:\n%s", ct, page)
	}
	if _, init := get("/explore/init.js"); !strings.Contains(init, `url: "/spec.json"`) {
		t.Errorf("init.js:\n%s", init)
	}
	if ct, js := get("/explore/swagger-ui-bundle.js"); !strings.HasPrefix(ct, "text/javascript") || !strings.Contains(js, "SwaggerUIBundle") {
		t.Errorf("swagger-ui-bundle.js: %s, %d bytes", ct, len(js))
	}
	if ct, _ := get("/explore/swagger-ui.css"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("swagger-ui.css: %s", ct)
	}
	cfg.OpenAPI.Explorer = new(bool)
	g2, err := Build(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if m := g2.routes.HTTP.Lookup("GET", "/explore", nil); m.Route != nil {
		t.Error("explorer: false still serves the page")
	}
}
