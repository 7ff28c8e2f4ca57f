package openapi

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// TestLibraryOperations checks one operation per binding of the example
// library: paths (multi-segment variables written out, custom verbs,
// additional bindings), path and query parameters, bodies and responses.
func TestLibraryOperations(t *testing.T) {
	s := librarySchema(t, false)
	doc := build(t, libraryEndpoints(t, s, translate.JSONOptions{}), Options{})
	tests := []struct {
		method, path, id string
		params           []string // every parameter, "in:name"
		body             string   // media type of the request body, "" for none
		ok               string   // media types of the 200 answer
	}{
		{"GET", "/v1/shelves/{name_shelves}", "LibraryService_GetShelf", []string{"path:name_shelves"}, "", "application/json"},
		{"HEAD", "/v1/shelves/{name_shelves}", "LibraryService_GetShelf_2", []string{"path:name_shelves"}, "", ""},
		{"GET", "/v1/shelves/{parent_shelves}/books", "LibraryService_ListBooks", []string{
			"path:parent_shelves", "query:pageSize", "query:pageToken", "query:filter.author.name", "query:filter.author.born",
			"query:filter.genre", "query:filter.minPages", "query:filter.publishedAfter", "query:tags", "query:genres",
			"query:readMask", "query:maxReadTime", "query:showUnavailable", "query:minPriceCents", "query:minRating",
			"query:cursor", "query:labels"}, "", "application/json"},
		{"POST", "/v1/shelves/{parent_shelves}/books", "LibraryService_CreateBook", []string{"path:parent_shelves", "query:bookId"}, "application/json", "application/json"},
		// PATCH with body: "book" leaves update_mask to the query; PUT with
		// body: "*" takes no query parameter at all.
		{"GET", "/v1/shelves/{name_shelves}/books/{name_books}", "LibraryService_GetBook", []string{"path:name_shelves", "path:name_books"}, "", "application/json"},
		{"PATCH", "/v1/shelves/{name_shelves}/books/{name_books}", "LibraryService_UpdateBook", []string{"path:name_shelves", "path:name_books", "query:updateMask"}, "application/json", "application/json"},
		{"PUT", "/v1/shelves/{name_shelves}/books/{name_books}", "LibraryService_UpdateBook_2", []string{"path:name_shelves", "path:name_books"}, "application/json", "application/json"},
		{"DELETE", "/v1/shelves/{name_shelves}/books/{name_books}", "LibraryService_DeleteBook", []string{"path:name_shelves", "path:name_books"}, "", "application/json"},
		{"GET", "/v1/shelves/{parent_shelves}/books:batchGet", "LibraryService_BatchGetBooks", []string{"path:parent_shelves", "query:names"}, "", "application/json"},
		{"POST", "/v1/shelves/{name_shelves}/books/{name_books}:move", "LibraryService_MoveBook", []string{"path:name_shelves", "path:name_books"}, "application/json", "application/json"},
		{"GET", "/v1/shelves/{name_shelves}/books/{name_books}/title", "LibraryService_GetBookTitle", []string{"path:name_shelves", "path:name_books"}, "", "application/json"},
		{"GET", "/v1/shelves/{name_shelves}/books/{name_books}:download", "LibraryService_DownloadBook", []string{"path:name_shelves", "path:name_books"}, "", "*/*"},
		{"PUT", "/v1/shelves/{name_shelves}/books/{name_books}/text", "LibraryService_UploadBookText", []string{"path:name_shelves", "path:name_books"}, "*/*", "application/json"},
		{"GET", "/v1/assets/{path}", "LibraryService_GetAsset", []string{"path:path"}, "", "application/json"},
		{"GET", "/v1/shelves/{parent_shelves}/books:stream", "LibraryService_StreamBooks", nil, "", "application/x-ndjson text/event-stream"},
		{"POST", "/example.library.v1.LibraryService/Ping", "LibraryService_Ping", nil, "application/json", "application/json"},
	}
	// CreateBook's body is its book, which buf.validate requires.
	if body := doc.Paths.Value("/v1/shelves/{parent_shelves}/books").Post.RequestBody.Value; !body.Required ||
		body.Content.Get("application/json").Schema.Value.AllOf[0].Ref != "#/components/schemas/example.library.v1.Book" {
		t.Errorf("CreateBook body: required %v, %+v", body.Required, body.Content.Get("application/json").Schema.Value)
	}
	count := 0
	for _, item := range doc.Paths.Map() {
		count += len(item.Operations())
	}
	if count != len(tests) {
		t.Errorf("%d operations, want %d (one per binding)", count, len(tests))
	}
	for _, tt := range tests {
		item := doc.Paths.Value(tt.path)
		if item == nil || item.GetOperation(tt.method) == nil {
			t.Errorf("no operation %s %s", tt.method, tt.path)
			continue
		}
		op := item.GetOperation(tt.method)
		if op.OperationID != tt.id {
			t.Errorf("%s %s: operationId %q, want %q", tt.method, tt.path, op.OperationID, tt.id)
		}
		var params []string
		for _, p := range op.Parameters {
			params = append(params, p.Value.In+":"+p.Value.Name)
		}
		if tt.params != nil && !slices.Equal(params, tt.params) {
			t.Errorf("%s %s: parameters\n %v\nwant\n %v", tt.method, tt.path, params, tt.params)
		}
		body := ""
		if op.RequestBody != nil {
			body = strings.Join(slices.Sorted(mapKeys(op.RequestBody.Value.Content)), " ")
		}
		if body != tt.body {
			t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, body, tt.body)
		}
		ok := op.Responses.Status(200)
		if ok == nil {
			t.Errorf("%s %s: no 200 answer", tt.method, tt.path)
			continue
		}
		if got := strings.Join(slices.Sorted(mapKeys(ok.Value.Content)), " "); got != tt.ok {
			t.Errorf("%s %s: 200 %q, want %q", tt.method, tt.path, got, tt.ok)
		}
		if def := op.Responses.Default(); def == nil || def.Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/google.rpc.Status" {
			t.Errorf("%s %s: errors are not google.rpc.Status", tt.method, tt.path)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// param finds a parameter of an operation.
func param(t *testing.T, doc *openapi3.T, method, path, name string) *openapi3.Parameter {
	t.Helper()
	op := doc.Paths.Value(path).GetOperation(method)
	if p := op.Parameters.GetByInAndName("path", name); p != nil {
		return p
	}
	if p := op.Parameters.GetByInAndName("query", name); p != nil {
		return p
	}
	t.Fatalf("%s %s has no parameter %s", method, path, name)
	return nil
}

// TestLibraryParameters checks the parameters' forms: a variable's
// segments with the field they make, enums by name, repeated fields
// exploded, maps as deepObject, int64 as strings, well-known types as
// their strings, buf.validate bounds.
func TestLibraryParameters(t *testing.T) {
	doc := build(t, libraryEndpoints(t, librarySchema(t, false), translate.JSONOptions{}), Options{})
	books := "/v1/shelves/{parent_shelves}/books"
	tests := []struct {
		path, name string
		check      func(p *openapi3.Parameter) bool
	}{
		{"/v1/shelves/{name_shelves}/books/{name_books}", "name_books", func(p *openapi3.Parameter) bool {
			return p.Required && p.Schema.Value.Pattern == "^[^/]+$" && p.Extensions["x-rosetta-field"] == "name" && p.Extensions["x-rosetta-field-pattern"] == "shelves/*/books/*"
		}},
		{"/v1/assets/{path}", "path", func(p *openapi3.Parameter) bool {
			return p.Extensions["x-rosetta-field-pattern"] == "**" && p.Schema.Value.Pattern == ""
		}},
		{books, "filter.genre", func(p *openapi3.Parameter) bool {
			return slices.Equal(p.Schema.Value.Enum, []any{"GENRE_UNSPECIFIED", "GENRE_FICTION", "GENRE_SCIENCE", "GENRE_HISTORY", "GENRE_POETRY"})
		}},
		{books, "genres", func(p *openapi3.Parameter) bool {
			return p.Schema.Value.Type.Is("array") && *p.Explode && p.Style == "form" && len(p.Schema.Value.Items.Value.Enum) == 5
		}},
		{books, "tags", func(p *openapi3.Parameter) bool { return p.Schema.Value.Items.Value.Type.Is("string") }},
		{books, "labels", func(p *openapi3.Parameter) bool {
			return p.Style == "deepObject" && p.Schema.Value.Type.Is("object")
		}},
		{books, "pageSize", func(p *openapi3.Parameter) bool {
			return p.Schema.Value.Type.Is("integer") && *p.Schema.Value.Min == 0 && *p.Schema.Value.Max == 100
		}},
		{books, "minPriceCents", func(p *openapi3.Parameter) bool {
			return p.Schema.Value.Type.Is("string") && p.Schema.Value.Pattern == "^-?[0-9]+$"
		}},
		{books, "maxReadTime", func(p *openapi3.Parameter) bool { return strings.HasSuffix(p.Schema.Value.Pattern, "s$") }},
		{books, "filter.publishedAfter", func(p *openapi3.Parameter) bool { return p.Schema.Value.Format == "date-time" }},
		{books, "filter.minPages", func(p *openapi3.Parameter) bool { return p.Schema.Value.Type.Is("integer") }},
		{books, "cursor", func(p *openapi3.Parameter) bool { return p.Schema.Value.Format == "byte" }},
	}
	for _, tt := range tests {
		p := param(t, doc, "GET", tt.path, tt.name)
		if !tt.check(p) {
			b, _ := p.MarshalJSON()
			t.Errorf("%s %s: %s", tt.path, tt.name, b)
		}
	}
}

// TestSchemas checks the proto3 JSON mapping of the component schemas under
// each service's JSON options.
func TestSchemas(t *testing.T) {
	s := librarySchema(t, true)
	type check struct {
		schema, prop string
		ok           func(*openapi3.Schema) bool
	}
	tests := []struct {
		name   string
		opts   translate.JSONOptions
		checks []check
	}{
		{"default", translate.JSONOptions{}, []check{
			{"example.library.v1.Book", "code", func(s *openapi3.Schema) bool {
				return s.Type.Is("string") && strings.Contains(s.Description, `Shown as "code"`)
			}},
			{"example.library.v1.Book", "priceCents", func(s *openapi3.Schema) bool { return s.Type.Is("string") && s.Format == "int64" }},
			{"example.library.v1.Book", "pageCount", func(s *openapi3.Schema) bool { return s.Type.Is("integer") && *s.Min == 0 && *s.Max == 100000 }},
			{"example.library.v1.Book", "isbn", func(s *openapi3.Schema) bool {
				// IGNORE_IF_ZERO_VALUE: "" passes too.
				return s.Pattern == "^$|(?:^97[89]-[0-9]{10}$)"
			}},
			{"example.library.v1.Book", "tags", func(s *openapi3.Schema) bool {
				return *s.MaxItems == 20 && s.Items.Value.MinLength == 1 && *s.Items.Value.MaxLength == 40
			}},
			{"example.library.v1.Book", "genre", func(s *openapi3.Schema) bool {
				return s.AllOf[0].Ref == "#/components/schemas/example.library.v1.Genre"
			}},
			{"example.library.v1.Book", "publishTime", func(s *openapi3.Schema) bool { return s.Format == "date-time" }},
			{"example.library.v1.Book", "readTime", func(s *openapi3.Schema) bool { return s.Pattern != "" && s.Type.Is("string") }},
			{"example.library.v1.Book", "rating", func(s *openapi3.Schema) bool { return len(s.AnyOf) == 2 && s.AnyOf[0].Value.Type.Is("number") }},
			{"example.library.v1.Book", "attributes", func(s *openapi3.Schema) bool {
				return s.Type.Is("object") && s.AdditionalProperties.Schema.Value.Type.Is("string")
			}},
			{"example.library.v1.Book", "extra", func(s *openapi3.Schema) bool { return slices.Equal(s.Required, []string{"@type"}) }},
			{"example.library.v1.Book", "coverThumbnail", func(s *openapi3.Schema) bool { return s.Format == "byte" }},
			{"example.library.v1.Book", "reviews", func(s *openapi3.Schema) bool {
				return s.Items.Ref == "#/components/schemas/example.library.v1.Review"
			}},
			{"example.library.v1.Review", "stars", func(s *openapi3.Schema) bool { return *s.Min == 1 && *s.Max == 5 }},
			{"example.library.v1.Genre", "", func(s *openapi3.Schema) bool { return s.Type.Is("string") && len(s.Enum) == 5 }},
			{"example.library.v1.Book", "", func(s *openapi3.Schema) bool { return s.Description == "Book is one book on a shelf." }},
			{"google.rpc.Status", "details", func(s *openapi3.Schema) bool { return s.Type.Is("array") }},
		}},
		{"proto names", translate.JSONOptions{UseProtoNames: true}, []check{
			{"example.library.v1.Book-proto_names", "catalogue_code", func(s *openapi3.Schema) bool { return s.Type.Is("string") }},
			{"example.library.v1.Book-proto_names", "price_cents", func(s *openapi3.Schema) bool { return s.Type.Is("string") }},
		}},
		{"enums as numbers, unpopulated", translate.JSONOptions{UseEnumNumbers: true, EmitUnpopulated: true}, []check{
			{"example.library.v1.Genre-enum_numbers", "", func(s *openapi3.Schema) bool {
				return s.Type.Is("integer") && slices.Equal(s.Enum, []any{0, 1, 2, 3, 4})
			}},
			{"example.library.v1.Book-enum_numbers-emit_unpopulated", "author", func(s *openapi3.Schema) bool {
				return len(s.AnyOf) == 2 && s.AnyOf[1].Value.Type.Is("null")
			}},
		}},
	}
	for _, tt := range tests {
		doc := build(t, libraryEndpoints(t, s, tt.opts), Options{})
		for _, c := range tt.checks {
			ref := doc.Components.Schemas[c.schema]
			if ref == nil {
				t.Errorf("%s: no schema %s", tt.name, c.schema)
				continue
			}
			sch := ref.Value
			if c.prop != "" {
				if sch.Properties[c.prop] == nil {
					t.Errorf("%s: %s has no property %s (has %v)", tt.name, c.schema, c.prop, slices.Sorted(mapKeys(sch.Properties)))
					continue
				}
				sch = sch.Properties[c.prop].Value
			}
			if !c.ok(sch) {
				b, _ := sch.MarshalJSON()
				t.Errorf("%s: %s.%s: %s", tt.name, c.schema, c.prop, b)
			}
		}
	}
}

// TestCommentsAndFieldBehavior checks descriptions from the .proto source,
// google.api.field_behavior, oneofs and further buf.validate rules, on a
// schema compiled for the test.
func TestCommentsAndFieldBehavior(t *testing.T) {
	dir := t.TempDir()
	src := `syntax = "proto3";
package t.v1;
import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "buf/validate/validate.proto";

// Things keeps things.
service Things {
  // GetThing returns a thing. It never fails.
  rpc GetThing(Thing) returns (Thing) {
    option (google.api.http) = {post: "/v1/things" body: "*"};
  }
}

// Thing is a thing.
message Thing {
  // The thing's id.
  string id = 1 [(google.api.field_behavior) = OUTPUT_ONLY];
  string secret = 2 [(google.api.field_behavior) = INPUT_ONLY];
  string title = 3 [(google.api.field_behavior) = REQUIRED, (buf.validate.field).string = {min_len: 3, max_len: 9}];
  string email = 4 [(buf.validate.field).string.email = true];
  double weight = 5 [(buf.validate.field).double = {gt: 0, lt: 10}];
  oneof owner {
    string person = 6;
    string team = 7;
  }
  map<int32, string> notes = 8 [(buf.validate.field).map.max_pairs = 3];
}
`
	if err := os.WriteFile(filepath.Join(dir, "t.proto"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := descriptors.Load(context.Background(), []descriptors.Source{{Proto: &descriptors.ProtoSource{ImportPaths: []string{dir}, Files: []string{"t.proto"}}}})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := s.Service("t.v1.Things")
	if err != nil {
		t.Fatal(err)
	}
	md := sd.Methods().Get(0)
	b, err := translate.NewBinding(md, "POST", "/v1/things", "*", "", translate.JSONOptions{}, s.Types())
	if err != nil {
		t.Fatal(err)
	}
	doc := build(t, []Endpoint{{Route: &router.Route{HTTPMethod: "POST", Template: b.Template, Binding: b, Method: md}}}, Options{})
	op := doc.Paths.Value("/v1/things").Post
	if op.Summary != "GetThing returns a thing." || !strings.HasPrefix(op.Description, "GetThing returns a thing. It never fails.") {
		t.Errorf("summary %q, description %q", op.Summary, op.Description)
	}
	if len(doc.Tags) != 1 || doc.Tags[0].Description != "Things keeps things." {
		t.Errorf("tags %+v", doc.Tags)
	}
	thing := doc.Components.Schemas["t.v1.Thing"].Value
	p := thing.Properties
	switch {
	case thing.Description == "" || !strings.HasPrefix(thing.Description, "Thing is a thing."):
		t.Errorf("Thing description %q", thing.Description)
	case p["id"].Value.Description != "The thing's id." || !p["id"].Value.ReadOnly:
		t.Errorf("id: %+v", p["id"].Value)
	case !p["secret"].Value.WriteOnly:
		t.Error("secret is not writeOnly")
	case !slices.Equal(thing.Required, []string{"title"}):
		t.Errorf("required %v", thing.Required)
	case p["title"].Value.MinLength != 3 || *p["title"].Value.MaxLength != 9:
		t.Errorf("title lengths %+v", p["title"].Value)
	case p["email"].Value.Format != "email":
		t.Errorf("email format %q", p["email"].Value.Format)
	case *p["weight"].Value.ExclusiveMin.Value != 0 || *p["weight"].Value.ExclusiveMax.Value != 10:
		t.Errorf("weight bounds %+v", p["weight"].Value)
	case *p["notes"].Value.MaxProps != 3 || p["notes"].Value.PropertyNames == nil:
		t.Errorf("notes %+v", p["notes"].Value)
	case len(thing.AllOf) != 1 || !slices.Equal(thing.AllOf[0].Value.Not.Value.Required, []string{"person", "team"}):
		t.Errorf("oneof: %+v", thing.AllOf)
	}
	// A body that sets both members of the oneof breaks the schema; one
	// alone does not.
	if err := thing.VisitJSON(map[string]any{"title": "abcd", "person": "a", "team": "b"}); err == nil {
		t.Error("both oneof members validate")
	}
	if err := thing.VisitJSON(map[string]any{"title": "abcd", "person": "a"}); err != nil {
		t.Errorf("one oneof member: %v", err)
	}
}

// TestOtherKinds checks the operations of routes that are not a method's
// binding: aggregates, MQTT downlink and state routes, HTTP proxies, and
// what OpenAPI cannot express.
func TestOtherKinds(t *testing.T) {
	tmpl := func(s string) *translate.Template {
		tp, err := translate.ParseTemplate(s)
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	sec := openapi3.SecurityRequirements{{"bearer": {}}}
	eps := []Endpoint{
		{Route: &router.Route{HTTPMethod: "POST", Template: tmpl("/v1/devices/{device_id}/commands"), Target: "devices/{device_id}/commands", Upstream: "mqtt"}, Kind: Publish, Topic: "devices/{device_id}/commands", Security: sec},
		{Route: &router.Route{HTTPMethod: "GET", Template: tmpl("/v1/devices/{device_id}/telemetry"), Upstream: "mqtt"}, Kind: State, Topic: "devices/{device_id}/telemetry"},
		{Route: &router.Route{HTTPMethod: "POST", Template: tmpl("/api/pay/{id}"), Upstream: "payments", Target: "POST /v1/charge/{id}"}, Kind: Proxy},
		{Route: &router.Route{HTTPMethod: "LOCK", Template: tmpl("/v1/locks/{id}"), Upstream: "payments"}, Kind: Proxy},
	}
	doc := build(t, eps, Options{SecuritySchemes: map[string]*openapi3.SecurityScheme{"bearer": {Type: "http", Scheme: "bearer"}}})
	pub := doc.Paths.Value("/v1/devices/{device_id}/commands").Post
	if pub == nil || pub.Responses.Status(202) == nil || pub.Parameters.GetByInAndName("query", "wait") == nil || pub.RequestBody.Value.Content.Get("*/*") == nil {
		t.Errorf("publish: %+v", pub)
	} else if pub.Security == nil || (*pub.Security)[0]["bearer"] == nil {
		t.Errorf("publish security: %+v", pub.Security)
	}
	if st := doc.Paths.Value("/v1/devices/{device_id}/telemetry").Get; st == nil || st.Responses.Status(200) == nil || st.Security != nil {
		t.Errorf("state: %+v", st)
	}
	if px := doc.Paths.Value("/api/pay/{id}").Post; px == nil || px.RequestBody == nil {
		t.Errorf("proxy: %+v", px)
	}
	omitted, _ := doc.Extensions["x-rosetta-omitted"].([]string)
	if len(omitted) != 1 || !strings.HasPrefix(omitted[0], "LOCK /v1/locks/{id}") {
		t.Errorf("omitted %v", omitted)
	}
	// A requirement naming an unknown scheme is a bug of the caller.
	if _, err := Document(eps[:1], Options{}); err == nil {
		t.Error("a security requirement without its scheme was accepted")
	}
}
