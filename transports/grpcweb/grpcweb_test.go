package grpcweb_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
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
		methods[svc+name] = &router.Route{HTTPMethod: "POST", Binding: b, Method: md, Target: svc + name, Handler: getBookHandler(t, calls)}
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
		{"compressed", "GetBook", url.Values{"encoding": {"json"}, "compression": {"gzip"}, "message": {"{}"}}, 501, "unimplemented", ""},
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

// TestConnectCompressedRefused: a compressed Connect unary body is refused
// as UNIMPLEMENTED, not misread as a malformed message.
func TestConnectCompressedRefused(t *testing.T) {
	var calls int
	h := newHandler(t, &calls, 1024)
	r := httptest.NewRequest(http.MethodPost, svc+"GetBook", strings.NewReader("\x1f\x8b compressed"))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connect-Protocol-Version", "1")
	r.Header.Set("Content-Encoding", "gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var e struct{ Code string }
	if json.Unmarshal(w.Body.Bytes(), &e); w.Code != 501 || e.Code != "unimplemented" || calls != 0 {
		t.Errorf("%d %s, calls %d; want 501 unimplemented and no call", w.Code, w.Body, calls)
	}
}
