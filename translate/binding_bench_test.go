package translate_test

import (
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/translate"
)

// book2K is a fully populated Book as a CreateBook request body: author,
// tags, reviews, an attributes map, timestamps, a duration, a wrapper, an
// int64, an enum and bytes.
func book2K(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/book_2k.json")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBook2KFixture(t *testing.T) {
	body := book2K(t)
	if n := len(body); n < 1536 || n > 2560 {
		t.Fatalf("testdata/book_2k.json is %d bytes, want 1.5–2.5 KB", n)
	}
	got := decode(t, libBinding(t, "CreateBook"), &translate.Request{PathValues: []string{"shelves/classics"}, Body: body}, &libraryv1.CreateBookRequest{})
	want := &libraryv1.Book{}
	if err := protojson.Unmarshal(body, want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, &libraryv1.CreateBookRequest{Parent: "shelves/classics", Book: want}) {
		t.Errorf("the binding and protojson disagree on the fixture")
	}
	// Every field but the Any is set, so the benchmark exercises them all.
	fields := want.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Name() != "extra" && !want.ProtoReflect().Has(fd) {
			t.Errorf("the fixture leaves %s unset", fd.Name())
		}
	}
}

// benchBinding compiles the CreateBook binding on the transcoder or, with
// reference, on the protojson path alone.
func benchBinding(b *testing.B, reference bool) *translate.Binding {
	translate.SetReferenceOnly(reference)
	defer translate.SetReferenceOnly(false)
	return libBinding(b, "CreateBook")
}

// BenchmarkDecodeRequest converts the 2 KB CreateBook request with the
// transcoder and with the reference (protojson and dynamicpb) path.
func BenchmarkDecodeRequest(b *testing.B) {
	body := book2K(b)
	req := &translate.Request{PathValues: []string{"shelves/classics"}, Body: body}
	for _, path := range []string{"transcoder", "reference"} {
		b.Run(path, func(b *testing.B) {
			binding := benchBinding(b, path == "reference")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := binding.DecodeRequest(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeResponse renders the 2 KB Book response with the
// transcoder and with the reference path.
func BenchmarkEncodeResponse(b *testing.B) {
	body := book2K(b)
	book := &libraryv1.Book{}
	if err := protojson.Unmarshal(body, book); err != nil {
		b.Fatal(err)
	}
	wire, err := proto.Marshal(book)
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"transcoder", "reference"} {
		b.Run(path, func(b *testing.B) {
			binding := benchBinding(b, path == "reference")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := binding.EncodeResponse(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProtojsonReferenceDecodeRequest is the conversion DecodeRequest
// does, written directly with protojson and dynamicpb: the floor to compare
// against.
func BenchmarkProtojsonReferenceDecodeRequest(b *testing.B) {
	body := book2K(b)
	md := libMethod(b, "CreateBook").Input()
	bookFD, parentFD := md.Fields().ByName("book"), md.Fields().ByName("parent")
	opts := protojson.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		msg := dynamicpb.NewMessage(md)
		if err := opts.Unmarshal(body, msg.Mutable(bookFD).Message().Interface()); err != nil {
			b.Fatal(err)
		}
		msg.Set(parentFD, protoreflect.ValueOfString("shelves/classics"))
		if _, err := proto.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProtojsonReferenceEncodeResponse is the conversion EncodeResponse
// does, written directly with protojson and dynamicpb.
func BenchmarkProtojsonReferenceEncodeResponse(b *testing.B) {
	body := book2K(b)
	md := libMethod(b, "CreateBook").Output()
	book := &libraryv1.Book{}
	if err := protojson.Unmarshal(body, book); err != nil {
		b.Fatal(err)
	}
	wire, err := proto.Marshal(book)
	if err != nil {
		b.Fatal(err)
	}
	opts := protojson.MarshalOptions{Resolver: protoregistry.GlobalTypes}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		msg := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(wire, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := opts.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallGet is the small GET of the bench harness, both ways: a
// ListBooks request from path and query parameters, and a one-book answer
// rendered with EmitUnpopulated.
func BenchmarkSmallGet(b *testing.B) {
	req := &translate.Request{PathValues: []string{"shelves/1"}, Query: "pageSize=1&filter.genre=GENRE_FICTION&tags=classic"}
	wire, err := proto.Marshal(&libraryv1.ListBooksResponse{
		Books:         []*libraryv1.Book{{Name: "shelves/1/books/dune", Title: "Dune", Author: &libraryv1.Author{Name: "Frank Herbert"}, Genre: libraryv1.Genre_GENRE_FICTION}},
		NextPageToken: "2", TotalSize: 42,
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"transcoder", "reference"} {
		b.Run(path, func(b *testing.B) {
			translate.SetReferenceOnly(path == "reference")
			binding := libBindings(b, "ListBooks", translate.JSONOptions{EmitUnpopulated: true})[0]
			translate.SetReferenceOnly(false)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := binding.DecodeRequest(req); err != nil {
					b.Fatal(err)
				}
				if _, err := binding.EncodeResponse(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
