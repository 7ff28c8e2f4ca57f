package translate

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The transcoder converts JSON straight to protobuf wire bytes and back,
// driven by tables compiled from the descriptors when a binding is built (the
// approach of Envoy's streaming converter). It never builds a dynamicpb
// message on the request path, except for the rare well-known types that it
// hands to protojson one submessage at a time (wktReference).

// maxTableFields bounds the fields and oneofs of a message the transcoder
// takes on; a larger message is left to the protojson path.
const maxTableFields = 256

// wktKind says how a well-known type is written in JSON.
type wktKind uint8

const (
	wktNone      wktKind = iota // an ordinary message: a JSON object
	wktTimestamp                // an RFC 3339 string
	wktDuration                 // a "1.5s" string
	wktWrapper                  // the JSON value of its one field
	wktReference                // Any, Struct, Value, ListValue, FieldMask, Empty: through protojson
)

// msgTable is the compiled plan of one message type.
type msgTable struct {
	desc   protoreflect.MessageDescriptor
	wkt    wktKind
	fields []fieldInfo           // in declaration order, as protojson writes them
	byName map[string]*fieldInfo // JSON names first, then proto names
	// byQueryName is lookupField's order for query parameters: proto
	// names first, then JSON names.
	byQueryName map[string]*fieldInfo
	dense       []int16                  // field number → index+1, for small numbers
	sparse      map[protowire.Number]int // the other numbers → index
}

// fieldInfo is the compiled plan of one field (or of a map entry's key or
// value).
type fieldInfo struct {
	fd        protoreflect.FieldDescriptor
	num       protowire.Number
	index     int
	kind      protoreflect.Kind
	wireType  protowire.Type // of one element
	list      bool
	isMap     bool
	packed    bool // a repeated scalar that can be packed (written packed)
	presence  bool // a zero value is still a value (message, oneof, optional)
	oneof     int  // index of the containing oneof (real or synthetic), or -1
	jsonKey   []byte
	protoKey  []byte
	msg       *msgTable
	enum      *enumTable
	nullValue bool // the enum google.protobuf.NullValue
	isValue   bool // the message google.protobuf.Value
	mapKey    *fieldInfo
	mapValue  *fieldInfo
}

// enumTable maps an enum's names to numbers and back.
type enumTable struct {
	byName map[string]int32
	quoted map[int32][]byte // number → `"NAME"`, the first name declared
}

// errUnsupported says a schema uses something the transcoder leaves to the
// protojson path (proto2 or editions semantics, closed enums, huge messages).
type errUnsupported struct{ what string }

func (e errUnsupported) Error() string { return "transcoder: " + e.what }

type tableCompiler struct {
	msgs  map[protoreflect.FullName]*msgTable
	enums map[protoreflect.FullName]*enumTable
}

// compileTable builds the table of md and of every message it reaches.
func compileTable(md protoreflect.MessageDescriptor) (*msgTable, error) {
	c := &tableCompiler{msgs: map[protoreflect.FullName]*msgTable{}, enums: map[protoreflect.FullName]*enumTable{}}
	return c.message(md)
}

func wellKnown(name protoreflect.FullName) wktKind {
	switch name {
	case "google.protobuf.Timestamp":
		return wktTimestamp
	case "google.protobuf.Duration":
		return wktDuration
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return wktWrapper
	case "google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value",
		"google.protobuf.ListValue", "google.protobuf.FieldMask", "google.protobuf.Empty":
		return wktReference
	}
	return wktNone
}

func (c *tableCompiler) message(md protoreflect.MessageDescriptor) (*msgTable, error) {
	if t := c.msgs[md.FullName()]; t != nil {
		return t, nil
	}
	t := &msgTable{desc: md, wkt: wellKnown(md.FullName())}
	c.msgs[md.FullName()] = t
	if t.wkt == wktReference {
		return t, nil
	}
	if t.wkt == wktNone && md.ParentFile().Syntax() != protoreflect.Proto3 {
		return nil, errUnsupported{fmt.Sprintf("%s is not proto3", md.FullName())}
	}
	fields := md.Fields()
	if fields.Len() > maxTableFields || md.Oneofs().Len() > 64 {
		return nil, errUnsupported{fmt.Sprintf("%s has too many fields", md.FullName())}
	}
	t.fields = make([]fieldInfo, fields.Len())
	t.byName = make(map[string]*fieldInfo, 2*fields.Len())
	maxDense := 0
	for i := range fields.Len() {
		if n := int(fields.Get(i).Number()); n < 1024 && n > maxDense {
			maxDense = n
		}
	}
	t.dense = make([]int16, maxDense+1)
	for i := range fields.Len() {
		fd := fields.Get(i)
		fi := &t.fields[i]
		if err := c.field(fi, fd); err != nil {
			return nil, err
		}
		fi.index = i
		fi.jsonKey = appendJSONString(nil, fd.JSONName())
		fi.jsonKey = append(fi.jsonKey, ':')
		fi.protoKey = appendJSONString(nil, string(fd.Name()))
		fi.protoKey = append(fi.protoKey, ':')
		if od := fd.ContainingOneof(); od != nil {
			fi.oneof = od.Index()
		}
		if int(fd.Number()) < len(t.dense) {
			t.dense[fd.Number()] = int16(i + 1)
		} else {
			if t.sparse == nil {
				t.sparse = map[protowire.Number]int{}
			}
			t.sparse[fd.Number()] = i
		}
	}
	// protojson looks a name up as a JSON name first, then as a proto name.
	for i := range t.fields {
		t.byName[string(t.fields[i].fd.TextName())] = &t.fields[i]
	}
	for i := range t.fields {
		t.byName[t.fields[i].fd.JSONName()] = &t.fields[i]
	}
	t.byQueryName = make(map[string]*fieldInfo, 2*len(t.fields))
	for i := range t.fields {
		t.byQueryName[t.fields[i].fd.JSONName()] = &t.fields[i]
	}
	for i := range t.fields {
		t.byQueryName[string(t.fields[i].fd.Name())] = &t.fields[i]
	}
	return t, nil
}

func (c *tableCompiler) field(fi *fieldInfo, fd protoreflect.FieldDescriptor) error {
	fi.fd = fd
	fi.num = fd.Number()
	fi.kind = fd.Kind()
	fi.oneof = -1
	fi.list = fd.IsList()
	fi.isMap = fd.IsMap()
	fi.presence = fd.HasPresence()
	fi.wireType = wireTypeOf(fd.Kind())
	if fd.Kind() == protoreflect.GroupKind || fd.IsExtension() {
		return errUnsupported{fmt.Sprintf("field %s is a group or an extension", fd.FullName())}
	}
	fi.packed = fi.list && fi.wireType != protowire.BytesType
	if fi.isMap {
		fi.list = false
		fi.mapKey, fi.mapValue = &fieldInfo{}, &fieldInfo{}
		if err := c.field(fi.mapKey, fd.MapKey()); err != nil {
			return err
		}
		if err := c.field(fi.mapValue, fd.MapValue()); err != nil {
			return err
		}
		fi.mapKey.presence, fi.mapValue.presence = true, true // map entries are always written whole
		return nil
	}
	switch fd.Kind() {
	case protoreflect.MessageKind:
		fi.isValue = fd.Message().FullName() == "google.protobuf.Value"
		sub, err := c.message(fd.Message())
		if err != nil {
			return err
		}
		fi.msg = sub
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.IsClosed() {
			return errUnsupported{fmt.Sprintf("enum %s is closed", ed.FullName())}
		}
		fi.nullValue = ed.FullName() == "google.protobuf.NullValue"
		fi.enum = c.enum(ed)
	}
	return nil
}

func (c *tableCompiler) enum(ed protoreflect.EnumDescriptor) *enumTable {
	if t := c.enums[ed.FullName()]; t != nil {
		return t
	}
	vals := ed.Values()
	t := &enumTable{byName: make(map[string]int32, vals.Len()), quoted: make(map[int32][]byte, vals.Len())}
	for i := range vals.Len() {
		v := vals.Get(i)
		t.byName[string(v.Name())] = int32(v.Number())
		if _, ok := t.quoted[int32(v.Number())]; !ok {
			// ByNumber returns the first value declared with a number.
			t.quoted[int32(v.Number())] = appendJSONString(nil, string(vals.ByNumber(v.Number()).Name()))
		}
	}
	c.enums[ed.FullName()] = t
	return t
}

func wireTypeOf(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.BytesType
}

// lookup returns the field numbered num, or nil.
func (t *msgTable) lookup(num protowire.Number) *fieldInfo {
	if int(num) < len(t.dense) {
		if i := t.dense[num]; i > 0 {
			return &t.fields[i-1]
		}
		return nil
	}
	if i, ok := t.sparse[num]; ok {
		return &t.fields[i]
	}
	return nil
}

// key returns the JSON member name written for the field.
func (fi *fieldInfo) key(protoNames bool) []byte {
	if protoNames {
		return fi.protoKey
	}
	return fi.jsonKey
}

// appendQuotedInt writes n as a JSON string, as proto3 JSON writes 64-bit
// integers and map keys.
func appendQuotedInt(out []byte, n int64) []byte {
	out = append(out, '"')
	out = strconv.AppendInt(out, n, 10)
	return append(out, '"')
}

// appendQuotedUint is appendQuotedInt for unsigned integers.
func appendQuotedUint(out []byte, n uint64) []byte {
	out = append(out, '"')
	out = strconv.AppendUint(out, n, 10)
	return append(out, '"')
}
