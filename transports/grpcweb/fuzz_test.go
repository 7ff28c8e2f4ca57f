package grpcweb_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/grpcweb"
)

// fuzzContentTypes are the request kinds the handler takes.
var fuzzContentTypes = []string{
	"application/grpc-web+proto", "application/grpc-web", "application/grpc-web-text", "application/grpc-web-text+proto",
	"application/connect+proto", "application/connect+json", "application/json", "application/proto",
}

// FuzzGRPCWebRequest sends any body, as any gRPC-Web (binary or base64
// text) or Connect (enveloped streaming or unary) request, to a unary and
// a server-streaming method: the answer is never a 5xx but a refusal the
// client can read, and never a panic.
func FuzzGRPCWebRequest(f *testing.F) {
	msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
	env := translate.AppendEnvelope(nil, 0, msg)
	for i := range fuzzContentTypes {
		f.Add(byte(i), false, env)
		f.Add(byte(i), true, env)
	}
	f.Add(byte(2), false, []byte(base64.StdEncoding.EncodeToString(env)+base64.StdEncoding.EncodeToString(env)))
	f.Add(byte(6), false, []byte(`{"name":"shelves/1/books/dune"}`))
	f.Add(byte(5), true, translate.AppendEnvelope(nil, 2, []byte(`{}`))) // an end-of-stream flag from the client
	f.Add(byte(0), false, []byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Add(byte(0), false, []byte{0x80, 0, 0, 0, 1, 'x'})

	methods := map[string]*router.Route{}
	for _, name := range []string{"GetBook", "StreamBooks"} {
		md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName(protoreflect.Name(name))
		b, err := translate.NewBinding(md, "POST", svc+name, "*", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
		if err != nil {
			f.Fatal(err)
		}
		methods[svc+name] = &router.Route{HTTPMethod: "POST", Binding: b, Method: md, Target: svc + name, Handler: router.HandlerFunc(answer)}
	}
	h := grpcweb.New(routesOf(methods), grpcweb.Options{MaxMessageBytes: 1024})
	f.Fuzz(func(t *testing.T, ct byte, stream bool, body []byte) {
		method := "GetBook"
		if stream {
			method = "StreamBooks"
		}
		r := httptest.NewRequest(http.MethodPost, svc+method, bytes.NewReader(body))
		r.Header.Set("Content-Type", fuzzContentTypes[int(ct)%len(fuzzContentTypes)])
		if ct%2 == 0 {
			r.Header.Set("Connect-Protocol-Version", "1")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 && w.Code != http.StatusNotImplemented {
			t.Errorf("%s %q: %d %s", r.Header.Get("Content-Type"), body, w.Code, w.Body)
		}
	})
}

// answer is an upstream that decodes what it is sent and answers a book
// (a stream of one book for a streaming call).
func answer(_ context.Context, c *router.Call) error {
	book, _ := proto.Marshal(&libraryv1.Book{Name: "shelves/1/books/dune"})
	if c.Stream != nil {
		if _, err := c.Stream.Recv(); err != nil {
			return err
		}
		if err := c.Stream.SetHeader(nil); err != nil {
			return err
		}
		c.Reply = &router.Reply{}
		return c.Stream.Send(book)
	}
	if _, err := c.Decode(); err != nil {
		return err
	}
	c.Reply = &router.Reply{Message: book}
	return nil
}
