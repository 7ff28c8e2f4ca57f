package translate_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/translate"
)

// wireTypes are the messages the wire check is tried on: proto3 with
// nesting, maps, repeated and packed fields, well-known types; and proto2
// (descriptor.proto), whose required fields the check leaves to the
// decoder.
var wireTypes = []protoreflect.MessageDescriptor{
	(&libraryv1.CreateBookRequest{}).ProtoReflect().Descriptor(),
	(&libraryv1.ListBooksRequest{}).ProtoReflect().Descriptor(),
	(&descriptorpb.FileDescriptorProto{}).ProtoReflect().Descriptor(),
}

func wireSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, m := range []proto.Message{
		&libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "b", Book: &libraryv1.Book{Name: "n", Author: &libraryv1.Author{Name: "a", Born: timestamppb.Now()},
			Reviews: []*libraryv1.Review{{Stars: 5}, {Stars: 1}}, CoverThumbnail: []byte{0xff, 0}, Available: true, PriceCents: 1 << 40}},
		&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{Title: "é", Tags: []string{"a", "b"}, Attributes: map[string]string{"k": "v"},
			PublishTime: timestamppb.Now(), ReadTime: durationpb.New(3), Rating: wrapperspb.Double(4.5), PageCount: -1}},
		&libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 3, Genres: []libraryv1.Genre{1, 2, 3}, Tags: []string{"x"}},
		&descriptorpb.FileDescriptorProto{Name: proto.String("a.proto"), MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// checkWireValid fails when WireValid certifies bytes the decoder refuses
// as a message of type md.
func checkWireValid(t *testing.T, md protoreflect.MessageDescriptor, b []byte) {
	if translate.WireValid(md, b) {
		if err := proto.Unmarshal(b, dynamicpb.NewMessage(md)); err != nil {
			t.Fatalf("WireValid(%s, %x) is true, but the decoder says %v", md.FullName(), b, err)
		}
	}
}

// TestWireValid: the walk certifies well-formed messages (so that the fast
// path is taken) and none that the decoder refuses.
func TestWireValid(t *testing.T) {
	seeds := wireSeeds(t)
	for i, b := range seeds[:3] {
		md := wireTypes[0]
		if i == 2 {
			md = wireTypes[1]
		}
		if !translate.WireValid(md, b) {
			t.Errorf("seed %d: a valid %s is not certified", i, md.FullName())
		}
	}
	for _, bad := range [][]byte{
		{0x0a, 0x05, 'a'},             // a length past the end
		{0x00},                        // field number 0
		{0x0a, 0x02, 0xc3, 0x28},      // invalid UTF-8 in a proto3 string
		{0x12, 0x03, 0x0a, 0x05, 'x'}, // a nested message cut short
		{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // a varint too long
		{0x0b}, // a group start with no end
	} {
		if translate.WireValid(wireTypes[0], bad) {
			t.Errorf("%x is certified valid", bad)
		}
		for _, md := range wireTypes {
			checkWireValid(t, md, bad)
		}
	}
}

// FuzzWireValid checks the walk against the decoder on any bytes.
func FuzzWireValid(f *testing.F) {
	for _, b := range wireSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, md := range wireTypes {
			checkWireValid(t, md, b)
		}
	})
}

// BenchmarkWireValid compares the walk with the decode it spares, on a
// CreateBookRequest of about 2 KB.
func BenchmarkWireValid(b *testing.B) {
	reviews := make([]*libraryv1.Review, 20)
	for i := range reviews {
		reviews[i] = &libraryv1.Review{Stars: 4, Text: "a fine book, read it twice; the ending is the best part"}
	}
	msg, err := proto.Marshal(&libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "b2k", Book: &libraryv1.Book{
		Title: "Dune", Author: &libraryv1.Author{Name: "Frank Herbert", Born: timestamppb.Now()}, Tags: []string{"classic", "sf"},
		Attributes: map[string]string{"edition": "first"}, Reviews: reviews, PublishTime: timestamppb.Now()}})
	if err != nil {
		b.Fatal(err)
	}
	md := wireTypes[0]
	b.Logf("%d bytes", len(msg))
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !translate.WireValid(md, msg) {
				b.Fatal("not certified")
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(msg, dynamicpb.NewMessage(md)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
