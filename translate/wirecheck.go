package translate

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxWireDepth bounds how deep WireValid follows nested messages; deeper
// input is left to the full decoder.
const maxWireDepth = 100

// WireValid reports whether b is certainly a valid md message in protobuf
// wire format, as proto.Unmarshal into a dynamic message would find it,
// walking the bytes against the descriptor without building a message:
// tags, lengths and varints well formed, nested messages valid, strings
// valid UTF-8. False means "not certain" (malformed input, or a case the
// walk leaves to the full decoder: a proto2 required field, an extension
// number, a known field with an unexpected wire type, nesting past
// maxWireDepth), and the caller decodes the message to know.
func WireValid(md protoreflect.MessageDescriptor, b []byte) bool {
	return wireValid(md, b, 0)
}

func wireValid(md protoreflect.MessageDescriptor, b []byte, depth int) bool {
	if depth > maxWireDepth || md.RequiredNumbers().Len() > 0 {
		return false
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return false
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd == nil {
			if md.ExtensionRanges().Has(num) {
				return false
			}
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return false
			}
			b = b[n:]
			continue
		}
		if n = fieldValid(fd, num, typ, b, depth); n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// fieldValid checks the value of known field fd at the start of b and
// returns its length, or a negative number when it is not certainly valid.
func fieldValid(fd protoreflect.FieldDescriptor, num protowire.Number, typ protowire.Type, b []byte, depth int) int {
	want := wireTypeOf(fd.Kind())
	if fd.Kind() == protoreflect.GroupKind {
		want = protowire.StartGroupType
	}
	switch {
	case typ == want && want == protowire.BytesType:
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return n
		}
		switch fd.Kind() {
		case protoreflect.MessageKind:
			if !wireValid(fd.Message(), v, depth+1) {
				return -1
			}
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return -1 // proto2 allows it: the decoder tells
			}
		}
		return n
	case typ == want && want == protowire.StartGroupType:
		v, n := protowire.ConsumeGroup(num, b)
		if n < 0 || !wireValid(fd.Message(), v, depth+1) {
			return -1
		}
		return n
	case typ == want:
		return protowire.ConsumeFieldValue(num, typ, b)
	case typ == protowire.BytesType && fd.IsList() && (want == protowire.VarintType || want == protowire.Fixed32Type || want == protowire.Fixed64Type):
		v, n := protowire.ConsumeBytes(b) // packed
		if n < 0 {
			return n
		}
		for len(v) > 0 {
			m := protowire.ConsumeFieldValue(num, want, v)
			if m < 0 {
				return m
			}
			v = v[m:]
		}
		return n
	}
	return -1 // stored as an unknown field by the decoder: let it say
}
