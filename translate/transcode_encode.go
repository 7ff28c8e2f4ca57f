package translate

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// errWire is the transcoder's answer to wire bytes that are not a valid
// message of the type (or that protojson cannot render); the binding then
// runs the protojson path, which explains the error.
var errWire = errors.New("transcoder: invalid wire bytes for the message")

// errWireShape marks valid wire bytes of rare shapes that the transcoder
// leaves to the protojson path: a singular message or a oneof written more
// than once, duplicate map keys with message values, very deep nesting.
var errWireShape = errUnsupported{"wire shape left to protojson"}

// occurrence is one field found in a message's wire bytes.
type occurrence struct {
	field      int32          // index in the message table
	typ        protowire.Type // wire type
	start, end int32          // the value's bytes (with their length prefix)
}

// mapEntry is one map entry found in the wire bytes.
type mapEntry struct {
	key      uint64 // integer and bool keys
	keyBytes []byte // string keys
	value    []byte // the value's bytes, without tag
	hasValue bool
	order    int
}

// jsonEncoder converts protobuf wire bytes to JSON.
type jsonEncoder struct {
	opts     JSONOptions
	resolver Resolver
	marshal  protojson.MarshalOptions
	occ      []occurrence // a stack shared by the nested messages
	entries  []mapEntry   // likewise for map entries
	depth    int
}

// encodeJSON appends the JSON form of wire, a message of type t, as
// protojson with the binding's options writes it.
func (e *jsonEncoder) encodeJSON(out []byte, t *msgTable, wire []byte) ([]byte, error) {
	e.depth = 0
	return e.message(out, t, wire)
}

func (e *jsonEncoder) message(out []byte, t *msgTable, wire []byte) ([]byte, error) {
	if e.depth++; e.depth > e.opts.maxDepth() {
		return out, errWireShape
	}
	defer func() { e.depth-- }()
	switch t.wkt {
	case wktTimestamp, wktDuration:
		return e.secondsNanos(out, t.wkt, wire)
	case wktWrapper:
		return e.wrapper(out, t, wire)
	case wktReference:
		return e.reference(out, t, wire)
	}
	base := len(e.occ)
	defer func() { e.occ = e.occ[:base] }()
	var seen [maxTableFields / 64]uint64
	var oneofs uint64
	sorted := true
	for off := 0; off < len(wire); {
		num, typ, n := protowire.ConsumeTag(wire[off:])
		if n < 0 || num > protowire.MaxValidNumber {
			return out, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, wire[off+n:])
		if m < 0 {
			return out, errWire
		}
		start := off + n
		off = start + m
		fi := t.lookup(num)
		if fi == nil || !wireTypeFits(fi, typ) {
			continue // unknown: skipped, as protojson does
		}
		if !fi.list && !fi.isMap {
			bit := uint64(1) << (fi.index % 64)
			if fi.oneof >= 0 {
				if oneofs&(1<<fi.oneof) != 0 {
					return out, errWireShape // last member wins, or messages merge: left to protojson
				}
				oneofs |= 1 << fi.oneof
			} else if seen[fi.index/64]&bit != 0 {
				if fi.kind == protoreflect.MessageKind {
					return out, errWireShape // the occurrences merge: left to protojson
				}
				k := e.lastOcc(base, fi.index)
				if fi.kind == protoreflect.StringKind {
					if _, b, _ := scalarBits(fi, wire[e.occ[k].start:e.occ[k].end]); !utf8.Valid(b) {
						return out, errWire
					}
				}
				e.occ[k] = occurrence{field: int32(fi.index), typ: typ, start: int32(start), end: int32(off)}
				continue // the last value wins
			}
			seen[fi.index/64] |= bit
		}
		if k := len(e.occ); k > base && e.occ[k-1].field > int32(fi.index) {
			sorted = false
		}
		e.occ = append(e.occ, occurrence{field: int32(fi.index), typ: typ, start: int32(start), end: int32(off)})
	}
	if !sorted {
		slices.SortStableFunc(e.occ[base:], func(a, b occurrence) int { return cmp.Compare(a.field, b.field) })
	}
	out = append(out, '{')
	empty := len(out)
	i := base
	for idx := range t.fields {
		fi := &t.fields[idx]
		j := i
		for j < len(e.occ) && e.occ[j].field == int32(idx) {
			j++
		}
		mark := len(out)
		if len(out) > empty {
			out = append(out, ',')
		}
		out = append(out, fi.key(e.opts.UseProtoNames)...)
		var err error
		var wrote bool
		switch {
		case j == i:
			if wrote = e.opts.EmitUnpopulated && fi.oneof < 0; wrote {
				out = e.zero(out, fi)
			}
		case fi.list:
			out, wrote, err = e.list(out, fi, wire, e.occ[i:j])
		case fi.isMap:
			out, err = e.mapField(out, fi, wire, e.occ[i:j])
			wrote = true
		default:
			o := e.occ[i]
			out, wrote, err = e.singular(out, fi, wire[o.start:o.end])
		}
		if err != nil {
			return out, err
		}
		if !wrote {
			out = out[:mark]
		}
		i = j
	}
	return append(out, '}'), nil
}

// lastOcc finds the occurrence of field idx recorded since base.
func (e *jsonEncoder) lastOcc(base, idx int) int {
	for k := len(e.occ) - 1; k >= base; k-- {
		if e.occ[k].field == int32(idx) {
			return k
		}
	}
	return -1
}

// wireTypeFits reports whether a field written with wire type typ is read
// as fi, rather than as an unknown field.
func wireTypeFits(fi *fieldInfo, typ protowire.Type) bool {
	return typ == fi.wireType || fi.packed && typ == protowire.BytesType
}

// singular renders one value of a non-repeated field; wrote is false for a
// zero value of a field without presence, which protojson leaves out.
func (e *jsonEncoder) singular(out []byte, fi *fieldInfo, v []byte) ([]byte, bool, error) {
	if fi.kind == protoreflect.MessageKind {
		b, _ := protowire.ConsumeBytes(v)
		out, err := e.message(out, fi.msg, b)
		return out, true, err
	}
	bits, b, err := scalarBits(fi, v)
	if err != nil {
		return out, false, err
	}
	if !fi.presence && !e.opts.EmitUnpopulated && isZeroScalar(fi, bits, b) {
		return out, false, nil
	}
	out, err = e.scalar(out, fi, bits, b)
	return out, true, err
}

// scalarBits reads one scalar value (a varint, fixed or length-delimited).
func scalarBits(fi *fieldInfo, v []byte) (uint64, []byte, error) {
	var n int
	var x uint64
	var b []byte
	switch fi.wireType {
	case protowire.VarintType:
		x, n = protowire.ConsumeVarint(v)
	case protowire.Fixed32Type:
		var y uint32
		y, n = protowire.ConsumeFixed32(v)
		x = uint64(y)
	case protowire.Fixed64Type:
		x, n = protowire.ConsumeFixed64(v)
	default:
		b, n = protowire.ConsumeBytes(v)
	}
	if n < 0 {
		return 0, nil, errWire
	}
	return x, b, nil
}

func isZeroScalar(fi *fieldInfo, x uint64, b []byte) bool {
	switch fi.kind {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return len(b) == 0
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind, protoreflect.EnumKind:
		return uint32(x) == 0
	case protoreflect.Sfixed32Kind, protoreflect.Fixed32Kind:
		return uint32(x) == 0
	case protoreflect.FloatKind:
		return uint32(x) == 0 // -0 is a value, as in dynamicpb
	}
	return x == 0
}

// scalar renders one scalar value.
func (e *jsonEncoder) scalar(out []byte, fi *fieldInfo, x uint64, b []byte) ([]byte, error) {
	switch fi.kind {
	case protoreflect.BoolKind:
		if x != 0 {
			return append(out, "true"...), nil
		}
		return append(out, "false"...), nil
	case protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(out, int64(int32(x)), 10), nil
	case protoreflect.Sint32Kind:
		return strconv.AppendInt(out, int64(int32(protowire.DecodeZigZag(x&math.MaxUint32))), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(out, uint64(uint32(x)), 10), nil
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		return appendQuotedInt(out, int64(x)), nil
	case protoreflect.Sint64Kind:
		return appendQuotedInt(out, protowire.DecodeZigZag(x)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return appendQuotedUint(out, x), nil
	case protoreflect.FloatKind:
		return appendFloat(out, float64(math.Float32frombits(uint32(x))), 32), nil
	case protoreflect.DoubleKind:
		return appendFloat(out, math.Float64frombits(x), 64), nil
	case protoreflect.StringKind:
		if !utf8.Valid(b) {
			return out, errWire
		}
		return appendJSONBytes(out, b), nil
	case protoreflect.BytesKind:
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, b)
		return append(out, '"'), nil
	case protoreflect.EnumKind:
		n := int32(x)
		switch {
		case fi.nullValue:
			return append(out, "null"...), nil
		case !e.opts.UseEnumNumbers:
			if name, ok := fi.enum.quoted[n]; ok {
				return append(out, name...), nil
			}
		}
		return strconv.AppendInt(out, int64(n), 10), nil
	}
	return out, errWire
}

// zero renders the value protojson's EmitUnpopulated gives an absent field.
func (e *jsonEncoder) zero(out []byte, fi *fieldInfo) []byte {
	switch {
	case fi.list:
		return append(out, "[]"...)
	case fi.isMap:
		return append(out, "{}"...)
	case fi.kind == protoreflect.MessageKind:
		return append(out, "null"...)
	}
	out, _ = e.scalar(out, fi, 0, nil)
	return out
}

// list renders the occurrences of a repeated field, packed or not.
func (e *jsonEncoder) list(out []byte, fi *fieldInfo, wire []byte, occ []occurrence) ([]byte, bool, error) {
	out = append(out, '[')
	n := 0
	for _, o := range occ {
		v := wire[o.start:o.end]
		if fi.packed && o.typ == protowire.BytesType {
			b, _ := protowire.ConsumeBytes(v)
			for len(b) > 0 {
				var k int
				switch fi.wireType {
				case protowire.VarintType:
					_, k = protowire.ConsumeVarint(b)
				case protowire.Fixed32Type:
					_, k = protowire.ConsumeFixed32(b)
				default:
					_, k = protowire.ConsumeFixed64(b)
				}
				if k < 0 {
					return out, false, errWire
				}
				x, _, _ := scalarBits(fi, b[:k])
				if n > 0 {
					out = append(out, ',')
				}
				out, _ = e.scalar(out, fi, x, nil)
				b = b[k:]
				n++
			}
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		var err error
		if fi.kind == protoreflect.MessageKind {
			b, _ := protowire.ConsumeBytes(v)
			out, err = e.message(out, fi.msg, b)
		} else {
			x, b, _ := scalarBits(fi, v)
			out, err = e.scalar(out, fi, x, b)
		}
		if err != nil {
			return out, false, err
		}
	}
	return append(out, ']'), n > 0 || e.opts.EmitUnpopulated, nil
}

// mapField renders the entries of a map field, ordered by key as protojson
// orders them; of entries with one key the last wins.
func (e *jsonEncoder) mapField(out []byte, fi *fieldInfo, wire []byte, occ []occurrence) ([]byte, error) {
	ebase := len(e.entries)
	defer func() { e.entries = e.entries[:ebase] }()
	kf, vf := fi.mapKey, fi.mapValue
	for k, o := range occ {
		b, _ := protowire.ConsumeBytes(wire[o.start:o.end])
		ent := mapEntry{order: k}
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || num > protowire.MaxValidNumber {
				return out, errWire
			}
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return out, errWire
			}
			v := b[n : n+m]
			b = b[n+m:]
			switch {
			case num == 1 && typ == kf.wireType:
				x, kb, err := scalarBits(kf, v)
				if err != nil {
					return out, err
				}
				if kf.kind == protoreflect.StringKind && !utf8.Valid(kb) {
					return out, errWire
				}
				ent.key, ent.keyBytes = x, kb
			case num == 2 && typ == vf.wireType:
				if ent.hasValue && vf.kind == protoreflect.MessageKind {
					return out, errWireShape // the values merge: left to protojson
				}
				if vf.kind == protoreflect.StringKind {
					if _, vb, _ := scalarBits(vf, v); !utf8.Valid(vb) {
						return out, errWire
					}
				}
				ent.value, ent.hasValue = v, true
			}
		}
		e.entries = append(e.entries, ent)
	}
	ents := e.entries[ebase:]
	slices.SortStableFunc(ents, func(a, b mapEntry) int { return compareKeys(kf, a, b) })
	out = append(out, '{')
	for k := range ents {
		if k+1 < len(ents) && compareKeys(kf, ents[k], ents[k+1]) == 0 {
			if vf.kind == protoreflect.MessageKind {
				return out, errWireShape // protojson would still check the value it drops
			}
			continue // a later entry has the same key
		}
		if out[len(out)-1] != '{' {
			out = append(out, ',')
		}
		ent := &ents[k]
		out = appendMapKey(out, kf, ent)
		out = append(out, ':')
		var err error
		switch {
		case vf.kind == protoreflect.MessageKind:
			var b []byte
			if ent.hasValue {
				b, _ = protowire.ConsumeBytes(ent.value)
			}
			out, err = e.message(out, vf.msg, b)
		case ent.hasValue:
			x, b, _ := scalarBits(vf, ent.value)
			out, err = e.scalar(out, vf, x, b)
		default:
			out, err = e.scalar(out, vf, 0, nil)
		}
		if err != nil {
			return out, err
		}
	}
	return append(out, '}'), nil
}

// appendMapKey writes a map key as a JSON member name.
func appendMapKey(out []byte, kf *fieldInfo, ent *mapEntry) []byte {
	switch kf.kind {
	case protoreflect.StringKind:
		return appendJSONBytes(out, ent.keyBytes)
	case protoreflect.BoolKind:
		if ent.key != 0 {
			return append(out, `"true"`...)
		}
		return append(out, `"false"`...)
	case protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		return appendQuotedInt(out, int64(int32(ent.key)))
	case protoreflect.Sint32Kind:
		return appendQuotedInt(out, int64(int32(protowire.DecodeZigZag(ent.key&math.MaxUint32))))
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		return appendQuotedInt(out, int64(ent.key))
	case protoreflect.Sint64Kind:
		return appendQuotedInt(out, protowire.DecodeZigZag(ent.key))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return appendQuotedUint(out, uint64(uint32(ent.key)))
	}
	return appendQuotedUint(out, ent.key)
}

// compareKeys orders map entries by key as protojson does, then by their
// order on the wire.
func compareKeys(kf *fieldInfo, a, b mapEntry) int {
	var c int
	switch kf.kind {
	case protoreflect.StringKind:
		c = bytes.Compare(a.keyBytes, b.keyBytes)
	case protoreflect.BoolKind:
		c = cmp.Compare(boolBit(a.key), boolBit(b.key))
	case protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		c = cmp.Compare(int32(a.key), int32(b.key))
	case protoreflect.Sint32Kind:
		c = cmp.Compare(int32(protowire.DecodeZigZag(a.key&math.MaxUint32)), int32(protowire.DecodeZigZag(b.key&math.MaxUint32)))
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		c = cmp.Compare(int64(a.key), int64(b.key))
	case protoreflect.Sint64Kind:
		c = cmp.Compare(protowire.DecodeZigZag(a.key), protowire.DecodeZigZag(b.key))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		c = cmp.Compare(uint32(a.key), uint32(b.key))
	default:
		c = cmp.Compare(a.key, b.key)
	}
	if c == 0 {
		return cmp.Compare(a.order, b.order)
	}
	return c
}

func boolBit(x uint64) int {
	if x != 0 {
		return 1
	}
	return 0
}

// wrapper renders a wrapper type as the JSON value of its one field.
func (e *jsonEncoder) wrapper(out []byte, t *msgTable, wire []byte) ([]byte, error) {
	fi := &t.fields[0]
	var x uint64
	var b []byte
	for len(wire) > 0 {
		num, typ, n := protowire.ConsumeTag(wire)
		if n < 0 || num > protowire.MaxValidNumber {
			return out, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, wire[n:])
		if m < 0 {
			return out, errWire
		}
		if num == 1 && typ == fi.wireType {
			x, b, _ = scalarBits(fi, wire[n:n+m])
			if fi.kind == protoreflect.StringKind && !utf8.Valid(b) {
				return out, errWire
			}
		}
		wire = wire[n+m:]
	}
	return e.scalar(out, fi, x, b)
}

// secondsNanos renders a Timestamp or a Duration.
func (e *jsonEncoder) secondsNanos(out []byte, kind wktKind, wire []byte) ([]byte, error) {
	var secs int64
	var nanos int32
	for len(wire) > 0 {
		num, typ, n := protowire.ConsumeTag(wire)
		if n < 0 || num > protowire.MaxValidNumber {
			return out, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, wire[n:])
		if m < 0 {
			return out, errWire
		}
		if typ == protowire.VarintType {
			x, _ := protowire.ConsumeVarint(wire[n:])
			switch num {
			case 1:
				secs = int64(x)
			case 2:
				nanos = int32(x)
			}
		}
		wire = wire[n+m:]
	}
	if kind == wktTimestamp {
		if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999999999 {
			return out, errWire
		}
		out = append(out, '"')
		out = time.Unix(secs, int64(nanos)).UTC().AppendFormat(out, "2006-01-02T15:04:05.000000000")
		out = trimFraction(out)
		return append(out, `Z"`...), nil
	}
	if secs < -maxDurationSeconds || secs > maxDurationSeconds || nanos < -999999999 || nanos > 999999999 ||
		secs > 0 && nanos < 0 || secs < 0 && nanos > 0 {
		return out, errWire
	}
	out = append(out, '"')
	if secs < 0 || nanos < 0 {
		out = append(out, '-')
		secs, nanos = -secs, -nanos
	}
	out = strconv.AppendInt(out, secs, 10)
	var frac [10]byte
	frac[0] = '.'
	for k, n := 9, nanos; k > 0; k, n = k-1, n/10 {
		frac[k] = byte('0' + n%10)
	}
	out = trimFraction(append(out, frac[:]...))
	return append(out, `s"`...), nil
}

// trimFraction drops trailing groups of three zeros from a nine-digit
// fraction, and the point when nothing is left: protojson writes 0, 3, 6 or
// 9 fractional digits.
func trimFraction(out []byte) []byte {
	for range 3 {
		if !bytes.HasSuffix(out, []byte("000")) {
			return out
		}
		out = out[:len(out)-3]
	}
	return out[:len(out)-1] // the point
}

// reference renders a well-known type the transcoder does not do itself
// with protojson.
func (e *jsonEncoder) reference(out []byte, t *msgTable, wire []byte) ([]byte, error) {
	m := dynamicpb.NewMessage(t.desc)
	if err := unmarshalWire(proto.UnmarshalOptions{Resolver: e.resolver}, wire, m); err != nil {
		return out, err
	}
	return e.marshal.MarshalAppend(out, m)
}

// appendFloat writes a float as protojson does.
func appendFloat(out []byte, n float64, bitSize int) []byte {
	switch {
	case math.IsNaN(n):
		return append(out, `"NaN"`...)
	case math.IsInf(n, +1):
		return append(out, `"Infinity"`...)
	case math.IsInf(n, -1):
		return append(out, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(n); abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	out = strconv.AppendFloat(out, n, format, -1, bitSize)
	if format == 'e' {
		n := len(out)
		if n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
			out[n-2] = out[n-1]
			out = out[:n-1]
		}
	}
	return out
}

// appendJSONString writes s as a JSON string, escaped as protojson does.
// s must be valid UTF-8.
func appendJSONString(out []byte, s string) []byte {
	return appendJSONBytes(out, []byte(s))
}

func appendJSONBytes(out []byte, s []byte) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		out = append(out, '\\')
		switch c {
		case '"', '\\':
			out = append(out, c)
		case '\b':
			out = append(out, 'b')
		case '\f':
			out = append(out, 'f')
		case '\n':
			out = append(out, 'n')
		case '\r':
			out = append(out, 'r')
		case '\t':
			out = append(out, 't')
		default:
			out = append(out, 'u')
			out = append(out, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			out = strconv.AppendUint(out, uint64(c), 16)
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}
