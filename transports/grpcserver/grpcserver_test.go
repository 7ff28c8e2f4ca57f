package grpcserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/grpcserver"
	"github.com/rosettagw/rosetta/transports/ingress"
)

// TestMetadataPassThrough calls the ingress with grpc-go: the caller's
// metadata goes upstream whatever its name (the REST allow-list does not
// apply), less the keys of the hop; the upstream's header and trailer come
// back.
func TestMetadataPassThrough(t *testing.T) {
	var seen metadata.MD
	md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName("GetBook")
	const getBook = "/example.library.v1.LibraryService/GetBook"
	route := &router.Route{Method: md, Target: getBook, Handler: router.HandlerFunc(func(_ context.Context, c *router.Call) error {
		seen = c.Metadata
		if _, err := c.Decode(); err != nil {
			return err
		}
		msg, _ := proto.Marshal(&libraryv1.Book{Name: "shelves/1/books/dune"})
		c.Reply = &router.Reply{
			Message: msg,
			Header:  metadata.Pairs("x-upstream-header", "h1", "grpc-accept-encoding", "zstd,snappy,gzip"),
			Trailer: metadata.Pairs("x-upstream-trailer", "t1"),
		}
		return nil
	})}
	routes := &router.Routes{Methods: map[string]*router.Route{getBook: route}}
	srv := grpcserver.New(func(context.Context) *router.Routes { return routes }, grpcserver.Options{})
	ts := httptest.NewUnstartedServer(srv)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Stop)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	conn, err := grpc.NewClient(ts.Listener.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-something", "value", "authorization", "Bearer t", "x-multi", "a", "x-multi", "b", "grpc-trace-bin", "\x00\x01")
	var header, trailer metadata.MD
	book, err := libraryv1.NewLibraryServiceClient(conn).GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil || book.GetName() != "shelves/1/books/dune" {
		t.Fatalf("GetBook: %v, %v", book, err)
	}
	for k, want := range map[string][]string{
		"x-something":      {"value"},
		"authorization":    nil, // only the jwt policy forwards the token it verified
		"x-multi":          {"a", "b"},
		"grpc-trace-bin":   {"\x00\x01"},
		"x-forwarded-for":  {"127.0.0.1"},
		"x-forwarded-host": {ts.Listener.Addr().String()},
	} {
		if got := seen[k]; !reflect.DeepEqual(got, want) {
			t.Errorf("upstream metadata %s = %q, want %q", k, got, want)
		}
	}
	for k := range seen {
		if ingress.Reserved(k) {
			t.Errorf("the reserved key %s = %q went upstream", k, seen[k])
		}
	}
	if got := header.Get("x-upstream-header"); !reflect.DeepEqual(got, []string{"h1"}) {
		t.Errorf("response header x-upstream-header %q, want [h1]", got)
	}
	if got := trailer.Get("x-upstream-trailer"); !reflect.DeepEqual(got, []string{"t1"}) {
		t.Errorf("response trailer x-upstream-trailer %q, want [t1]", got)
	}
	// The gateway advertises what it decodes, not what the upstream does.
	for _, v := range header.Get("grpc-accept-encoding") {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "gzip" && e != "identity" {
				t.Errorf("grpc-accept-encoding %q advertises %q, which the gateway does not decode", v, e)
			}
		}
	}
}
