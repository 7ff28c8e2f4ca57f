package descriptors

import (
	"fmt"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// httpResolver knows only the google.api.http extension, as its generated
// Go type.
var httpResolver = func() *protoregistry.Types {
	types := new(protoregistry.Types)
	if err := types.RegisterExtension(annotations.E_Http); err != nil {
		panic(err)
	}
	return types
}()

// HTTPRule returns the google.api.http option of m, and false when m has
// none. It works whatever produced the descriptor: the option may be held as
// a generated message, as a dynamic message or as unknown fields, so the
// options are re-read against the generated extension type.
func HTTPRule(m protoreflect.MethodDescriptor) (*annotations.HttpRule, bool, error) {
	b, err := proto.Marshal(m.Options())
	if err != nil {
		return nil, false, fmt.Errorf("method %s: options: %w", m.FullName(), err)
	}
	opts := new(descriptorpb.MethodOptions)
	if err := (proto.UnmarshalOptions{Resolver: httpResolver}).Unmarshal(b, opts); err != nil {
		return nil, false, fmt.Errorf("method %s: google.api.http option: %w", m.FullName(), err)
	}
	if !proto.HasExtension(opts, annotations.E_Http) {
		return nil, false, nil
	}
	return proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule), true, nil
}

// NoSideEffects reports whether m is a unary method that is safe to call
// by a GET: marked idempotency_level = NO_SIDE_EFFECTS, or bound to an HTTP
// GET by its google.api.http rule.
func NoSideEffects(m protoreflect.MethodDescriptor) bool {
	if m.IsStreamingClient() || m.IsStreamingServer() {
		return false
	}
	if opts, ok := m.Options().(*descriptorpb.MethodOptions); ok && opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
		return true
	}
	rule, ok, err := HTTPRule(m)
	return err == nil && ok && rule.GetGet() != ""
}
