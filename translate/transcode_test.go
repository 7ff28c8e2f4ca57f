package translate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/descriptors"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// fuzzTarget is one message type the differential tests convert.
type fuzzTarget struct {
	md  protoreflect.MessageDescriptor
	res Resolver
}

var (
	targetsOnce sync.Once
	targets     []fuzzTarget
	targetsErr  error
)

// fuzzTargets returns the library's Book and ListBooksRequest and the
// kitchen-sink test message of testdata/kitchen.proto, loaded at run time.
func fuzzTargets(tb testing.TB) []fuzzTarget {
	tb.Helper()
	targetsOnce.Do(func() {
		schema, err := descriptors.Load(context.Background(), []descriptors.Source{{Proto: &descriptors.ProtoSource{ImportPaths: []string{"testdata"}, Files: []string{"kitchen.proto"}}}})
		if err != nil {
			targetsErr = err
			return
		}
		kitchen, err := schema.Types().FindMessageByName("rosetta.test.v1.Kitchen")
		if err != nil {
			targetsErr = err
			return
		}
		targets = []fuzzTarget{
			{(&libraryv1.Book{}).ProtoReflect().Descriptor(), protoregistry.GlobalTypes},
			{(&libraryv1.ListBooksRequest{}).ProtoReflect().Descriptor(), protoregistry.GlobalTypes},
			{kitchen.Descriptor(), schema.Types()},
		}
	})
	if targetsErr != nil {
		tb.Fatal(targetsErr)
	}
	return targets
}

// fuzzOptions are the option sets the differential tests try.
var fuzzOptions = []JSONOptions{
	{},
	{DiscardUnknown: true},
	{UseProtoNames: true, EmitUnpopulated: true},
	{UseEnumNumbers: true, EmitUnpopulated: true, DiscardUnknown: true},
}

// pick chooses a target and options from the fuzzer's selector byte and
// builds both codecs for them.
func pick(tb testing.TB, sel byte) (fast *transcoder, ref *referenceCodec, t fuzzTarget) {
	tb.Helper()
	ts := fuzzTargets(tb)
	t = ts[int(sel)%len(ts)]
	opts := fuzzOptions[int(sel)/len(ts)%len(fuzzOptions)]
	c, ok := newCodec(t.md, opts, t.res).(*transcoder)
	if !ok {
		tb.Fatalf("%s: no transcoder", t.md.FullName())
	}
	return c, newReferenceCodec(t.md, opts, t.res), t
}

// canonicalWire re-marshals wire bytes deterministically, so that two
// encodings of one message compare equal.
func canonicalWire(tb testing.TB, t fuzzTarget, wire []byte) []byte {
	tb.Helper()
	m := dynamicpb.NewMessage(t.md)
	if err := (proto.UnmarshalOptions{Resolver: t.res}).Unmarshal(wire, m); err != nil {
		tb.Fatalf("the wire bytes do not unmarshal: %v", err)
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// FuzzDecodeJSON feeds JSON documents to the transcoder and to protojson
// with dynamicpb, and requires the same decision and the same message.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{}`), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, sel byte) {
		fast, ref, target := pick(t, sel)
		got, gotErr := fast.unmarshalJSON(nil, data)
		want, wantErr := ref.unmarshalJSON(nil, data)
		var unsupported errUnsupported
		switch {
		case errors.As(gotErr, &unsupported):
			return // left to protojson by design
		case gotErr != nil && wantErr == nil:
			t.Fatalf("%s %+v: the transcoder rejects %q (%v), protojson accepts it", target.md.FullName(), fast.opts, data, gotErr)
		case gotErr == nil && wantErr != nil:
			t.Fatalf("%s %+v: the transcoder accepts %q, protojson rejects it: %v", target.md.FullName(), fast.opts, data, wantErr)
		case gotErr == nil:
			if g, w := canonicalWire(t, target, got), canonicalWire(t, target, want); !bytes.Equal(g, w) {
				t.Fatalf("%s %+v: %q decodes to\n%x\nprotojson:\n%x", target.md.FullName(), fast.opts, data, g, w)
			}
		}
	})
}

// FuzzEncodeJSON feeds wire bytes to the transcoder and to dynamicpb with
// protojson, and requires the same decision and the same JSON, compared as
// values with numbers kept as written. Input that is a JSON document of the
// message stands for the message it decodes to, so that the fuzzer also
// explores random valid messages.
func FuzzEncodeJSON(f *testing.F) {
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, wire []byte, sel byte) {
		fast, ref, target := pick(t, sel)
		if len(wire) > 0 && wire[0] == '{' {
			if w, err := ref.unmarshalJSON(nil, wire); err == nil {
				wire = w
			}
		}
		got, gotErr := fast.marshalJSON(nil, wire)
		want, wantErr := ref.marshalJSON(nil, wire)
		var unsupported errUnsupported
		switch {
		case errors.As(gotErr, &unsupported):
			return
		case errors.Is(wantErr, errMalformedWire):
			return // protobuf-go panicked: the transcoder's answer is as good as any
		case gotErr != nil && wantErr == nil:
			t.Fatalf("%s %+v: the transcoder rejects %x (%v), protojson renders %s", target.md.FullName(), fast.opts, wire, gotErr, want)
		case gotErr == nil && wantErr != nil:
			t.Fatalf("%s %+v: the transcoder renders %x as %s, protojson rejects it: %v", target.md.FullName(), fast.opts, wire, got, wantErr)
		case gotErr == nil:
			if !sameJSON(t, got, want) {
				t.Fatalf("%s %+v: %x renders as\n%s\nprotojson:\n%s", target.md.FullName(), fast.opts, wire, got, want)
			}
		}
	})
}

// sameJSON reports whether two JSON documents hold the same values, numbers
// compared by their text.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(decodeAny(t, a), decodeAny(t, b))
}

func decodeAny(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", data, err)
	}
	return v
}

// TestTranscoderBook checks the benchmark's fixture both ways against the
// reference with every option set.
func TestTranscoderBook(t *testing.T) {
	body, err := os.ReadFile("testdata/book_2k.json")
	if err != nil {
		t.Fatal(err)
	}
	for sel := range 3 * len(fuzzOptions) {
		fast, ref, target := pick(t, byte(sel*3))
		if target.md.Name() != "Book" {
			t.Fatalf("selector %d picks %s", sel*3, target.md.FullName())
		}
		got, err := fast.unmarshalJSON(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.unmarshalJSON(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(canonicalWire(t, target, got), canonicalWire(t, target, want)) {
			t.Errorf("%+v: the decoded books differ", fast.opts)
		}
		gotJSON, err := fast.marshalJSON(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		wantJSON, err := ref.marshalJSON(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, gotJSON, wantJSON) {
			t.Errorf("%+v: rendered\n%s\nwant\n%s", fast.opts, gotJSON, wantJSON)
		}
	}
}

// TestTranscoderDepth checks the nesting limit of 64 messages, which
// protojson also applies.
func TestTranscoderDepth(t *testing.T) {
	fast, ref, _ := pick(t, 2)
	for _, depth := range []int{63, 64, 65, 200} {
		doc := strings.Repeat(`{"child":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
		_, gotErr := fast.unmarshalJSON(nil, []byte(doc))
		_, wantErr := ref.unmarshalJSON(nil, []byte(doc))
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil) != (depth <= 64) {
			t.Errorf("depth %d: transcoder %v, protojson %v", depth, gotErr, wantErr)
		}
	}
}

// TestTranscoderUnsupportedSchema checks that a proto2 message is left to
// the reference codec.
func TestTranscoderUnsupportedSchema(t *testing.T) {
	md := descriptorpb.File_google_protobuf_descriptor_proto.Messages().ByName("FileDescriptorProto")
	if _, ok := newCodec(md, JSONOptions{}, protoregistry.GlobalTypes).(*referenceCodec); !ok {
		t.Error("a proto2 message got the transcoder")
	}
}

// libraryBindings compiles every HTTP binding of the library service.
func libraryBindings(t testing.TB, opts JSONOptions) []*Binding {
	t.Helper()
	sd := (&libraryv1.Book{}).ProtoReflect().Descriptor().ParentFile().Services().ByName("LibraryService")
	var out []*Binding
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		rule, ok, err := descriptors.HTTPRule(md)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		bs, err := Bindings(md, rule, opts, protoregistry.GlobalTypes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bs...)
	}
	return out
}

// TestBindingPathsAgree runs requests through every library binding twice,
// on the transcoder and on the reference path alone, and requires the same
// wire bytes or the same error; likewise for responses.
func TestBindingPathsAgree(t *testing.T) {
	fast := libraryBindings(t, JSONOptions{})
	referenceOnly = true
	ref := libraryBindings(t, JSONOptions{})
	referenceOnly = false
	book, err := os.ReadFile("testdata/book_2k.json")
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{"", "{}", string(book), `{"name": "shelves/a/books/b", "title": "T"}`, `{"book": {"title": "x"}, "otherShelf": "s"}`,
		`{"title": 1}`, `null`, `"text"`, `{"pageCount": 1} {}`}
	queries := []string{"", "pageSize=5&filter.genre=GENRE_FICTION&genres=1&genres=GENRE_POETRY&labels[a]=b&readMask=title,pageCount",
		"bookId=x", "unknown=1", "pageSize=x", "book.title=t",
		"pageSize=5&filter.genre=GENRE_FICTION&genres=1&genres=GENRE_POETRY&tags=a&tags=b", "page_size=1&pageSize=2",
		"pageSize=1&pageSize=2", "filter.author.name=x&filter.minPages=3", "filter.author.name=x&filter.author.born=2000-01-01T00:00:00Z",
		"showUnavailable=true&minPriceCents=-5&minRating=1.5&cursor=AAE%3D", "pageToken=a+b%20c", "parent=x", "pageSize=1;x=2",
		"%zz=1", "=x", "&&pageSize=3&", "filter.genre=7&filter.genre=1", "tags=a&tags=", "showUnavailable=1&min_rating=NaN",
		"name=x", "book.name=x", "otherShelf=y", "filter=x", "filter.nope=1", "readMask.paths=a"}
	for i, b := range fast {
		pathValues := make([]string, len(b.pathFields))
		for k := range pathValues {
			pathValues[k] = "shelves/s1"
			if strings.Contains(b.Template.Source, "books/*") {
				pathValues[k] = "shelves/s1/books/b%2F1"
			}
		}
		for _, body := range bodies {
			for _, query := range queries {
				r := &Request{PathValues: pathValues, Body: []byte(body), Query: query, ContentType: "application/json"}
				got, gotErr := b.DecodeRequest(r)
				want, wantErr := ref[i].DecodeRequest(r)
				name := b.HTTPMethod + " " + b.Template.Source + " " + body + " ?" + query
				if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
					t.Errorf("%s: transcoder error %v, reference %v", name, gotErr, wantErr)
					continue
				}
				if gotErr == nil {
					target := fuzzTarget{b.Method.Input(), protoregistry.GlobalTypes}
					if !bytes.Equal(canonicalWire(t, target, got), canonicalWire(t, target, want)) {
						t.Errorf("%s: the requests differ", name)
					}
				}
			}
		}
		wire, err := proto.Marshal(&libraryv1.Book{Name: "n", Tags: []string{"a"}, Attributes: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range [][]byte{nil, wire, {0xff}} {
			got, gotErr := b.EncodeResponse(w)
			want, wantErr := ref[i].EncodeResponse(w)
			if (gotErr == nil) != (wantErr == nil) {
				t.Errorf("%s %s response %x: transcoder error %v, reference %v", b.HTTPMethod, b.Template.Source, w, gotErr, wantErr)
				continue
			}
			if gotErr == nil && (got.ContentType != want.ContentType || !sameJSONOrBytes(t, got.Body, want.Body)) {
				t.Errorf("%s %s response %x: %s, reference %s", b.HTTPMethod, b.Template.Source, w, got.Body, want.Body)
			}
		}
	}
}

func sameJSONOrBytes(t *testing.T, a, b []byte) bool {
	if !json.Valid(a) || !json.Valid(b) {
		return bytes.Equal(a, b)
	}
	return sameJSON(t, a, b)
}

// TestEncodeResponseMalformedMapEntry feeds the reference path wire bytes on
// which protobuf-go panics; the binding answers with an error instead.
func TestEncodeResponseMalformedMapEntry(t *testing.T) {
	referenceOnly = true
	bs := libraryBindings(t, JSONOptions{})
	referenceOnly = false
	var b *Binding
	for _, c := range bs {
		if c.Method.Name() == "GetBook" {
			b = c
		}
	}
	// attributes (12): an entry whose key comes first as a string, then
	// again with the varint wire type.
	entry := []byte{0x0a, 0x01, 'k', 0x08, 0x01}
	wire := append([]byte{0x62, byte(len(entry))}, entry...)
	if _, err := b.EncodeResponse(wire); !errors.Is(err, errMalformedWire) {
		t.Errorf("EncodeResponse = %v, want errMalformedWire", err)
	}
}

// FuzzDecodeRequest feeds query strings and bodies to every library binding
// twice, on the fast path and on the reference path alone, and requires the
// same request or the same error.
func FuzzDecodeRequest(f *testing.F) {
	for _, q := range []string{"pageSize=5&filter.genre=GENRE_FICTION&genres=1&genres=GENRE_POETRY&tags=a&tags=b",
		"page_size=1&pageSize=2", "filter.author.name=x&filter.minPages=3", "showUnavailable=true&minPriceCents=-5&minRating=1.5&cursor=AAE%3D",
		"labels[a]=b", "bookId=x", "readMask=title,pageCount", "pageToken=a+b%20c&maxReadTime=1.5s"} {
		f.Add(q, []byte(`{"title": "t", "pageCount": 3}`), byte(0))
	}
	fast := libraryBindings(f, JSONOptions{})
	referenceOnly = true
	ref := libraryBindings(f, JSONOptions{})
	referenceOnly = false
	f.Fuzz(func(t *testing.T, query string, body []byte, sel byte) {
		i := int(sel) % len(fast)
		b := fast[i]
		pathValues := make([]string, len(b.pathFields))
		for k := range pathValues {
			pathValues[k] = "shelves/s1/books/b1"
		}
		r := &Request{PathValues: pathValues, Body: body, Query: query, ContentType: "application/json"}
		got, gotErr := b.DecodeRequest(r)
		want, wantErr := ref[i].DecodeRequest(r)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%s %s ?%s %q: fast path error %v, reference %v", b.HTTPMethod, b.Template.Source, query, body, gotErr, wantErr)
		}
		if gotErr == nil {
			target := fuzzTarget{b.Method.Input(), protoregistry.GlobalTypes}
			if !bytes.Equal(canonicalWire(t, target, got), canonicalWire(t, target, want)) {
				t.Fatalf("%s %s ?%s %q: the requests differ", b.HTTPMethod, b.Template.Source, query, body)
			}
		}
	})
}
