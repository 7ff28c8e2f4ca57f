//go:build amd64 || arm64

package validate

import (
	"buf.build/go/hyperpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// newDecoder returns the decoder of md's messages: buf's hyperpb, a
// table-driven parser whose read-only messages protovalidate checks (its
// conformance suite runs on them), about twice as fast as dynamicpb with a
// sixth of the allocations on the benchmark's 2 KB request. hyperpb
// leaves extensions unparsed (unknown fields, which carry no rule).
//
// hyperpb (v0.1.3) parses only bytes that translate.WireValid certifies:
// it accepts some malformed input that dynamicpb refuses (an unknown field
// whose length runs past the end of a map entry), and it is a parser built
// on unsafe code. What WireValid leaves in doubt, and what hyperpb refuses
// (it refuses valid unknown fields numbered above about 2^23), dynamicpb
// decides; FuzzDecodersAgree compares the two. A type hyperpb cannot
// compile is decoded with dynamicpb.
func newDecoder(md protoreflect.MessageDescriptor, res translate.Resolver) (d decoder) {
	dynamic := dynamicDecoder(md, res)
	defer func() {
		if recover() != nil { // "md is too complicated" for its compiler
			d = dynamic
		}
	}()
	mt := hyperpb.CompileMessageDescriptor(md)
	return func(b []byte) (proto.Message, error) {
		if !translate.WireValid(md, b) {
			return dynamic(b)
		}
		m := hyperpb.NewMessage(mt)
		if err := unmarshal.Unmarshal(b, m); err != nil {
			return dynamic(b)
		}
		return m, nil
	}
}
