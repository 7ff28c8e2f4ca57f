package translate

import (
	"bytes"
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// jsonDecoder converts one JSON document into protobuf wire bytes.
type jsonDecoder struct {
	scanner
	depth          int // messages that may still be entered
	maxDepth       int // JSONOptions.MaxDepth, or its default
	discardUnknown bool
	resolver       Resolver
	keys           []byte // the map keys seen so far, canonical, back to back
	keyEnds        []int  // where each key of keys ends
	raw            []byte // scratch for decoded base64
}

// decodeJSON appends to out the wire form of the JSON document data, a
// message of type t, exactly as protojson (with the binding's options) would
// decode and proto.Marshal it.
func (d *jsonDecoder) decodeJSON(out []byte, t *msgTable, data []byte) ([]byte, error) {
	d.data, d.pos, d.depth = data, 0, d.maxDepth
	out, err := d.message(out, t)
	if err != nil {
		return out, err
	}
	if d.peek() != 0 || d.pos != len(d.data) {
		return out, errJSON
	}
	return out, nil
}

// beginLen starts a length-delimited field: the tag and a one-byte length
// that endLen fixes up.
func beginLen(out []byte, num protowire.Number) ([]byte, int) {
	out = protowire.AppendTag(out, num, protowire.BytesType)
	out = append(out, 0)
	return out, len(out)
}

// endLen writes the length of what follows the placeholder at mark-1,
// moving it when the length needs more than one byte.
func endLen(out []byte, mark int) []byte {
	n := len(out) - mark
	if n < 0x80 {
		out[mark-1] = byte(n)
		return out
	}
	size := protowire.SizeVarint(uint64(n))
	out = append(out, make([]byte, size-1)...)
	copy(out[mark-1+size:], out[mark:mark+n])
	protowire.AppendVarint(out[mark-1:mark-1], uint64(n))
	return out
}

// message decodes a JSON value of message type t and appends its fields.
func (d *jsonDecoder) message(out []byte, t *msgTable) ([]byte, error) {
	if d.depth--; d.depth < 0 {
		return out, errJSON
	}
	defer func() { d.depth++ }()
	switch t.wkt {
	case wktTimestamp:
		return d.timestamp(out)
	case wktDuration:
		return d.duration(out)
	case wktWrapper:
		fi := &t.fields[0]
		v, err := d.scalar(fi)
		if err != nil {
			return out, err
		}
		return appendField(out, fi, v), nil
	case wktReference:
		return d.reference(out, t)
	}
	if !d.consume('{') {
		return out, errJSON
	}
	if d.consume('}') {
		return out, nil
	}
	var seen [maxTableFields / 64]uint64
	var oneofs uint64
	for {
		name, ok := d.readString()
		if !ok || !d.consume(':') {
			return out, errJSON
		}
		fi := t.byName[string(name)]
		if fi == nil {
			if len(name) > 1 && name[0] == '[' && name[len(name)-1] == ']' {
				return out, errUnsupported{"extension names"}
			}
			if !d.discardUnknown || !d.skipValue(d.depth) {
				return out, errJSON
			}
		} else {
			if seen[fi.index/64]&(1<<(fi.index%64)) != 0 {
				return out, errJSON
			}
			seen[fi.index/64] |= 1 << (fi.index % 64)
			var err error
			switch {
			case d.peek() == 'n' && !fi.isValue && !fi.nullValue && d.literal("null"):
			case fi.list:
				out, err = d.list(out, fi)
			case fi.isMap:
				out, err = d.mapField(out, fi)
			default:
				if fi.oneof >= 0 {
					if oneofs&(1<<fi.oneof) != 0 {
						return out, errJSON
					}
					oneofs |= 1 << fi.oneof
				}
				out, err = d.singular(out, fi)
			}
			if err != nil {
				return out, err
			}
		}
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			return out, nil
		}
		return out, errJSON
	}
}

// singular appends one field that holds one value.
func (d *jsonDecoder) singular(out []byte, fi *fieldInfo) ([]byte, error) {
	if fi.kind == protoreflect.MessageKind {
		out, mark := beginLen(out, fi.num)
		out, err := d.message(out, fi.msg)
		return endLen(out, mark), err
	}
	v, err := d.scalar(fi)
	if err != nil {
		return out, err
	}
	return appendField(out, fi, v), nil
}

// list appends the elements of a JSON array, packed when they can be.
func (d *jsonDecoder) list(out []byte, fi *fieldInfo) ([]byte, error) {
	if !d.consume('[') {
		return out, errJSON
	}
	if d.consume(']') {
		return out, nil
	}
	start, mark := len(out), 0
	if fi.packed {
		out, mark = beginLen(out, fi.num)
	}
	for {
		var err error
		switch {
		case fi.kind == protoreflect.MessageKind:
			out, err = d.singular(out, fi)
		case fi.packed:
			var v scalarValue
			if v, err = d.scalar(fi); err == nil && v.set {
				out = appendValue(out, fi, v)
			}
		default:
			var v scalarValue
			if v, err = d.scalar(fi); err == nil && v.set {
				out = protowire.AppendTag(out, fi.num, fi.wireType)
				out = appendValue(out, fi, v)
			}
		}
		if err != nil {
			return out, err
		}
		if d.consume(',') {
			continue
		}
		if !d.consume(']') {
			return out, errJSON
		}
		break
	}
	if fi.packed {
		if len(out) == mark {
			return out[:start], nil // only discarded enum names
		}
		out = endLen(out, mark)
	}
	return out, nil
}

// mapField appends the entries of a JSON object that is a map field.
func (d *jsonDecoder) mapField(out []byte, fi *fieldInfo) ([]byte, error) {
	if !d.consume('{') {
		return out, errJSON
	}
	if d.consume('}') {
		return out, nil
	}
	keysStart, endsStart := len(d.keys), len(d.keyEnds)
	defer func() { d.keys, d.keyEnds = d.keys[:keysStart], d.keyEnds[:endsStart] }()
	var index map[string]bool // for big maps
	kf, vf := fi.mapKey, fi.mapValue
	for {
		name, ok := d.readString()
		if !ok || !d.consume(':') {
			return out, errJSON
		}
		key, ok := mapKeyValue(kf, name)
		if !ok {
			return out, errJSON
		}
		// The canonical key: its wire value (or the string itself).
		canon := key.bytes
		var num [8]byte
		if kf.kind != protoreflect.StringKind {
			for i := range num {
				num[i] = byte(key.bits >> (8 * i))
			}
			canon = num[:]
		}
		if d.seenKey(canon, keysStart, endsStart, index) {
			return out, errJSON
		}
		// Keep the key: the scanner's scratch is reused by the value.
		d.keys = append(d.keys, canon...)
		d.keyEnds = append(d.keyEnds, len(d.keys))
		keyBytes := d.keys[len(d.keys)-len(canon):]

		entryStart := len(out)
		entry, mark := beginLen(out, fi.num)
		entry = protowire.AppendTag(entry, 1, kf.wireType)
		if kf.kind == protoreflect.StringKind {
			entry = protowire.AppendBytes(entry, keyBytes)
		} else {
			entry = appendValue(entry, kf, key)
		}
		var err error
		set := true
		if vf.kind == protoreflect.MessageKind {
			entry, err = d.singular(entry, vf)
		} else {
			var v scalarValue
			if v, err = d.scalar(vf); err == nil {
				set = v.set
				entry = protowire.AppendTag(entry, 2, vf.wireType)
				entry = appendValue(entry, vf, v)
			}
		}
		if err != nil {
			return entry, err
		}
		if set {
			out = endLen(entry, mark)
			if n := len(d.keyEnds) - endsStart; n > 32 {
				if index == nil {
					index = make(map[string]bool, 2*n)
					prev := keysStart
					for _, end := range d.keyEnds[endsStart:] {
						index[string(d.keys[prev:end])] = true
						prev = end
					}
				}
				index[string(keyBytes)] = true
			}
		} else { // a discarded enum name: no entry, and the key is free again
			out = entry[:entryStart]
			d.keys, d.keyEnds = d.keys[:len(d.keys)-len(canon)], d.keyEnds[:len(d.keyEnds)-1]
		}
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			return out, nil
		}
		return out, errJSON
	}
}

// seenKey reports whether the map being decoded already has key.
func (d *jsonDecoder) seenKey(key []byte, keysStart, endsStart int, index map[string]bool) bool {
	if index != nil {
		return index[string(key)]
	}
	prev := keysStart
	for _, end := range d.keyEnds[endsStart:] {
		if bytes.Equal(d.keys[prev:end], key) {
			return true
		}
		prev = end
	}
	return false
}

// mapKeyValue parses a JSON member name as a map key of kind kf.
func mapKeyValue(kf *fieldInfo, name []byte) (scalarValue, bool) {
	s := string(name)
	switch kf.kind {
	case protoreflect.StringKind:
		return scalarValue{bytes: name, set: true}, true
	case protoreflect.BoolKind:
		switch s {
		case "true":
			return scalarValue{bits: 1, set: true}, true
		case "false":
			return scalarValue{set: true}, true
		}
		return scalarValue{}, false
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return intValue(kf, n), err == nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return intValue(kf, n), err == nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		return scalarValue{bits: n, set: true}, err == nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		return scalarValue{bits: n, set: true}, err == nil
	}
	return scalarValue{}, false
}

// scalarValue is one decoded scalar, ready for the wire.
type scalarValue struct {
	bits  uint64 // varint or fixed value, zigzag already applied
	bytes []byte // string or bytes
	set   bool   // false: an unknown enum name that is discarded
}

func intValue(fi *fieldInfo, n int64) scalarValue {
	switch fi.kind {
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return scalarValue{bits: protowire.EncodeZigZag(n), set: true}
	case protoreflect.Sfixed32Kind:
		return scalarValue{bits: uint64(uint32(n)), set: true}
	}
	return scalarValue{bits: uint64(n), set: true}
}

// appendField appends fi with value v, leaving out a zero value of a field
// without presence as proto.Marshal does.
func appendField(out []byte, fi *fieldInfo, v scalarValue) []byte {
	if !v.set || !fi.presence && v.bits == 0 && len(v.bytes) == 0 {
		return out
	}
	out = protowire.AppendTag(out, fi.num, fi.wireType)
	return appendValue(out, fi, v)
}

func appendValue(out []byte, fi *fieldInfo, v scalarValue) []byte {
	switch fi.wireType {
	case protowire.VarintType:
		return protowire.AppendVarint(out, v.bits)
	case protowire.Fixed32Type:
		return protowire.AppendFixed32(out, uint32(v.bits))
	case protowire.Fixed64Type:
		return protowire.AppendFixed64(out, v.bits)
	}
	return protowire.AppendBytes(out, v.bytes)
}

// scalar decodes the JSON value of one scalar of field fi.
func (d *jsonDecoder) scalar(fi *fieldInfo) (scalarValue, error) {
	c := d.peek()
	switch fi.kind {
	case protoreflect.BoolKind:
		switch {
		case c == 't' && d.literal("true"):
			return scalarValue{bits: 1, set: true}, nil
		case c == 'f' && d.literal("false"):
			return scalarValue{set: true}, nil
		}
	case protoreflect.StringKind:
		if s, ok := d.readString(); ok {
			return scalarValue{bytes: s, set: true}, nil
		}
	case protoreflect.BytesKind:
		if s, ok := d.readString(); ok {
			enc := base64.StdEncoding
			if bytes.ContainsAny(s, "-_") {
				enc = base64.URLEncoding
			}
			if len(s)%4 != 0 {
				enc = enc.WithPadding(base64.NoPadding)
			}
			b, err := enc.AppendDecode(d.raw[:0], s)
			if err == nil {
				d.raw = b
				return scalarValue{bytes: b, set: true}, nil
			}
		}
	case protoreflect.EnumKind:
		switch {
		case c == '"':
			s, ok := d.readString()
			if !ok {
				break
			}
			if n, ok := fi.enum.byName[string(s)]; ok {
				return scalarValue{bits: uint64(int64(n)), set: true}, nil
			}
			if d.discardUnknown {
				return scalarValue{}, nil
			}
		case c == 'n' && fi.nullValue && d.literal("null"):
			return scalarValue{set: true}, nil
		default:
			if raw, ok := d.number(); ok {
				if n, ok := parseJSONInt(raw, 32); ok {
					return scalarValue{bits: uint64(n), set: true}, nil
				}
			}
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if raw, ok := d.numberText(c, true); ok {
			bitSize := 64
			if fi.kind == protoreflect.FloatKind {
				bitSize = 32
			}
			f, ok := specialFloat(raw)
			if !ok {
				var err error
				if f, err = strconv.ParseFloat(unsafeString(raw), bitSize); err != nil {
					break
				}
			}
			if bitSize == 32 {
				return scalarValue{bits: uint64(math.Float32bits(float32(f))), set: true}, nil
			}
			return scalarValue{bits: math.Float64bits(f), set: true}, nil
		}
	default: // the integers
		raw, ok := d.numberText(c, false)
		if !ok {
			break
		}
		switch fi.kind {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			if n, ok := parseJSONInt(raw, 32); ok {
				return intValue(fi, n), nil
			}
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			if n, ok := parseJSONInt(raw, 64); ok {
				return intValue(fi, n), nil
			}
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			if n, ok := parseJSONUint(raw, 32); ok {
				return scalarValue{bits: n, set: true}, nil
			}
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			if n, ok := parseJSONUint(raw, 64); ok {
				return scalarValue{bits: n, set: true}, nil
			}
		}
	}
	return scalarValue{}, errJSON
}

// numberText reads a JSON number, or a string holding exactly one, and
// returns its text. With special, the strings NaN, Infinity and -Infinity
// are returned as they are.
func (d *jsonDecoder) numberText(c byte, special bool) ([]byte, bool) {
	if c != '"' {
		return d.number()
	}
	s, ok := d.readString()
	if !ok {
		return nil, false
	}
	if special {
		if _, ok := specialFloat(s); ok {
			return s, true
		}
	}
	if n, ok := parseNumber(s); !ok || n != len(s) {
		return nil, false
	}
	return s, true
}

func specialFloat(s []byte) (float64, bool) {
	switch string(s) {
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	return 0, false
}

// unsafeString views b as a string for a call that does not keep it.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

const (
	maxTimestampSeconds = 253402300799
	minTimestampSeconds = -62135596800
	maxDurationSeconds  = 315576000000
)

// timestamp decodes an RFC 3339 string as google.protobuf.Timestamp fields.
func (d *jsonDecoder) timestamp(out []byte) ([]byte, error) {
	b, ok := d.readString()
	if !ok {
		return out, errJSON
	}
	s := unsafeString(b)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return out, errJSON
	}
	secs := t.Unix()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return out, errJSON
	}
	i := strings.LastIndexByte(s, '.')
	j := strings.LastIndexAny(s, "Z-+")
	if i >= 0 && j >= i && j-i > len(".999999999") {
		return out, errJSON
	}
	return appendSecondsNanos(out, secs, int32(t.Nanosecond())), nil
}

func appendSecondsNanos(out []byte, secs int64, nanos int32) []byte {
	if secs != 0 {
		out = protowire.AppendTag(out, 1, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(secs))
	}
	if nanos != 0 {
		out = protowire.AppendTag(out, 2, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(int64(nanos)))
	}
	return out
}

// duration decodes a "1.5s" string as google.protobuf.Duration fields.
func (d *jsonDecoder) duration(out []byte) ([]byte, error) {
	b, ok := d.readString()
	if !ok {
		return out, errJSON
	}
	secs, nanos, ok := parseDuration(b)
	if !ok || secs < -maxDurationSeconds || secs > maxDurationSeconds {
		return out, errJSON
	}
	return appendSecondsNanos(out, secs, nanos), nil
}

// parseDuration parses the JSON form of a Duration as protojson does: an
// optional sign, digits, an optional fraction of up to 9 digits, and "s".
func parseDuration(b []byte) (int64, int32, bool) {
	if len(b) < 2 || b[len(b)-1] != 's' {
		return 0, 0, false
	}
	b = b[:len(b)-1]
	neg := false
	switch b[0] {
	case '-':
		neg, b = true, b[1:]
	case '+':
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, 0, false
	}
	var intp []byte
	switch {
	case b[0] == '0':
		b = b[1:]
	case '1' <= b[0] && b[0] <= '9':
		n := 1
		for n < len(b) && '0' <= b[n] && b[n] <= '9' {
			n++
		}
		intp, b = b[:n], b[n:]
	case b[0] == '.':
	default:
		return 0, 0, false
	}
	var nanos int64
	if len(b) > 0 {
		if b[0] != '.' {
			return 0, 0, false
		}
		b = b[1:]
		n := 0
		for n < len(b) && n < 9 && '0' <= b[n] && b[n] <= '9' {
			nanos = nanos*10 + int64(b[n]-'0')
			n++
		}
		if n < len(b) {
			return 0, 0, false
		}
		for ; n < 9; n++ {
			nanos *= 10
		}
	}
	var secs int64
	if len(intp) > 0 {
		var err error
		if secs, err = strconv.ParseInt(unsafeString(intp), 10, 64); err != nil {
			return 0, 0, false
		}
	}
	if neg {
		secs, nanos = -secs, -nanos
	}
	return secs, int32(nanos), true
}

// reference decodes a well-known type the transcoder does not do itself
// (Any, Struct, Value, ListValue, FieldMask, Empty) with protojson.
func (d *jsonDecoder) reference(out []byte, t *msgTable) ([]byte, error) {
	d.skipSpace()
	start := d.pos
	if !d.skipValue(2*d.maxDepth + 2) {
		return out, errJSON
	}
	m := dynamicpb.NewMessage(t.desc)
	opts := protojson.UnmarshalOptions{DiscardUnknown: d.discardUnknown, Resolver: d.resolver, RecursionLimit: d.depth + 1}
	if err := opts.Unmarshal(d.data[start:d.pos], m); err != nil {
		return out, err
	}
	return proto.MarshalOptions{}.MarshalAppend(out, m)
}
