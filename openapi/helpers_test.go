package openapi

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// librarySchema loads the example library from its descriptor set, or
// from its .proto source (which keeps the comments) when fromSource.
func librarySchema(t *testing.T, fromSource bool) *descriptors.Schema {
	t.Helper()
	src := descriptors.Source{DescriptorSet: "../proto/library.binpb"}
	if fromSource {
		src = descriptors.Source{Proto: &descriptors.ProtoSource{ImportPaths: []string{"../proto"}, Files: []string{"example/library/v1/library.proto"}}}
	}
	s, err := descriptors.Load(context.Background(), []descriptors.Source{src})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// libraryEndpoints are the library service's REST bindings as the gateway
// builds them: each method's HttpRule, or the auto-mapped POST.
func libraryEndpoints(t *testing.T, s *descriptors.Schema, opts translate.JSONOptions) []Endpoint {
	t.Helper()
	sd, err := s.Service("example.library.v1.LibraryService")
	if err != nil {
		t.Fatal(err)
	}
	var out []Endpoint
	for i := 0; i < sd.Methods().Len(); i++ {
		md := sd.Methods().Get(i)
		if md.IsStreamingClient() {
			continue
		}
		rule, ok, err := descriptors.HTTPRule(md)
		if err != nil {
			t.Fatal(err)
		}
		var bs []*translate.Binding
		if ok {
			bs, err = translate.Bindings(md, rule, opts, s.Types())
		} else {
			var b *translate.Binding
			b, err = translate.NewBinding(md, "POST", "/"+string(sd.FullName())+"/"+string(md.Name()), "*", "", opts, s.Types())
			bs = append(bs, b)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			out = append(out, Endpoint{Route: &router.Route{HTTPMethod: b.HTTPMethod, Template: b.Template, Binding: b, Method: md}})
		}
	}
	return out
}

// build makes and validates a document.
func build(t *testing.T, eps []Endpoint, opts Options) *openapi3.T {
	t.Helper()
	doc, err := Document(eps, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		b, _ := json.MarshalIndent(doc, "", "  ")
		t.Logf("%s", b)
		t.Fatalf("the document does not validate: %v", err)
	}
	return doc
}
