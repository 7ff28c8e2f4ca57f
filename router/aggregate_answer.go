package router

import (
	"encoding/base64"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// buildAnswer renders the answer as a google.protobuf.Struct in wire form,
// and lists the failed optional steps.
func (x *execution) buildAnswer() ([]byte, []string, error) {
	var failed []string
	for _, s := range x.agg.run {
		if x.out[s.index].err != nil {
			failed = append(failed, s.name)
		}
	}
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(x.agg.answer)+2)}
	for _, p := range x.agg.answer {
		if p.src.root >= 0 && x.out[p.src.root].err != nil {
			continue
		}
		v := x.get(p.src, value{})
		if p.merge {
			sv, err := x.messageValue(v.one.Message())
			if err != nil {
				return nil, nil, err
			}
			for k, f := range sv.GetStructValue().GetFields() {
				out.Fields[k] = f
			}
			continue
		}
		sv, err := x.answerValue(p.src, v)
		if err != nil {
			return nil, nil, err
		}
		out.Fields[p.key] = sv
	}
	if len(failed) > 0 {
		names := &structpb.ListValue{Values: make([]*structpb.Value, len(failed))}
		for i, n := range failed {
			names.Values[i] = structpb.NewStringValue(n)
		}
		out.Fields[partialKey] = structpb.NewBoolValue(true)
		out.Fields[failedStepsKey] = structpb.NewListValue(names)
	}
	wire, err := proto.Marshal(out)
	return wire, failed, err
}

// answerValue converts what src yielded into a JSON value.
func (x *execution) answerValue(src source, v value) (*structpb.Value, error) {
	var fd protoreflect.FieldDescriptor // nil: a whole message, or a fan-out's list of them
	if n := len(src.path); n > 0 {
		fd = src.path[n-1]
	}
	if v.list {
		list := &structpb.ListValue{Values: make([]*structpb.Value, len(v.many))}
		for i, e := range v.many {
			sv, err := x.elemValue(fd, e)
			if err != nil {
				return nil, err
			}
			list.Values[i] = sv
		}
		return structpb.NewListValue(list), nil
	}
	if fd != nil {
		return x.fieldValue(fd, v.one)
	}
	return x.messageValue(v.one.Message())
}

// fieldValue converts the value of field fd (a list, a map or one value).
func (x *execution) fieldValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (*structpb.Value, error) {
	switch {
	case fd.IsList():
		l := v.List()
		list := &structpb.ListValue{Values: make([]*structpb.Value, l.Len())}
		for i := range list.Values {
			sv, err := x.elemValue(fd, l.Get(i))
			if err != nil {
				return nil, err
			}
			list.Values[i] = sv
		}
		return structpb.NewListValue(list), nil
	case fd.IsMap():
		st := &structpb.Struct{Fields: make(map[string]*structpb.Value, v.Map().Len())}
		var err error
		v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
			st.Fields[k.String()], err = x.elemValue(fd.MapValue(), e)
			return err == nil
		})
		return structpb.NewStructValue(st), err
	}
	return x.elemValue(fd, v)
}

// messageValue converts a message as proto3 JSON writes it (populated
// fields under their JSON names). Well-known types, which have JSON forms of
// their own, go through protojson.
func (x *execution) messageValue(m protoreflect.Message) (*structpb.Value, error) {
	if m.Descriptor().ParentFile().Package() == "google.protobuf" {
		js, err := protojson.MarshalOptions{Resolver: x.agg.resolver}.Marshal(m.Interface())
		if err != nil {
			return nil, err
		}
		var sv structpb.Value
		return &sv, protojson.Unmarshal(js, &sv)
	}
	st := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := fd.JSONName()
		if fd.IsExtension() {
			name = "[" + string(fd.FullName()) + "]"
		}
		st.Fields[name], err = x.fieldValue(fd, v)
		return err == nil
	})
	return structpb.NewStructValue(st), err
}

// elemValue converts one value of field fd (a message when fd is nil) as
// proto3 JSON writes it: 64-bit integers as decimal strings, bytes as
// base64, enums by name, NaN and infinities as strings.
func (x *execution) elemValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (*structpb.Value, error) {
	if fd == nil || fd.Message() != nil {
		return x.messageValue(v.Message())
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return structpb.NewBoolValue(v.Bool()), nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return structpb.NewNullValue(), nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return structpb.NewStringValue(string(ev.Name())), nil
		}
		return structpb.NewNumberValue(float64(v.Enum())), nil
	case protoreflect.StringKind:
		return structpb.NewStringValue(v.String()), nil
	case protoreflect.BytesKind:
		return structpb.NewStringValue(base64.StdEncoding.EncodeToString(v.Bytes())), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return structpb.NewNumberValue(float64(v.Int())), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return structpb.NewNumberValue(float64(v.Uint())), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return structpb.NewStringValue(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return structpb.NewStringValue(strconv.FormatUint(v.Uint(), 10)), nil
	}
	f := v.Float() // float and double
	switch {
	case math.IsNaN(f):
		return structpb.NewStringValue("NaN"), nil
	case math.IsInf(f, 1):
		return structpb.NewStringValue("Infinity"), nil
	case math.IsInf(f, -1):
		return structpb.NewStringValue("-Infinity"), nil
	}
	return structpb.NewNumberValue(f), nil
}
