package translate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// resolveFieldPath resolves a dotted field path (proto names) against md.
// Every element but the last must be a singular message field.
func resolveFieldPath(md protoreflect.MessageDescriptor, path []string) ([]protoreflect.FieldDescriptor, error) {
	fds := make([]protoreflect.FieldDescriptor, 0, len(path))
	for i, name := range path {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("no field %q in message %s", name, md.FullName())
		}
		fds = append(fds, fd)
		if i < len(path)-1 {
			if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
				return nil, fmt.Errorf("field %q of %s is not a singular message, so %q cannot be traversed", name, md.FullName(), strings.Join(path, "."))
			}
			md = fd.Message()
		}
	}
	return fds, nil
}

// lookupField finds a field of md by its proto name or its JSON name.
func lookupField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	fields := md.Fields()
	if fd := fields.ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return fields.ByJSONName(name)
}

// mutableParent walks fds[:len-1] from m, creating messages as needed, and
// returns the message holding the last field.
func mutableParent(m protoreflect.Message, fds []protoreflect.FieldDescriptor) protoreflect.Message {
	for _, fd := range fds[:len(fds)-1] {
		m = m.Mutable(fd).Message()
	}
	return m
}

// isWellKnownScalar reports whether a message type is read from one string
// in a path or query parameter (Timestamp, Duration, FieldMask, wrappers).
func isWellKnownScalar(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return true
	}
	return false
}

// parseScalar converts one textual parameter into a value of field fd, which
// must not be a message field (see setFromString for those).
func parseScalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(s) { // proto3 strings are UTF-8: refuse it here, as the client's mistake
			return protoreflect.Value{}, fmt.Errorf("invalid UTF-8 in a string value")
		}
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BytesKind:
		b, err := decodeBase64(s)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("invalid base64 value %q", s)
		}
		return protoreflect.ValueOfBytes(b), nil
	case protoreflect.BoolKind:
		switch s {
		case "true", "1":
			return protoreflect.ValueOfBool(true), nil
		case "false", "0":
			return protoreflect.ValueOfBool(false), nil
		}
		return protoreflect.Value{}, fmt.Errorf("invalid bool value %q", s)
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ev := ed.Values().ByName(protoreflect.Name(s)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), nil
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || (ed.Values().ByNumber(protoreflect.EnumNumber(n)) == nil && ed.IsClosed()) {
			return protoreflect.Value{}, fmt.Errorf("invalid value %q for enum %s", s, ed.FullName())
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("invalid int32 value %q", s)
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("invalid int64 value %q", s)
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("invalid uint32 value %q", s)
		}
		return protoreflect.ValueOfUint32(uint32(n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("invalid uint64 value %q", s)
		}
		return protoreflect.ValueOfUint64(n), nil
	case protoreflect.FloatKind:
		f, ok := parseFloat(s, 32)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("invalid float value %q", s)
		}
		return protoreflect.ValueOfFloat32(float32(f)), nil
	case protoreflect.DoubleKind:
		f, ok := parseFloat(s, 64)
		if !ok {
			return protoreflect.Value{}, fmt.Errorf("invalid double value %q", s)
		}
		return protoreflect.ValueOfFloat64(f), nil
	}
	return protoreflect.Value{}, fmt.Errorf("a %s field cannot be set from a parameter", fd.Kind())
}

// parseFloat reads a float or double parameter as proto3 JSON spells it
// and grpc-gateway reads it: a decimal number (an exponent allowed) within
// the type's range, or exactly "NaN", "Infinity" or "-Infinity". Go's other
// spellings ("nan", "inf", "+Inf", hexadecimal, digit separators) and
// out-of-range values are refused.
func parseFloat(s string, bitSize int) (float64, bool) {
	switch s {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	if strings.ContainsAny(s, "xX_") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, bitSize)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// decodeBase64 accepts standard and URL-safe base64, padded or not, as the
// proto3 JSON mapping does.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
}

// setFromString sets (or, for a list, appends) the field fd of m from one
// textual value.
func setFromString(m protoreflect.Message, fd protoreflect.FieldDescriptor, s string, opts protojson.UnmarshalOptions) error {
	if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
		v, err := parseScalar(fd, s)
		if err != nil {
			return err
		}
		if fd.IsList() {
			m.Mutable(fd).List().Append(v)
		} else {
			m.Set(fd, v)
		}
		return nil
	}
	md := fd.Message()
	if !isWellKnownScalar(md) {
		return fmt.Errorf("message field cannot be set from a parameter")
	}
	var target protoreflect.Message
	if fd.IsList() {
		target = m.Mutable(fd).List().NewElement().Message()
	} else {
		target = m.NewField(fd).Message()
	}
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration":
		quoted, _ := json.Marshal(s) // a string always marshals
		if err := opts.Unmarshal(quoted, target.Interface()); err != nil {
			return fmt.Errorf("invalid %s value %q", md.Name(), s)
		}
	case "google.protobuf.FieldMask":
		if err := setFieldMask(target, s); err != nil {
			return err
		}
	default: // a wrapper: its one field "value" holds the scalar
		vfd := md.Fields().ByNumber(1)
		v, err := parseScalar(vfd, s)
		if err != nil {
			return fmt.Errorf("%s: %w", md.Name(), err)
		}
		target.Set(vfd, v)
	}
	if fd.IsList() {
		m.Mutable(fd).List().Append(protoreflect.ValueOfMessage(target))
	} else {
		m.Set(fd, protoreflect.ValueOfMessage(target))
	}
	return nil
}

// setFieldMask fills the google.protobuf.FieldMask m from a comma-separated
// list of paths, written with proto names ("author.name,page_count", as
// grpc-gateway takes them) or JSON names ("pageCount").
func setFieldMask(m protoreflect.Message, s string) error {
	if s == "" {
		return nil
	}
	paths := m.Mutable(m.Descriptor().Fields().ByName("paths")).List()
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if strings.ContainsFunc(p, unicode.IsUpper) {
			var b strings.Builder
			for _, r := range p {
				if unicode.IsUpper(r) {
					b.WriteByte('_')
					r = unicode.ToLower(r)
				}
				b.WriteRune(r)
			}
			p = b.String()
		}
		if !protoreflect.FullName(p).IsValid() {
			return fmt.Errorf("invalid FieldMask path %q", p)
		}
		paths.Append(protoreflect.ValueOfString(p))
	}
	return nil
}

// appendPathField appends to the wire bytes out the field path fds set to
// the textual value s, nested in its parent messages. The leaf must not be
// a message field.
func appendPathField(out []byte, fds []protoreflect.FieldDescriptor, s string) ([]byte, error) {
	if len(fds) > 1 {
		out, mark := beginLen(out, fds[0].Number())
		out, err := appendPathField(out, fds[1:], s)
		return endLen(out, mark), err
	}
	fd := fds[0]
	v, err := parseScalar(fd, s)
	if err != nil {
		return out, err
	}
	k := fd.Kind()
	out = protowire.AppendTag(out, fd.Number(), wireTypeOf(k))
	switch k {
	case protoreflect.BoolKind:
		return protowire.AppendVarint(out, protowire.EncodeBool(v.Bool())), nil
	case protoreflect.EnumKind:
		return protowire.AppendVarint(out, uint64(int64(v.Enum()))), nil
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		return protowire.AppendVarint(out, uint64(v.Int())), nil
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protowire.AppendVarint(out, protowire.EncodeZigZag(v.Int())), nil
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return protowire.AppendVarint(out, v.Uint()), nil
	case protoreflect.Sfixed32Kind:
		return protowire.AppendFixed32(out, uint32(v.Int())), nil
	case protoreflect.Fixed32Kind:
		return protowire.AppendFixed32(out, uint32(v.Uint())), nil
	case protoreflect.Sfixed64Kind:
		return protowire.AppendFixed64(out, uint64(v.Int())), nil
	case protoreflect.Fixed64Kind:
		return protowire.AppendFixed64(out, v.Uint()), nil
	case protoreflect.FloatKind:
		return protowire.AppendFixed32(out, math.Float32bits(float32(v.Float()))), nil
	case protoreflect.DoubleKind:
		return protowire.AppendFixed64(out, math.Float64bits(v.Float())), nil
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) { // proto3 strings are UTF-8; the reference path names the field
			return out, fmt.Errorf("field %s contains invalid UTF-8", fd.FullName())
		}
		return protowire.AppendString(out, v.String()), nil
	}
	return protowire.AppendBytes(out, v.Bytes()), nil
}
