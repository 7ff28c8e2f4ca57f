package rest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/ingress"
	"github.com/rosettagw/rosetta/transports/rest"
)

// FuzzRESTForwarding sends GET /v1/shelves/{segment} (GetShelf, whose name
// is a string) with one header of any name and value, through the REST
// ingress to a stand-in for the chain that decodes the request and parses
// it as the upstream would. The answer is never a 5xx, and the metadata
// that would go upstream holds nothing reserved, no credential, no key the
// gateway sets and nothing gRPC metadata cannot carry.
func FuzzRESTForwarding(f *testing.F) {
	for _, seed := range [][3]string{
		{"Authorization", "Bearer a.b.c", "1"},
		{"Grpc-Metadata-Connection", "close", "1"},
		{"Grpc-Metadata-X-Mqtt-Client-Id", "spoofed", "1"},
		{"X-Request-Id", "é", "1"},
		{"Traceparent", "00-\x01", "1"},
		{"Grpc-Metadata-Tenant", "\xff", "\xff"},
		{"X-Forwarded-For", "1.2.3.4", "\xc3\x28"},
		{"Grpc-Metadata-X-Trace-Bin", "\x00\xff", "été"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName("GetShelf")
	b, err := translate.NewBinding(md, "GET", "/v1/{name=shelves/*}", "", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
	if err != nil {
		f.Fatal(err)
	}
	var upstream func(c *router.Call) error // set per run
	table := &router.Table{}
	if err := table.Add(&router.Route{HTTPMethod: "GET", Template: b.Template, Binding: b, Method: md, Target: "/example.library.v1.LibraryService/GetShelf",
		Handler: router.HandlerFunc(func(_ context.Context, c *router.Call) error { return upstream(c) })}); err != nil {
		f.Fatal(err)
	}
	routes := &router.Routes{HTTP: table, Resolver: protoregistry.GlobalTypes}
	h := rest.New(func(context.Context) *router.Routes { return routes }, rest.Options{})
	shelf, _ := proto.Marshal(&libraryv1.Shelf{Name: "shelves/1"})

	f.Fuzz(func(t *testing.T, name, value, segment string) {
		upstream = func(c *router.Call) error {
			for k, vs := range c.Metadata {
				if k != "x-forwarded-for" && k != "x-forwarded-host" && !ingress.Forwardable(k) {
					t.Fatalf("forwarded %q = %q", k, vs)
				}
				if !ingress.ValidValues(k, vs) {
					t.Fatalf("forwarded %q = %q, which gRPC metadata cannot carry", k, vs)
				}
			}
			wire, err := c.Decode()
			if err != nil {
				return err
			}
			if err := proto.Unmarshal(wire, &libraryv1.GetShelfRequest{}); err != nil {
				t.Fatalf("the upstream could not parse the request: %v", err)
			}
			c.Reply = &router.Reply{Message: shelf}
			return nil
		}
		var path strings.Builder
		for i := 0; i < len(segment); i++ {
			fmt.Fprintf(&path, "%%%02X", segment[i])
		}
		if segment == "" {
			path.WriteString("1")
		}
		r := httptest.NewRequest("GET", "/v1/shelves/1", nil)
		r.URL.Path, r.URL.RawPath = "/v1/shelves/"+segment, "/v1/shelves/"+path.String()
		r.Header[http.CanonicalHeaderKey(name)] = append(r.Header[http.CanonicalHeaderKey(name)], value)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
	})
}
