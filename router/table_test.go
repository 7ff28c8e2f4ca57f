package router_test

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/rosettagw/rosetta/descriptors"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

var libraryService = libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService")

// libraryRoutes compiles every HTTP rule of LibraryService, plus the default
// POST path of Ping, into routes.
func libraryRoutes(t testing.TB) []*router.Route {
	t.Helper()
	var routes []*router.Route
	methods := libraryService.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		target := "/" + string(libraryService.FullName()) + "/" + string(md.Name())
		rule, ok, err := descriptors.HTTPRule(md)
		if err != nil {
			t.Fatalf("HTTPRule(%s): %v", md.Name(), err)
		}
		var bs []*translate.Binding
		if ok {
			bs, err = translate.Bindings(md, rule, translate.JSONOptions{}, protoregistry.GlobalTypes)
		} else {
			var b *translate.Binding
			b, err = translate.NewBinding(md, "POST", target, "*", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
			bs = []*translate.Binding{b}
		}
		if err != nil {
			t.Fatalf("bindings of %s: %v", md.Name(), err)
		}
		for _, b := range bs {
			routes = append(routes, &router.Route{
				HTTPMethod: b.HTTPMethod, Template: b.Template, Binding: b,
				Method: md, Target: target,
			})
		}
	}
	return routes
}

// synthetic builds a route without a binding, named by its target.
func synthetic(t testing.TB, method, tmpl, name string) *router.Route {
	t.Helper()
	tp, err := translate.ParseTemplate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return &router.Route{HTTPMethod: method, Template: tp, Target: name}
}

func syntheticRoutes(t testing.TB) []*router.Route {
	return []*router.Route{
		synthetic(t, "GET", "/v1/shelves/special", "special-shelf"),
		synthetic(t, "POST", "/v1/{name=shelves/*}:archive", "archive-shelf"),
		synthetic(t, "GET", "/static/*", "static-one"),
		synthetic(t, "GET", "/static/{rest=**}", "static-deep"),
		synthetic(t, "GET", "/blobs/{path=**}", "blob"),
		synthetic(t, "GET", "/blobs/{path=**}:meta", "blob-meta"),
		synthetic(t, "GET", "/bt/a/b", "backtrack-literal"),
		synthetic(t, "GET", "/bt/{x}/c", "backtrack-wildcard"),
		synthetic(t, "POST", "/v2/items/{id}", "item-post"),
		synthetic(t, "GET", "/v2/items/special", "item-special"),
		synthetic(t, "GET", "/multi/{a}/{b=x/*}/{c=**}", "multi"),
		synthetic(t, "GET", "/deep/{p=**}", "deep"),
		synthetic(t, "GET", "/keep/{name=*}/{tail=**}", "keep"),
	}
}

func newTable(t testing.TB) *router.Table {
	t.Helper()
	var tbl router.Table
	for _, r := range append(libraryRoutes(t), syntheticRoutes(t)...) {
		if err := tbl.Add(r); err != nil {
			t.Fatalf("Add(%s): %v", r, err)
		}
	}
	return &tbl
}

// name identifies a route in test tables: the gRPC method or the synthetic
// route's target.
func name(r *router.Route) string {
	if r == nil {
		return ""
	}
	if r.Method != nil {
		return string(r.Method.Name()) + " " + r.HTTPMethod
	}
	return r.Target
}

func TestLookup(t *testing.T) {
	tbl := newTable(t)
	tests := []struct {
		method, path string
		route        string   // name(route); "" for no route
		values       []string // PathValues
		allow        string
	}{
		// Every template form of the library rules.
		{"GET", "/v1/shelves/1", "GetShelf GET", []string{"shelves/1"}, ""},
		{"HEAD", "/v1/shelves/1", "GetShelf HEAD", []string{"shelves/1"}, ""},
		{"GET", "/v1/shelves/1/books", "ListBooks GET", []string{"shelves/1"}, ""},
		{"POST", "/v1/shelves/1/books", "CreateBook POST", []string{"shelves/1"}, ""},
		{"GET", "/v1/shelves/1/books/2", "GetBook GET", []string{"shelves/1/books/2"}, ""},
		{"PATCH", "/v1/shelves/1/books/2", "UpdateBook PATCH", []string{"shelves/1/books/2"}, ""},
		{"PUT", "/v1/shelves/1/books/2", "UpdateBook PUT", []string{"shelves/1/books/2"}, ""},
		{"DELETE", "/v1/shelves/1/books/2", "DeleteBook DELETE", []string{"shelves/1/books/2"}, ""},
		{"GET", "/v1/shelves/1/books/2/title", "GetBookTitle GET", []string{"shelves/1/books/2"}, ""},
		{"PUT", "/v1/shelves/1/books/2/text", "UploadBookText PUT", []string{"shelves/1/books/2"}, ""},
		{"POST", "/example.library.v1.LibraryService/Ping", "Ping POST", nil, ""},

		// Custom verbs, and the same paths without them.
		{"GET", "/v1/shelves/1/books:batchGet", "BatchGetBooks GET", []string{"shelves/1"}, ""},
		{"GET", "/v1/shelves/1/books:stream", "StreamBooks GET", []string{"shelves/1"}, ""},
		{"POST", "/v1/shelves/1/books/2:move", "MoveBook POST", []string{"shelves/1/books/2"}, ""},
		{"GET", "/v1/shelves/1/books/2:download", "DownloadBook GET", []string{"shelves/1/books/2"}, ""},
		{"GET", "/v1/shelves/1/books:nope", "", nil, ""},
		// A verb that names no route of the method is part of the last
		// segment, so the plain template may still take the path; 405 lists
		// the methods of both.
		{"GET", "/v1/shelves/1/books/2:move", "GetBook GET", []string{"shelves/1/books/2:move"}, ""},
		{"POST", "/v1/shelves/1/books/2:download", "", nil, "DELETE, GET, HEAD, PATCH, PUT"},
		{"POST", "/v1/shelves/1/books:batchGet", "", nil, "GET, HEAD"},
		{"PUT", "/v1/shelves/1/books:batchGet", "", nil, "GET, HEAD"},
		{"PUT", "/v1/shelves/1/books:stream", "", nil, "GET, HEAD"},
		// An unknown verb on a single-segment variable is part of the value.
		{"GET", "/v1/shelves/a:b", "GetShelf GET", []string{"shelves/a:b"}, ""},
		// A verb route of another method does not hide the plain route.
		{"GET", "/v1/shelves/a:archive", "GetShelf GET", []string{"shelves/a:archive"}, ""},
		{"POST", "/v1/shelves/a:archive", "archive-shelf", []string{"shelves/a"}, ""},
		{"DELETE", "/v1/shelves/a:archive", "", nil, "GET, HEAD, POST"},
		// A ':' in an earlier segment is no verb.
		{"GET", "/v1/shelves/a:b/books", "ListBooks GET", []string{"shelves/a:b"}, ""},
		{"GET", "/v1/shelves/a:b/books/c:d", "GetBook GET", []string{"shelves/a:b/books/c:d"}, ""},
		{"POST", "/v1/shelves/a:b/books/c:move", "MoveBook POST", []string{"shelves/a:b/books/c"}, ""},

		// Values stay escaped.
		{"GET", "/v1/shelves/a%2Fb/books/c%20d", "GetBook GET", []string{"shelves/a%2Fb/books/c%20d"}, ""},
		{"GET", "/v1/shelves/%3Amove", "GetShelf GET", []string{"shelves/%3Amove"}, ""},

		// "**" with zero, one and many segments.
		{"GET", "/v1/assets", "GetAsset GET", []string{""}, ""},
		{"GET", "/v1/assets/a", "GetAsset GET", []string{"a"}, ""},
		{"GET", "/v1/assets/a/b/c.txt", "GetAsset GET", []string{"a/b/c.txt"}, ""},
		{"GET", "/v1/assets/a%2Fb/c:d", "GetAsset GET", []string{"a%2Fb/c:d"}, ""},
		{"GET", "/blobs", "blob", []string{""}, ""},
		{"GET", "/blobs/x/y", "blob", []string{"x/y"}, ""},
		{"GET", "/blobs/x/y:meta", "blob-meta", []string{"x/y"}, ""},
		{"GET", "/blobs:meta", "blob-meta", []string{""}, ""},
		{"GET", "/blobs/x:other", "blob", []string{"x:other"}, ""},
		{"GET", "/multi/1/x/2", "multi", []string{"1", "x/2", ""}, ""},
		{"GET", "/multi/1/x/2/3", "multi", []string{"1", "x/2", "3"}, ""},
		{"GET", "/multi/1/x/2/3/4", "multi", []string{"1", "x/2", "3/4"}, ""},
		{"GET", "/keep/n", "keep", []string{"n", ""}, ""},
		{"GET", "/keep/n/t", "keep", []string{"n", "t"}, ""},

		// Literal beats "*", "*" beats "**"; a failed literal backtracks.
		{"GET", "/v1/shelves/special", "special-shelf", nil, ""},
		{"HEAD", "/v1/shelves/special", "special-shelf", nil, ""},
		{"GET", "/static/a", "static-one", nil, ""},
		{"GET", "/static/a/b", "static-deep", []string{"a/b"}, ""},
		{"GET", "/static", "static-deep", []string{""}, ""},
		{"GET", "/bt/a/b", "backtrack-literal", nil, ""},
		{"GET", "/bt/a/c", "backtrack-wildcard", []string{"a"}, ""},
		// A literal route of another method does not hide a wildcard one.
		{"POST", "/v2/items/special", "item-post", []string{"special"}, ""},
		{"GET", "/v2/items/special", "item-special", nil, ""},
		{"DELETE", "/v2/items/special", "", nil, "GET, HEAD, POST"},
		{"DELETE", "/v2/items/other", "", nil, "POST"},

		// HEAD falls back to GET.
		{"HEAD", "/v1/shelves/1/books", "ListBooks GET", []string{"shelves/1"}, ""},
		{"HEAD", "/v1/shelves/1/books/2:download", "DownloadBook GET", []string{"shelves/1/books/2"}, ""},

		// 405: the path matches, the method does not.
		{"POST", "/v1/shelves/1/books/2", "", nil, "DELETE, GET, HEAD, PATCH, PUT"},
		{"DELETE", "/v1/shelves/1/books", "", nil, "GET, HEAD, POST"},
		{"POST", "/v1/shelves/1", "", nil, "GET, HEAD"},
		{"GET", "/example.library.v1.LibraryService/Ping", "", nil, "POST"},
		{"POST", "/v1/assets/x", "", nil, "GET, HEAD"},
		{"PUT", "/v1/shelves/1/books/2/text", "UploadBookText PUT", []string{"shelves/1/books/2"}, ""},
		{"GET", "/v1/shelves/1/books/2/text", "", nil, "PUT"},

		// 404.
		{"GET", "/v1/shelves", "", nil, ""},
		{"GET", "/v1/shelves/", "", nil, ""},
		{"GET", "/v1/shelves//books", "", nil, ""},
		{"GET", "/v1/shelves/1/books/2/3", "", nil, ""},
		{"GET", "/v2/shelves/1", "", nil, ""},
		{"GET", "/V1/shelves/1", "", nil, ""},
		{"GET", "/nothing", "", nil, ""},
		{"GET", "", "", nil, ""},
		{"GET", "v1/shelves/1", "", nil, ""},
		{"GET", "/", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			m := tbl.Lookup(tt.method, tt.path, nil)
			if got := name(m.Route); got != tt.route {
				t.Errorf("route = %q, want %q", got, tt.route)
			}
			if !reflect.DeepEqual(m.PathValues, tt.values) {
				t.Errorf("PathValues = %q, want %q", m.PathValues, tt.values)
			}
			if m.Allow != tt.allow {
				t.Errorf("Allow = %q, want %q", m.Allow, tt.allow)
			}
			if m.Route != nil && len(m.PathValues) != len(m.Route.Template.Variables) {
				t.Errorf("%d values for %d variables", len(m.PathValues), len(m.Route.Template.Variables))
			}
			if m.Route == nil && m.PathValues != nil {
				t.Errorf("PathValues = %q without a route", m.PathValues)
			}
		})
	}
}

func TestLookupAppendsToBuffer(t *testing.T) {
	tbl := newTable(t)
	buf := make([]string, 1, 8)
	buf[0] = "kept"
	m := tbl.Lookup("GET", "/multi/1/x/2/3", buf)
	if want := []string{"kept", "1", "x/2", "3"}; !reflect.DeepEqual(m.PathValues, want) {
		t.Fatalf("PathValues = %q, want %q", m.PathValues, want)
	}
	if &m.PathValues[0] != &buf[0] {
		t.Error("Lookup did not append to the buffer it was given")
	}
}

func TestLookupSegmentLimit(t *testing.T) {
	tbl := newTable(t)
	path := func(n int) string { // "/deep" and n-1 more segments
		return "/deep" + strings.Repeat("/s", n-1)
	}
	if m := tbl.Lookup("GET", path(64), nil); name(m.Route) != "deep" {
		t.Fatalf("64 segments: route %q, want deep", name(m.Route))
	} else if len(m.PathValues) != 1 || strings.Count(m.PathValues[0], "s") != 63 {
		t.Fatalf("64 segments: PathValues %q", m.PathValues)
	}
	for _, n := range []int{65, 66, 200} {
		if m := tbl.Lookup("GET", path(n), nil); m.Route != nil || m.Allow != "" || m.PathValues != nil {
			t.Errorf("%d segments matched: %+v", n, m)
		}
		if m := tbl.Lookup("GET", path(n)+":meta", nil); m.Route != nil || m.Allow != "" {
			t.Errorf("%d segments with a verb matched: %+v", n, m)
		}
	}
	// A template longer than any request could be is refused.
	long := synthetic(t, "GET", strings.Repeat("/x", 65), "long")
	var t2 router.Table
	if err := t2.Add(long); err == nil {
		t.Error("Add accepted a 65-segment template")
	}
	if err := t2.Add(synthetic(t, "GET", strings.Repeat("/x", 63)+"/{rest=**}", "ok")); err != nil {
		t.Errorf("Add refused a 64-segment template: %v", err)
	}
	if m := t2.Lookup("GET", strings.Repeat("/x", 63), nil); name(m.Route) != "ok" || !reflect.DeepEqual(m.PathValues, []string{""}) {
		t.Errorf("63 segments against 63 + '**': %+v", m)
	}
}

func TestAddConflicts(t *testing.T) {
	tests := []struct {
		method, tmpl string
		conflict     bool
	}{
		{"GET", "/v1/{shelf=shelves/*}", true},           // GetShelf with another variable name
		{"GET", "/v1/shelves/{id}", true},                // the same shape, written differently
		{"DELETE", "/v1/{n=shelves/*/books/*}", true},    // DeleteBook
		{"POST", "/v1/{x=shelves/*/books/*}:move", true}, // MoveBook
		{"GET", "/v1/assets/{p=**}", true},               // GetAsset
		{"HEAD", "/v1/{s=shelves/*}", true},              // GetShelf's HEAD binding
		{"POST", "/v1/{s=shelves/*}", false},             // another method
		{"GET", "/v1/{s=shelves/*}:verb", false},         // another verb
		{"GET", "/v1/{s=shelves/*}/x", false},            // another shape
		{"GET", "/v1/assets/*", false},                   // "*" is not "**"
		{"HEAD", "/v1/{name=shelves/*}/books", false},    // HEAD beside GET
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.tmpl, func(t *testing.T) {
			tbl := newTable(t)
			n := len(tbl.Routes())
			err := tbl.Add(synthetic(t, tt.method, tt.tmpl, "new"))
			if tt.conflict {
				if err == nil {
					t.Fatal("Add accepted a conflicting route")
				}
				if !strings.Contains(err.Error(), "conflicts") {
					t.Errorf("error %q does not say conflict", err)
				}
				if len(tbl.Routes()) != n {
					t.Error("the refused route was recorded")
				}
				return
			}
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if got := tbl.Routes(); len(got) != n+1 || got[n].Target != "new" {
				t.Error("Routes() does not end with the added route")
			}
		})
	}
}

func TestHeadRouteAndAllowList(t *testing.T) {
	var tbl router.Table
	for _, r := range []*router.Route{
		synthetic(t, "PUT", "/r/{id}", "put"),
		synthetic(t, "HEAD", "/r/{id}", "head"),
		synthetic(t, "GET", "/r/{id}", "get"),
		synthetic(t, "DELETE", "/r/{id}", "delete"),
		synthetic(t, "POST", "/only-post", "post"),
	} {
		if err := tbl.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if m := tbl.Lookup("HEAD", "/r/1", nil); name(m.Route) != "head" {
		t.Errorf("HEAD took %q, want its own route", name(m.Route))
	}
	if m := tbl.Lookup("PATCH", "/r/1", nil); m.Allow != "DELETE, GET, HEAD, PUT" {
		t.Errorf("Allow = %q", m.Allow)
	}
	if m := tbl.Lookup("HEAD", "/only-post", nil); m.Route != nil || m.Allow != "POST" {
		t.Errorf("HEAD without GET: %+v", m)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tbl := newTable(t)
	buf := make([]string, 0, 8)
	for _, tt := range []struct{ method, path string }{
		{"GET", "/v1/shelves/1/books/2"},
		{"PATCH", "/v1/shelves/1/books/2"},
		{"POST", "/v1/shelves/1/books/2:move"},
		{"GET", "/v1/shelves/1/books:batchGet"},
		{"GET", "/v1/assets/a/b/c/d/e"},
		{"HEAD", "/v1/shelves/1/books"},
		{"GET", "/multi/1/x/2/3/4"},
		{"GET", "/nothing/here"},          // 404
		{"POST", "/v1/shelves/1/books/2"}, // 405
		{"GET", "/deep" + strings.Repeat("/s", 80)},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			m := tbl.Lookup(tt.method, tt.path, buf[:0])
			_ = m
		})
		if allocs != 0 {
			t.Errorf("Lookup(%s %s) allocates %v times", tt.method, tt.path, allocs)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tbl := newTable(b)
	reqs := []struct{ method, path string }{
		{"GET", "/v1/shelves/1"},
		{"GET", "/v1/shelves/1/books"},
		{"GET", "/v1/shelves/12/books/345"},
		{"PATCH", "/v1/shelves/12/books/345"},
		{"POST", "/v1/shelves/12/books/345:move"},
		{"GET", "/v1/shelves/12/books:batchGet"},
		{"GET", "/v1/assets/css/site/main.css"},
		{"GET", "/no/such/path"},
	}
	buf := make([]string, 0, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := reqs[i%len(reqs)]
		m := tbl.Lookup(r.method, r.path, buf[:0])
		if m.Route == nil && r.path != "/no/such/path" {
			b.Fatalf("%s %s did not match", r.method, r.path)
		}
	}
}
