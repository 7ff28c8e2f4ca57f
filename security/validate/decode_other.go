//go:build !(amd64 || arm64)

package validate

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// newDecoder returns the decoder of md's messages: dynamicpb, hyperpb being
// built for amd64 and arm64 only.
func newDecoder(md protoreflect.MessageDescriptor, res translate.Resolver) decoder {
	return dynamicDecoder(md, res)
}
