package openapi

import (
	"fmt"
	"math"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// StatusSchema is the name of the google.rpc.Status schema every error
// response refers to.
const StatusSchema = "google.rpc.Status"

// mapping is the part of a service's JSON options that changes what its
// JSON looks like: field names, enum values and unpopulated fields.
type mapping struct {
	protoNames, enumNumbers, emitUnpopulated bool
}

func mappingOf(o translate.JSONOptions) mapping {
	return mapping{protoNames: o.UseProtoNames, enumNumbers: o.UseEnumNumbers, emitUnpopulated: o.EmitUnpopulated}
}

// suffix tells apart the schemas of one message under different mappings:
// "" for the default mapping. A "-" never occurs in a proto name.
func (m mapping) suffix() string {
	var s string
	if m.protoNames {
		s += "-proto_names"
	}
	if m.enumNumbers {
		s += "-enum_numbers"
	}
	if m.emitUnpopulated {
		s += "-emit_unpopulated"
	}
	return s
}

// fieldName is the name a field has in JSON under the mapping.
func (m mapping) fieldName(fd protoreflect.FieldDescriptor) string {
	if m.protoNames {
		return string(fd.Name())
	}
	return fd.JSONName()
}

// schemas collects the component schemas of one document.
type schemas struct {
	comps openapi3.Schemas
}

func newSchemas() *schemas {
	s := &schemas{comps: openapi3.Schemas{}}
	s.comps[StatusSchema] = openapi3.NewSchemaRef("", statusSchema())
	return s
}

// ref refers to the component name, whose schema it also holds so that the
// document validates without a loader resolving it.
func (s *schemas) ref(name string) *openapi3.SchemaRef {
	return openapi3.NewSchemaRef("#/components/schemas/"+name, s.comps[name].Value)
}

func typed(t ...string) *openapi3.Schema {
	types := openapi3.Types(t)
	return &openapi3.Schema{Type: &types}
}

// statusSchema is google.rpc.Status as the gateway writes it.
func statusSchema() *openapi3.Schema {
	s := openapi3.NewObjectSchema()
	s.Description = "The error of a call: a gRPC status code (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto), a developer-facing message and details such as google.rpc.BadRequest, each with its @type."
	s.Properties = openapi3.Schemas{
		"code":    openapi3.NewSchemaRef("", openapi3.NewInt32Schema()),
		"message": openapi3.NewSchemaRef("", openapi3.NewStringSchema()),
		"details": openapi3.NewSchemaRef("", openapi3.NewArraySchema().WithItems(anySchema())),
	}
	return s
}

// anySchema is google.protobuf.Any in JSON: "@type" and the message's
// fields, or "value" for a well-known type.
func anySchema() *openapi3.Schema {
	s := openapi3.NewObjectSchema()
	s.Description = "google.protobuf.Any: \"@type\" names the message (type.googleapis.com/package.Message); the other fields are that message in JSON, or \"value\" holds it when it is a well-known type with a JSON form of its own."
	s.Properties = openapi3.Schemas{"@type": openapi3.NewSchemaRef("", openapi3.NewStringSchema())}
	s.Required = []string{"@type"}
	s.AdditionalProperties = openapi3.AdditionalProperties{Has: ptr(true)}
	return s
}

func ptr[T any](v T) *T { return &v }

// message returns the schema of a message under m: a well-known type's
// JSON form inline, any other message as a reference to its component.
func (s *schemas) message(md protoreflect.MessageDescriptor, m mapping) *openapi3.SchemaRef {
	if wk := wellKnown(md, m); wk != nil {
		return openapi3.NewSchemaRef("", wk)
	}
	name := string(md.FullName()) + m.suffix()
	if _, ok := s.comps[name]; !ok {
		obj := openapi3.NewObjectSchema()
		s.comps[name] = openapi3.NewSchemaRef("", obj) // first, for recursive messages
		s.fillMessage(obj, md, m)
	}
	return s.ref(name)
}

// fillMessage writes the properties of md into obj.
func (s *schemas) fillMessage(obj *openapi3.Schema, md protoreflect.MessageDescriptor, m mapping) {
	obj.Title = string(md.Name())
	obj.Description = comment(md)
	obj.Properties = openapi3.Schemas{}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		prop := s.field(fd, m)
		r := applyFieldOptions(prop, fd)
		if r.required {
			obj.Required = append(obj.Required, m.fieldName(fd))
		}
		obj.Properties[m.fieldName(fd)] = prop
	}
	oneofs := md.Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		od := oneofs.Get(i)
		if od.IsSynthetic() || od.Fields().Len() < 2 {
			continue
		}
		var names []string
		for j := 0; j < od.Fields().Len(); j++ {
			names = append(names, m.fieldName(od.Fields().Get(j)))
		}
		obj.Description = joinText(obj.Description, fmt.Sprintf("At most one of %s may be set (oneof %s).", strings.Join(names, ", "), od.Name()))
		if len(names) > 8 {
			continue // the pairs below would grow quadratically
		}
		for a := 0; a < len(names); a++ {
			for b := a + 1; b < len(names); b++ {
				not := openapi3.NewSchema()
				not.Required = []string{names[a], names[b]}
				obj.AllOf = append(obj.AllOf, openapi3.NewSchemaRef("", &openapi3.Schema{Not: openapi3.NewSchemaRef("", not)}))
			}
		}
	}
}

// field returns the schema of a field's value under m, with its comment.
func (s *schemas) field(fd protoreflect.FieldDescriptor, m mapping) *openapi3.SchemaRef {
	var out *openapi3.Schema
	switch {
	case fd.IsMap():
		out = openapi3.NewObjectSchema()
		out.AdditionalProperties = openapi3.AdditionalProperties{Schema: s.singular(fd.MapValue(), m)}
		if k := fd.MapKey().Kind(); k != protoreflect.StringKind {
			out.PropertyNames = openapi3.NewSchemaRef("", mapKeySchema(k))
		}
	case fd.IsList():
		out = openapi3.NewArraySchema()
		out.Items = s.singular(fd, m)
	default:
		r := s.singular(fd, m)
		if fd.Message() != nil && m.emitUnpopulated && fd.ContainingOneof() == nil {
			// An unset message field is written as null when unpopulated
			// fields are emitted.
			out = &openapi3.Schema{AnyOf: openapi3.SchemaRefs{r, openapi3.NewSchemaRef("", typed("null"))}}
			break
		}
		if r.Ref == "" {
			out = r.Value
			break
		}
		out = &openapi3.Schema{AllOf: openapi3.SchemaRefs{r}}
	}
	out.Description = joinText(comment(fd), out.Description)
	return openapi3.NewSchemaRef("", out)
}

// mapKeySchema says how the map keys of a non-string key kind look.
func mapKeySchema(k protoreflect.Kind) *openapi3.Schema {
	switch k {
	case protoreflect.BoolKind:
		return openapi3.NewStringSchema().WithEnum("true", "false")
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return openapi3.NewStringSchema().WithPattern(`^[0-9]+$`)
	}
	return openapi3.NewStringSchema().WithPattern(`^-?[0-9]+$`)
}

// singular returns the schema of one value of fd (an element, for a
// repeated field; the value, for a map).
func (s *schemas) singular(fd protoreflect.FieldDescriptor, m mapping) *openapi3.SchemaRef {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return s.message(fd.Message(), m)
	case protoreflect.EnumKind:
		return s.enum(fd.Enum(), m)
	}
	return openapi3.NewSchemaRef("", scalar(fd.Kind()))
}

// scalar is the proto3 JSON form of a scalar kind: 64-bit integers are
// strings, floating-point numbers may be "NaN", "Infinity" or "-Infinity",
// bytes are base64.
func scalar(k protoreflect.Kind) *openapi3.Schema {
	switch k {
	case protoreflect.BoolKind:
		return openapi3.NewBoolSchema()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return openapi3.NewInt32Schema()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return openapi3.NewIntegerSchema().WithMin(0).WithMax(math.MaxUint32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		s := openapi3.NewStringSchema().WithPattern(`^-?[0-9]+$`)
		s.Format = "int64"
		return s
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		s := openapi3.NewStringSchema().WithPattern(`^[0-9]+$`)
		s.Format = "uint64"
		return s
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		n := openapi3.NewFloat64Schema()
		if k == protoreflect.FloatKind {
			n.Format = "float"
		}
		return &openapi3.Schema{AnyOf: openapi3.SchemaRefs{
			openapi3.NewSchemaRef("", n),
			openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithEnum("NaN", "Infinity", "-Infinity")),
		}}
	case protoreflect.BytesKind:
		s := openapi3.NewStringSchema()
		s.Format, s.ContentEncoding = "byte", "base64"
		return s
	}
	return openapi3.NewStringSchema()
}

// enum returns the schema of an enum: its value names (or numbers, with
// enums_as_numbers), as a reference to its component.
func (s *schemas) enum(ed protoreflect.EnumDescriptor, m mapping) *openapi3.SchemaRef {
	if ed.FullName() == "google.protobuf.NullValue" {
		return openapi3.NewSchemaRef("", typed("null"))
	}
	name := string(ed.FullName())
	if m.enumNumbers {
		name += "-enum_numbers"
	}
	if _, ok := s.comps[name]; !ok {
		var out *openapi3.Schema
		values := ed.Values()
		var lines []string
		for i := 0; i < values.Len(); i++ {
			v := values.Get(i)
			if c := comment(v); c != "" {
				lines = append(lines, fmt.Sprintf("- %s (%d): %s", v.Name(), v.Number(), strings.Join(strings.Fields(c), " ")))
			}
		}
		if m.enumNumbers {
			out = openapi3.NewInt32Schema()
			for i := 0; i < values.Len(); i++ {
				out.Enum = append(out.Enum, int(values.Get(i).Number()))
			}
		} else {
			out = openapi3.NewStringSchema()
			for i := 0; i < values.Len(); i++ {
				out.Enum = append(out.Enum, string(values.Get(i).Name()))
			}
		}
		out.Title = string(ed.Name())
		out.Description = joinText(comment(ed), strings.Join(lines, "\n"))
		s.comps[name] = openapi3.NewSchemaRef("", out)
	}
	return s.ref(name)
}

// wellKnown is the JSON form of a well-known type, or nil for other
// messages.
func wellKnown(md protoreflect.MessageDescriptor, m mapping) *openapi3.Schema {
	switch md.FullName() {
	case "google.protobuf.Any":
		return anySchema()
	case "google.protobuf.Timestamp":
		s := openapi3.NewDateTimeSchema()
		s.Description = "RFC 3339 timestamp in UTC (google.protobuf.Timestamp), e.g. \"2024-01-02T03:04:05Z\"."
		return s
	case "google.protobuf.Duration":
		s := openapi3.NewStringSchema().WithPattern(`^-?[0-9]+(\.[0-9]{1,9})?s$`)
		s.Description = "Seconds with an \"s\" suffix (google.protobuf.Duration), e.g. \"1.5s\"."
		return s
	case "google.protobuf.FieldMask":
		s := openapi3.NewStringSchema()
		s.Description = "Comma-separated field paths in lowerCamelCase (google.protobuf.FieldMask), e.g. \"title,author.name\"."
		return s
	case "google.protobuf.Struct":
		s := openapi3.NewObjectSchema()
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: ptr(true)}
		return s
	case "google.protobuf.Value":
		return &openapi3.Schema{Description: "Any JSON value (google.protobuf.Value)."}
	case "google.protobuf.ListValue":
		return openapi3.NewArraySchema().WithItems(&openapi3.Schema{})
	case "google.protobuf.Empty":
		return openapi3.NewObjectSchema()
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		s := scalar(md.Fields().ByName("value").Kind())
		s.Description = joinText(s.Description, string(md.FullName())+": the value itself.")
		return s
	}
	return nil
}
