// Package rawcodec is the gRPC codec with which the gateway moves messages
// as the protobuf bytes they already are, never re-marshalled.
package rawcodec

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// Codec marshals *[]byte values as themselves. Its name is "proto", so
// peers see application/grpc. Use it per call (grpc.ForceCodecV2) or per
// server (grpc.ForceServerCodecV2), never registered globally.
type Codec struct{}

// Marshal returns the bytes v points to.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

// Unmarshal copies data into the []byte v points to.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

// Name is "proto".
func (Codec) Name() string { return "proto" }
