package rest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/rest"
)

// streamHandler serves GET /v1/{parent=shelves/*}/books:stream (StreamBooks)
// with chain as the route's handler.
func streamHandler(t *testing.T, chain router.HandlerFunc) *rest.Handler {
	t.Helper()
	md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName("StreamBooks")
	b, err := translate.NewBinding(md, "GET", "/v1/{parent=shelves/*}/books:stream", "", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
	if err != nil {
		t.Fatal(err)
	}
	table := &router.Table{}
	if err := table.Add(&router.Route{HTTPMethod: "GET", Template: b.Template, Binding: b, Method: md, Target: "/example.library.v1.LibraryService/StreamBooks", Handler: chain}); err != nil {
		t.Fatal(err)
	}
	routes := &router.Routes{HTTP: table, Resolver: protoregistry.GlobalTypes}
	return rest.New(func(context.Context) *router.Routes { return routes }, rest.Options{})
}

func serveStream(h http.Handler, accept string) *http.Response {
	req := httptest.NewRequest("GET", "/v1/shelves/1/books:stream", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStreamErrorBeforeFirstMessage: a stream that fails before its first
// message answers with the error's HTTP status; on the NDJSON path the body
// is grpc-gateway's {"error": status} line when the stream itself failed,
// and the bare status when the gateway refused the call.
func TestStreamErrorBeforeFirstMessage(t *testing.T) {
	const notFound = `{"code":5, "message":"no shelf", "details":[]}`
	upstreamFails := router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		if _, err := c.Stream.Recv(); err != nil {
			t.Errorf("Recv: %v", err)
		}
		c.Reply = &router.Reply{Header: metadata.Pairs("x-up", "h"), Trailer: metadata.Pairs("x-up-trailer", "t")}
		return status.Error(codes.NotFound, "no shelf")
	})
	refused := router.HandlerFunc(func(context.Context, *router.Call) error {
		return status.Error(codes.PermissionDenied, "not yours")
	})
	undecodable := router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		return c.Stream.Send([]byte{0xff})
	})
	tests := []struct {
		name    string
		chain   router.HandlerFunc
		accept  string
		status  int
		body    string // JSON, compared structurally; a line when framed
		framed  bool
		headers map[string]string
	}{
		{"upstream error, NDJSON", upstreamFails, "", 404, `{"error":` + notFound + `}`, true,
			map[string]string{"Grpc-Metadata-X-Up": "h", "Grpc-Metadata-X-Up-Trailer": "t"}},
		{"upstream error, SSE", upstreamFails, "text/event-stream", 404, notFound, false, map[string]string{"Grpc-Metadata-X-Up": "h"}},
		{"refused by the chain", refused, "", 403, `{"code":7, "message":"not yours", "details":[]}`, false, nil},
		{"undecodable first message", undecodable, "", 502, "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serveStream(streamHandler(t, tt.chain), tt.accept)
			got := body(t, r)
			if r.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", r.StatusCode, tt.status, got)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tt.framed != strings.HasPrefix(got, `{"error":`) || tt.framed != strings.HasSuffix(got, "}\n") {
				t.Errorf("body %q: framed as an {\"error\": ...} line = %v, want %v", got, !tt.framed, tt.framed)
			}
			if tt.body != "" && !sameJSON(t, got, tt.body) {
				t.Errorf("body %s, want %s", got, tt.body)
			}
			for k, v := range tt.headers {
				if r.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, r.Header.Get(k), v)
				}
			}
		})
	}
}

// TestStreamErrorAfterFirstMessage: once a message is out, the error is
// the last line (NDJSON) or the final status event (SSE), under 200.
func TestStreamErrorAfterFirstMessage(t *testing.T) {
	book, _ := proto.Marshal(&libraryv1.Book{Name: "shelves/1/books/1"})
	chain := router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		c.Stream.Recv()
		c.Stream.SetHeader(nil)
		if err := c.Stream.Send(book); err != nil {
			return err
		}
		c.Reply = &router.Reply{}
		return status.Error(codes.DataLoss, "gone")
	})
	r := serveStream(streamHandler(t, chain), "")
	want := `{"result":{"name":"shelves/1/books/1"}}` + "\n" + `{"error":{"code":15,"message":"gone","details":[]}}` + "\n"
	if got := body(t, r); r.StatusCode != 200 || got != want {
		t.Errorf("%d %q, want 200 %q", r.StatusCode, got, want)
	}
	r = serveStream(streamHandler(t, chain), "text/event-stream")
	if got := body(t, r); r.StatusCode != 200 || !strings.Contains(got, "event: status\ndata: {\"code\":15") {
		t.Errorf("SSE: %d %q, want 200 and a status event", r.StatusCode, got)
	}
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Errorf("not JSON: %v: %q", err, a)
		return false
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	return reflect.DeepEqual(x, y)
}
