package grpcweb_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/rosettagw/rosetta/descriptors"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/cors"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/grpcweb"
)

const svc = "/example.library.v1.LibraryService/"

// getBookHandler answers GetBook with a book named as asked and counts the
// calls it sees.
func getBookHandler(t *testing.T, calls *int) router.Handler {
	return router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		*calls++
		raw, err := c.Decode()
		if err != nil {
			return err
		}
		var req libraryv1.GetBookRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			t.Errorf("upstream request: %v", err)
		}
		b, _ := proto.Marshal(&libraryv1.Book{Name: req.GetName(), Title: "Dune"})
		c.Reply = &router.Reply{Message: b}
		return nil
	})
}

// newHandler serves GetBook (bound to an HTTP GET) and CreateBook (a POST)
// of the library schema.
func newHandler(t *testing.T, calls *int, maxBytes int) *grpcweb.Handler {
	t.Helper()
	methods := map[string]*router.Route{}
	for _, name := range []string{"GetBook", "CreateBook"} {
		md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName(protoreflect.Name(name))
		b, err := translate.NewBinding(md, "POST", svc+name, "*", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
		if err != nil {
			t.Fatal(err)
		}
		methods[svc+name] = &router.Route{HTTPMethod: "POST", Binding: b, Method: md, Target: svc + name, Handler: getBookHandler(t, calls),
			NoSideEffects: descriptors.NoSideEffects(md)}
	}
	return grpcweb.New(func(context.Context) *router.Routes { return &router.Routes{Methods: methods} }, grpcweb.Options{MaxMessageBytes: maxBytes})
}

func TestConnectGet(t *testing.T) {
	var calls int
	h := newHandler(t, &calls, 64)
	bookReq, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
	tests := []struct {
		name, method string
		query        url.Values
		status       int
		code         string // Connect error code; empty for success
		ct           string
	}{
		{"json", "GetBook", url.Values{"connect": {"v1"}, "encoding": {"json"}, "message": {`{"name": "shelves/1/books/dune"}`}}, 200, "", "application/json"},
		{"json in base64", "GetBook", url.Values{"encoding": {"json"}, "base64": {"1"}, "message": {base64.RawURLEncoding.EncodeToString([]byte(`{"name":"shelves/1/books/dune"}`))}}, 200, "", "application/json"},
		{"proto, unpadded base64", "GetBook", url.Values{"encoding": {"proto"}, "base64": {"1"}, "message": {base64.RawURLEncoding.EncodeToString(bookReq)}}, 200, "", "application/proto"},
		{"proto, padded base64", "GetBook", url.Values{"encoding": {"proto"}, "base64": {"1"}, "message": {base64.URLEncoding.EncodeToString(bookReq)}, "compression": {"identity"}}, 200, "", "application/proto"},
		{"proto, url-escaped", "GetBook", url.Values{"encoding": {"proto"}, "message": {string(bookReq)}}, 200, "", "application/proto"},
		{"unknown encoding", "GetBook", url.Values{"encoding": {"xml"}, "message": {"<a/>"}}, 415, "invalid_argument", ""},
		{"no message", "GetBook", url.Values{"encoding": {"json"}}, 400, "invalid_argument", ""},
		{"bad base64", "GetBook", url.Values{"encoding": {"proto"}, "base64": {"1"}, "message": {"!!!"}}, 400, "invalid_argument", ""},
		{"bad JSON", "GetBook", url.Values{"encoding": {"json"}, "message": {`{"nam": 1}`}}, 400, "invalid_argument", ""},
		{"other protocol version", "GetBook", url.Values{"connect": {"v2"}, "encoding": {"json"}, "message": {"{}"}}, 400, "invalid_argument", ""},
		{"gzip", "GetBook", url.Values{"encoding": {"json"}, "compression": {"gzip"}, "message": {string(gzipped(`{"name": "shelves/1/books/dune"}`))}}, 200, "", "application/json"},
		{"corrupt gzip", "GetBook", url.Values{"encoding": {"json"}, "compression": {"gzip"}, "message": {"{}"}}, 400, "invalid_argument", ""},
		{"unsupported compression", "GetBook", url.Values{"encoding": {"json"}, "compression": {"br"}, "message": {"{}"}}, 501, "unimplemented", ""},
		{"over the size limit", "GetBook", url.Values{"encoding": {"json"}, "message": {`{"name": "` + string(make([]byte, 64)) + `"}`}}, 429, "resource_exhausted", ""},
		{"method with side effects", "CreateBook", url.Values{"encoding": {"json"}, "message": {"{}"}}, 405, "invalid_argument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, svc+tt.method+"?"+tt.query.Encode(), nil)
			if !h.Handles(r) {
				t.Fatal("Handles = false for a Connect GET")
			}
			before := calls
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.code != "" {
				var e struct{ Code, Message string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != tt.code || e.Message == "" {
					t.Errorf("error body %s, want code %s", w.Body, tt.code)
				}
				if w.Code == 405 && (w.Header().Get("Allow") != "POST" || calls != before) {
					t.Errorf("Allow %q, calls %d → %d", w.Header().Get("Allow"), before, calls)
				}
				return
			}
			if got := w.Header().Get("Content-Type"); got != tt.ct {
				t.Errorf("Content-Type %q, want %q", got, tt.ct)
			}
			var book libraryv1.Book
			if tt.ct == "application/proto" {
				if err := proto.Unmarshal(w.Body.Bytes(), &book); err != nil {
					t.Fatal(err)
				}
			} else if err := json.Unmarshal(w.Body.Bytes(), &struct{ Name, Title *string }{&book.Name, &book.Title}); err != nil {
				t.Fatal(err)
			}
			if book.GetName() != "shelves/1/books/dune" || book.GetTitle() != "Dune" || calls != before+1 {
				t.Errorf("book %v, calls %d → %d", &book, before, calls)
			}
		})
	}

	for _, q := range []string{"", "message=%7B%7D", "encoding="} {
		if r := httptest.NewRequest(http.MethodGet, svc+"GetBook?"+q, nil); h.Handles(r) {
			t.Errorf("Handles(GET ?%s) = true: without an encoding it is not Connect", q)
		}
	}
}

// TestConnectCompression: a Connect unary body in an encoding the gateway
// does not read is UNIMPLEMENTED, not misread as a malformed message; a
// gzip one that expands past the message limit is RESOURCE_EXHAUSTED
// without reaching the upstream.
func TestConnectCompression(t *testing.T) {
	var calls int
	h := newHandler(t, &calls, 1024)
	for _, tt := range []struct {
		name, encoding, body string
		status               int
		code                 string
	}{
		{"unsupported", "br", "\x1f\x8b compressed", 501, "unimplemented"},
		{"zip bomb", "gzip", string(gzipped(`{"name": "` + strings.Repeat("a", 256<<10) + `"}`)), 429, "resource_exhausted"},
	} {
		r := httptest.NewRequest(http.MethodPost, svc+"GetBook", strings.NewReader(tt.body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Connect-Protocol-Version", "1")
		r.Header.Set("Content-Encoding", tt.encoding)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e struct{ Code string }
		if json.Unmarshal(w.Body.Bytes(), &e); w.Code != tt.status || e.Code != tt.code || calls != 0 {
			t.Errorf("%s: %d %s, calls %d; want %d %s and no call", tt.name, w.Code, w.Body, calls, tt.status, tt.code)
		}
	}
}

// gzipped is s compressed with gzip.
func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

// replyHandler records the call's forwarded metadata and answers with the
// upstream header and trailer metadata given, and err.
func replyHandler(seen *metadata.MD, err error) router.Handler {
	return router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		*seen = c.Metadata
		if _, derr := c.Decode(); derr != nil {
			return derr
		}
		c.ResponseHeader = metadata.Pairs("x-ratelimit-remaining", "9")
		c.Reply = &router.Reply{
			Header:  metadata.Pairs("x-upstream-header", "h1", "grpc-accept-encoding", "gzip,zstd"),
			Trailer: metadata.Pairs("x-upstream-trailer", "t1", "grpc-trace-bin", "AA"),
		}
		if err != nil {
			return err
		}
		c.Reply.Message, _ = proto.Marshal(&libraryv1.Book{Name: "shelves/1/books/dune"})
		return nil
	})
}

// routesOf serves methods as a generation's.
func routesOf(methods map[string]*router.Route) func(context.Context) *router.Routes {
	routes := &router.Routes{Methods: methods}
	return func(context.Context) *router.Routes { return routes }
}

func replyMethods(t *testing.T, h router.Handler) map[string]*router.Route {
	t.Helper()
	md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName("GetBook")
	b, err := translate.NewBinding(md, "POST", svc+"GetBook", "*", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*router.Route{svc + "GetBook": {HTTPMethod: "POST", Binding: b, Method: md, Target: svc + "GetBook", Handler: h}}
}

// TestMetadataPassThrough: gRPC-Web and Connect request headers are gRPC
// metadata, passed upstream whatever their name, less the keys of the hop
// and credentials; the REST allow-list does not apply.
func TestMetadataPassThrough(t *testing.T) {
	msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
	for _, p := range []struct{ name, ct, body string }{
		{"gRPC-Web", "application/grpc-web+proto", string(translate.AppendEnvelope(nil, 0, msg))},
		{"Connect", "application/json", `{"name":"shelves/1/books/dune"}`},
	} {
		t.Run(p.name, func(t *testing.T) {
			var seen metadata.MD
			h := grpcweb.New(routesOf(replyMethods(t, replyHandler(&seen, nil))), grpcweb.Options{})
			r := httptest.NewRequest(http.MethodPost, "http://gw.example"+svc+"GetBook", strings.NewReader(p.body))
			r.RemoteAddr = "10.0.0.2:5555"
			for k, v := range map[string]string{
				"Content-Type": p.ct, "Connect-Protocol-Version": "1", "X-Grpc-Web": "1", "X-User-Agent": "grpc-web-javascript/0.1",
				"Grpc-Timeout": "5S", "Connect-Timeout-Ms": "5000", "Accept-Encoding": "gzip", "Te": "trailers",
				"X-Something": "value", "Authorization": "Bearer t", "Cookie": "session=1",
			} {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			want := metadata.MD{
				// No authorization: only the jwt policy forwards the token it
				// verified.
				"x-something": {"value"}, "cookie": {"session=1"},
				"x-forwarded-for": {"10.0.0.2"}, "x-forwarded-host": {"gw.example"},
			}
			if !reflect.DeepEqual(seen, want) {
				t.Errorf("forwarded %v\nwant %v", map[string][]string(seen), map[string][]string(want))
			}
			if got := w.Header().Get("X-Upstream-Header"); got != "h1" {
				t.Errorf("X-Upstream-Header %q, want h1", got)
			}
			if got := w.Header().Values("Grpc-Accept-Encoding"); len(got) > 1 || len(got) == 1 && got[0] != "gzip" {
				t.Errorf("Grpc-Accept-Encoding %q: the upstream's reached the client; want only the gateway's own (gzip)", got)
			}
		})
	}
}

// TestConnectUnaryErrorHeaders: a Connect unary error carries the upstream's
// header metadata as headers and its trailer as Trailer-* headers, as a
// success does, and the headers the gateway sets itself.
func TestConnectUnaryErrorHeaders(t *testing.T) {
	var seen metadata.MD
	h := grpcweb.New(routesOf(replyMethods(t, replyHandler(&seen, status.Error(codes.NotFound, "no such book")))), grpcweb.Options{})
	r := httptest.NewRequest(http.MethodPost, svc+"GetBook", strings.NewReader(`{"name":"shelves/1/books/nope"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connect-Protocol-Version", "1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var e struct{ Code, Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 404 || e.Code != "not_found" {
		t.Fatalf("%d %s, want 404 not_found", w.Code, w.Body)
	}
	for k, want := range map[string]string{
		"X-Upstream-Header":          "h1",
		"Trailer-X-Upstream-Trailer": "t1",
		"Trailer-Grpc-Trace-Bin":     "AA",
		"X-Ratelimit-Remaining":      "9",
		"Grpc-Accept-Encoding":       "",
		"Content-Type":               "application/json",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

// TestCORSMetadata: a page of an allowed origin may send the headers its
// cors policy allows as metadata, and read the upstream's header metadata.
func TestCORSMetadata(t *testing.T) {
	var seen metadata.MD
	policy, err := cors.New(cors.Config{AllowedOrigins: []string{"https://app.example"}, AllowedHeaders: []string{"x-something"}})
	if err != nil {
		t.Fatal(err)
	}
	h := cors.Handler(grpcweb.New(routesOf(replyMethods(t, replyHandler(&seen, nil))), grpcweb.Options{}), func(string, *http.Request) *cors.Policy { return policy })
	r := httptest.NewRequest(http.MethodOptions, svc+"GetBook", nil)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "content-type, x-something")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Header().Get("Access-Control-Allow-Headers"); w.Code != 204 || got != "content-type, x-something" {
		t.Errorf("preflight %d, Access-Control-Allow-Headers %q; want x-something allowed", w.Code, got)
	}

	r = httptest.NewRequest(http.MethodPost, svc+"GetBook", strings.NewReader(`{"name":"shelves/1/books/dune"}`))
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connect-Protocol-Version", "1")
	r.Header.Set("X-Something", "value")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || seen.Get("x-something")[0] != "value" {
		t.Fatalf("%d %s, forwarded %v", w.Code, w.Body, map[string][]string(seen))
	}
	got := w.Header().Get("Access-Control-Expose-Headers")
	for _, name := range []string{"Grpc-Status", "X-Upstream-Header", "Trailer-X-Upstream-Trailer"} {
		if !strings.Contains(got, name) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", got, name)
		}
	}
}
