package openapi_test

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/openapi"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// ExampleDocument describes two HTTP bindings of the example library: a
// multi-segment path variable is written out as one parameter per
// wildcard, and the free fields of the request become query parameters.
func ExampleDocument() {
	schema, err := descriptors.Load(context.Background(), []descriptors.Source{{DescriptorSet: "../proto/library.binpb"}})
	if err != nil {
		panic(err)
	}
	svc, _ := schema.Service("example.library.v1.LibraryService")
	var endpoints []openapi.Endpoint
	for _, b := range []struct{ method, rpc, path, body string }{
		{"GET", "GetBook", "/v1/{name=shelves/*/books/*}", ""},
		{"GET", "BatchGetBooks", "/v1/{parent=shelves/*}/books:batchGet", ""},
	} {
		md := svc.Methods().ByName(protoreflect.Name(b.rpc))
		binding, err := translate.NewBinding(md, b.method, b.path, b.body, "", translate.JSONOptions{}, schema.Types())
		if err != nil {
			panic(err)
		}
		endpoints = append(endpoints, openapi.Endpoint{Route: &router.Route{HTTPMethod: b.method, Template: binding.Template, Binding: binding, Method: md}})
	}
	doc, err := openapi.Document(endpoints, openapi.Options{Title: "Library"})
	if err != nil {
		panic(err)
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		op := doc.Paths.Value(path).Get
		fmt.Println("GET", path, op.OperationID)
		for _, p := range op.Parameters {
			fmt.Printf("  %s %s\n", p.Value.In, p.Value.Name)
		}
	}
	// Unordered output:
	// GET /v1/shelves/{name_shelves}/books/{name_books} LibraryService_GetBook
	//   path name_shelves
	//   path name_books
	// GET /v1/shelves/{parent_shelves}/books:batchGet LibraryService_BatchGetBooks
	//   path parent_shelves
	//   query names
}
