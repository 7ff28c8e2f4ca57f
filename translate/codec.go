package translate

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// codec converts one message type between its proto3 JSON form and its
// protobuf wire form. A binding holds one for the request body and one for
// the response: the transcoder when the schema allows it, else the
// protojson reference.
type codec interface {
	// unmarshalJSON appends to dst the wire form of the JSON message data.
	unmarshalJSON(dst, data []byte) ([]byte, error)
	// marshalJSON appends to dst the JSON form of the wire message.
	marshalJSON(dst, wire []byte) ([]byte, error)
}

// referenceOnly makes the bindings compiled while it is set use the
// protojson path alone; tests and benchmarks set it to compare the paths.
var referenceOnly bool

// newCodec returns the transcoder for md, or the reference when md uses
// something the transcoder leaves to protojson.
func newCodec(md protoreflect.MessageDescriptor, opts JSONOptions, res Resolver) codec {
	ref := newReferenceCodec(md, opts, res)
	if referenceOnly {
		return ref
	}
	t, err := compileTable(md)
	if err != nil {
		return ref
	}
	return &transcoder{table: t, opts: opts, resolver: res, ref: ref}
}

// referenceCodec is the protojson and dynamicpb path: the definition of the
// right answer, which the transcoder is fuzzed against.
type referenceCodec struct {
	typ       protoreflect.MessageType
	unmarshal protojson.UnmarshalOptions
	marshal   protojson.MarshalOptions
	wire      proto.UnmarshalOptions
}

func newReferenceCodec(md protoreflect.MessageDescriptor, opts JSONOptions, res Resolver) *referenceCodec {
	return &referenceCodec{
		typ:       dynamicpb.NewMessageType(md),
		unmarshal: protojson.UnmarshalOptions{DiscardUnknown: opts.DiscardUnknown, Resolver: res, RecursionLimit: opts.maxDepth()},
		marshal: protojson.MarshalOptions{
			UseProtoNames: opts.UseProtoNames, EmitUnpopulated: opts.EmitUnpopulated,
			UseEnumNumbers: opts.UseEnumNumbers, Resolver: res,
		},
		wire: proto.UnmarshalOptions{Resolver: res},
	}
}

func (c *referenceCodec) unmarshalJSON(dst, data []byte) ([]byte, error) {
	m := c.typ.New()
	if err := c.unmarshal.Unmarshal(data, m.Interface()); err != nil {
		return dst, err
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, m.Interface())
}

func (c *referenceCodec) marshalJSON(dst, wire []byte) ([]byte, error) {
	m := c.typ.New()
	if err := unmarshalWire(c.wire, wire, m.Interface()); err != nil {
		return dst, fmt.Errorf("upstream response %s: %w", m.Descriptor().FullName(), err)
	}
	return c.marshal.MarshalAppend(dst, m.Interface())
}

// transcoder converts JSON to wire bytes and back directly, from tables
// compiled once per binding; see transcode_table.go.
type transcoder struct {
	table    *msgTable
	opts     JSONOptions
	resolver Resolver
	ref      *referenceCodec // for the well-known types left to protojson
}

// The scratch state of the transcoder is pooled, so that a call allocates
// little more than its result.
var (
	decoderPool = sync.Pool{New: func() any { return new(jsonDecoder) }}
	encoderPool = sync.Pool{New: func() any { return new(jsonEncoder) }}
	bufferPool  = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
)

// maxPooledBuffer (bytes) and maxPooledItems (elements of the other
// scratch slices) bound the scratch kept in the pools: a larger one, grown
// by an unusually large message, is left to the garbage collector.
const (
	maxPooledBuffer = 1 << 20
	maxPooledItems  = 1 << 14
)

func (c *transcoder) unmarshalJSON(dst, data []byte) ([]byte, error) {
	d := decoderPool.Get().(*jsonDecoder)
	d.discardUnknown, d.resolver, d.maxDepth = c.opts.DiscardUnknown, c.resolver, c.opts.maxDepth()
	out, err := d.decodeJSON(dst, c.table, data)
	d.data = nil
	if cap(d.str) <= maxPooledBuffer && cap(d.keys) <= maxPooledBuffer && cap(d.raw) <= maxPooledBuffer && cap(d.keyEnds) <= maxPooledItems {
		decoderPool.Put(d)
	}
	return out, err
}

func (c *transcoder) marshalJSON(dst, wire []byte) ([]byte, error) {
	e := encoderPool.Get().(*jsonEncoder)
	e.opts, e.resolver, e.marshal = c.opts, c.resolver, c.ref.marshal
	out, err := e.encodeJSON(dst, c.table, wire)
	e.resolver = nil
	clear(e.entries[:cap(e.entries)]) // they point into wire
	if cap(e.occ) <= maxPooledItems && cap(e.entries) <= maxPooledItems {
		encoderPool.Put(e)
	}
	return out, err
}

// getBuffer takes an empty scratch buffer from the pool.
func getBuffer() *[]byte {
	bp := bufferPool.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

// putBuffer returns a copy of out, written into the buffer bp came with,
// sized exactly, and gives the buffer back to the pool.
func putBuffer(bp *[]byte, out []byte, err error) ([]byte, error) {
	var res []byte
	if err == nil {
		res = make([]byte, len(out))
		copy(res, out)
	}
	if cap(out) <= maxPooledBuffer {
		*bp = out[:0]
		bufferPool.Put(bp)
	}
	return res, err
}

// errMalformedWire stands for a panic of proto.Unmarshal: protobuf-go
// v1.36 panics on a dynamicpb map entry whose key is repeated with a wrong
// wire type ("cannot convert nil to map key").
var errMalformedWire = errors.New("malformed wire bytes")

// unmarshalWire is opts.Unmarshal that turns a panic into errMalformedWire,
// so that malformed upstream bytes cannot take the gateway down.
func unmarshalWire(opts proto.UnmarshalOptions, wire []byte, m proto.Message) (err error) {
	defer func() {
		if recover() != nil {
			err = errMalformedWire
		}
	}()
	return opts.Unmarshal(wire, m)
}
