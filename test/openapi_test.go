package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"go.yaml.in/yaml/v3"
)

// openAPIDoc fetches and loads the gateway's document.
func openAPIDoc(t *testing.T, gw *rosetta) (*openapi3.T, []byte) {
	t.Helper()
	r := get(t, gw.base, "/openapi.json")
	if r.status != 200 {
		t.Fatalf("/openapi.json: %d %s", r.status, r.body)
	}
	wantContentType(t, r, "application/json")
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("loading /openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("/openapi.json does not validate: %v", err)
	}
	return doc, r.body
}

// validateCall makes one call and validates the request and the answer
// against the document's operation.
func validateCall(t *testing.T, rt routers.Router, base, method, path, body string) {
	t.Helper()
	ctx := context.Background()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := rt.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: no operation in the document: %v", method, path, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		t.Errorf("%s %s: the request breaks the document: %v", method, path, err)
	}
	req, _ = http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header = in.Request.Header
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s: the answer (%d) breaks the document: %v\n%s", method, path, resp.StatusCode, err, b)
	}
}

// TestOpenAPIDocument runs the gateway over the example library and reads
// its OpenAPI document: it validates (kin-openapi, and an npm validator of
// the OpenAPI 3.1 JSON Schema), describes the bindings, real requests and
// answers match it (openapi3filter), it changes with a reload, and an
// independent client (openapi-client-axios, run by node)
// calls the library through it.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed")
	}
	dir := filepath.Join(repoRoot, "test", "openapi")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openapi-client-axios")); err != nil {
		t.Fatal("the npm packages of test/openapi are not installed; scripts/test.sh installs them (cd test/openapi && npm ci)")
	}
	lib := startLibrary(t)
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), libraryConfig(descriptorSetSchema(), lib, "    auto_mapping: true\n", ""))

	doc, _ := openAPIDoc(t, gw)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	books := doc.Paths.Value("/v1/shelves/{parent_shelves}/books")
	if books == nil || books.Get == nil || books.Post == nil {
		t.Fatalf("no ListBooks and CreateBook operations; paths: %v", doc.Paths.InMatchingOrder())
	}
	if p := books.Get.Parameters.GetByInAndName("query", "filter.genre"); p == nil || len(p.Schema.Value.Enum) != 5 {
		t.Errorf("ListBooks has no filter.genre parameter with the genres' names")
	}
	book := doc.Components.Schemas["example.library.v1.Book"]
	if book == nil || book.Value.Properties["priceCents"] == nil || !book.Value.Properties["priceCents"].Value.Type.Is("string") {
		t.Errorf("no Book schema with priceCents as a string")
	}
	if doc.Paths.Value("/v2/shelves/{name_shelves}") != nil {
		t.Fatal("/v2 is described before it is configured")
	}
	y := get(t, gw.base, "/openapi.yaml")
	var ydoc map[string]any
	if err := yaml.Unmarshal(y.body, &ydoc); y.status != 200 || err != nil || ydoc["openapi"] != "3.1.0" {
		t.Errorf("/openapi.yaml: %d, %v, openapi %v", y.status, err, ydoc["openapi"])
	}

	// Real calls match the document: kin-openapi's openapi3filter checks
	// each request and the gateway's answer against their operation.
	doc.Servers = openapi3.Servers{{URL: gw.base}}
	rt, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/shelves/1", ""},
		{"GET", "/v1/shelves/1/books/dune", ""},
		{"GET", "/v1/shelves/1/books?pageSize=2&filter.genre=GENRE_FICTION&tags=classic", ""},
		{"GET", "/v1/shelves/1/books/dune/title", ""},
		{"POST", "/v1/shelves/2/books?bookId=filtered", `{"title": "Checked", "pageCount": 10, "tags": ["a"], "isbn": ""}`},
		{"POST", "/example.library.v1.LibraryService/Ping", `{"message": "hi"}`},
		{"GET", "/v1/shelves/nope", ""}, // an error: google.rpc.Status
	} {
		validateCall(t, rt, gw.base, c.method, c.path, c.body)
	}

	// The independent client: validates the document, then calls.
	ctx, cancel := context.WithTimeout(context.Background(), 3*requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.js", gw.base)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node client.js: %v\n%s\n%s", err, out, stderr)
	}
	type call struct {
		Status int
		URL    string
		Data   map[string]any
		Error  string
	}
	var got struct {
		Valid   bool
		Version string
		Errors  any
		Calls   map[string]call
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %s: %v", out, err)
	}
	if !got.Valid || got.Version != "3.1" {
		t.Errorf("the OpenAPI 3.1 schema validator refuses the document (version %q): %v", got.Version, got.Errors)
	}
	for name, check := range map[string]func(c call) bool{
		"LibraryService_GetShelf": func(c call) bool { return c.Data["theme"] == "fiction" && c.URL == "/v1/shelves/1" },
		"LibraryService_GetBook":  func(c call) bool { return c.Data["title"] == "Dune" && c.Data["priceCents"] == "999" },
		"LibraryService_ListBooks": func(c call) bool {
			bs, _ := c.Data["books"].([]any)
			if len(bs) != 1 {
				return false // pageSize=1 was not sent
			}
			b, _ := bs[0].(map[string]any)
			return b["genre"] == "GENRE_FICTION"
		},
		"LibraryService_CreateBook": func(c call) bool {
			return c.Data["name"] == "shelves/1/books/openapi" && c.Data["title"] == "Made through OpenAPI" && c.Data["priceCents"] == "1200"
		},
		"LibraryService_Ping": func(c call) bool { return c.Data["message"] != nil },
	} {
		c, ok := got.Calls[name]
		if !ok || c.Status != 200 || !check(c) {
			t.Errorf("%s through the document: %+v", name, c)
		}
	}

	// A reload that adds a binding changes the document.
	cfg := libraryConfig(descriptorSetSchema(), lib, "    auto_mapping: true\n", `routes:
  - get: /v2/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
`)
	if err := os.WriteFile(gw.config, []byte(fmt.Sprintf("listen: {http: %q, admin: %q}\nreload: {watch: false}\n%s", strings.TrimPrefix(gw.base, "http://"), admin, cfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, admin); code != 200 {
		t.Fatalf("POST /admin/reload: %d %s", code, body)
	}
	doc2, _ := openAPIDoc(t, gw)
	if v2 := doc2.Paths.Value("/v2/shelves/{name_shelves}"); v2 == nil || v2.Get == nil || v2.Get.OperationID != "LibraryService_GetShelf_3" {
		t.Errorf("after the reload, no GET /v2/shelves/{name_shelves} for GetShelf")
	}
	if g1, g2 := doc.Extensions["x-rosetta-generation"], doc2.Extensions["x-rosetta-generation"]; fmt.Sprint(g1) == fmt.Sprint(g2) {
		t.Errorf("x-rosetta-generation %v before and %v after the reload", g1, g2)
	}
	if r := get(t, gw.base, "/v2/shelves/1"); r.status != 200 {
		t.Errorf("GET /v2/shelves/1: %d", r.status)
	}
}
