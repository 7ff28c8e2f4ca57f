package openapi

import (
	"regexp"
	"slices"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// fieldOptions reads a field's buf.validate rules and google.api
// field_behavior. Options of schemas loaded at run time hold extensions as
// unknown fields or as dynamic types, so they are marshalled and read
// again against the generated extension types.
func fieldOptions(fd protoreflect.FieldDescriptor) (*validate.FieldRules, []annotations.FieldBehavior) {
	opts := fd.Options()
	if opts == nil {
		return nil, nil
	}
	b, err := proto.Marshal(opts)
	if err != nil || len(b) == 0 {
		return nil, nil
	}
	out := new(descriptorpb.FieldOptions)
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, out); err != nil {
		return nil, nil
	}
	var rules *validate.FieldRules
	if proto.HasExtension(out, validate.E_Field) {
		rules = proto.GetExtension(out, validate.E_Field).(*validate.FieldRules)
	}
	var behavior []annotations.FieldBehavior
	if proto.HasExtension(out, annotations.E_FieldBehavior) {
		behavior = proto.GetExtension(out, annotations.E_FieldBehavior).([]annotations.FieldBehavior)
	}
	return rules, behavior
}

// fieldFacts are what a field's options say about its message.
type fieldFacts struct {
	// required: the field must be set (field_behavior REQUIRED, or the
	// buf.validate required rule).
	required bool
}

// applyFieldOptions adds a field's field_behavior and buf.validate rules to
// its schema prop: readOnly, writeOnly, bounds, lengths, patterns, item
// counts; every rule, mapped or not, is also quoted in the description.
func applyFieldOptions(prop *openapi3.SchemaRef, fd protoreflect.FieldDescriptor) fieldFacts {
	var facts fieldFacts
	rules, behavior := fieldOptions(fd)
	s := prop.Value
	for _, b := range behavior {
		switch b {
		case annotations.FieldBehavior_REQUIRED:
			facts.required = true
		case annotations.FieldBehavior_OUTPUT_ONLY:
			s.ReadOnly = true
		case annotations.FieldBehavior_INPUT_ONLY:
			s.WriteOnly = true
		case annotations.FieldBehavior_IMMUTABLE:
			s.Description = joinText(s.Description, "Immutable: set when the resource is created, never changed after.")
		}
	}
	if rules == nil {
		return facts
	}
	text := prototext.MarshalOptions{}.Format(rules)
	s.Description = joinText(s.Description, "Validation rules (buf.validate): "+strings.Join(strings.Fields(text), " "))
	if rules.GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
		return facts // the rules are switched off
	}
	ignoreZero := rules.GetIgnore() == validate.Ignore_IGNORE_IF_ZERO_VALUE
	if rules.GetRequired() {
		facts.required = true
	}
	switch {
	case fd.IsMap():
		if m := rules.GetMap(); m != nil {
			if m.HasMinPairs() {
				s.MinProps = m.GetMinPairs()
			}
			if m.HasMaxPairs() {
				s.MaxProps = ptr(m.GetMaxPairs())
			}
		}
	case fd.IsList():
		if r := rules.GetRepeated(); r != nil {
			if r.HasMinItems() {
				s.MinItems = r.GetMinItems()
			}
			if r.HasMaxItems() {
				s.MaxItems = ptr(r.GetMaxItems())
			}
			s.UniqueItems = r.GetUnique()
			if it := r.GetItems(); it != nil && s.Items != nil && s.Items.Ref == "" {
				items := *s.Items.Value
				applyValueRules(&items, fd, it, false)
				s.Items = openapi3.NewSchemaRef("", &items)
			}
		}
	default:
		applyValueRules(s, fd, rules, ignoreZero)
	}
	return facts
}

// applyValueRules maps the rules of one value (a singular field, or an
// element of a repeated one) onto s. With ignoreZero the rules do not
// apply to the zero value, which the constraints must then admit.
func applyValueRules(s *openapi3.Schema, fd protoreflect.FieldDescriptor, rules *validate.FieldRules, ignoreZero bool) {
	if str := rules.GetString(); str != nil && fd.Kind() == protoreflect.StringKind {
		if str.HasLen() {
			s.MinLength, s.MaxLength = str.GetLen(), ptr(str.GetLen())
		}
		if str.HasMinLen() && !ignoreZero {
			s.MinLength = str.GetMinLen()
		}
		if str.HasMaxLen() {
			s.MaxLength = ptr(str.GetMaxLen())
		}
		if p := str.GetPattern(); p != "" {
			if ignoreZero {
				p = "^$|" + "(?:" + p + ")"
			}
			if _, err := regexp.Compile(p); err == nil {
				s.Pattern = p
			}
		}
		if str.HasConst() {
			s.Const = str.GetConst()
		}
		if in := str.GetIn(); len(in) > 0 {
			for _, v := range in {
				s.Enum = append(s.Enum, v)
			}
			if ignoreZero && !slices.Contains(in, "") {
				s.Enum = append(s.Enum, "")
			}
		}
		switch {
		case str.GetEmail():
			s.Format = "email"
		case str.GetUri():
			s.Format = "uri"
		case str.GetUriRef():
			s.Format = "uri-reference"
		case str.GetUuid():
			s.Format = "uuid"
		case str.GetHostname():
			s.Format = "hostname"
		case str.GetIpv4():
			s.Format = "ipv4"
		case str.GetIpv6():
			s.Format = "ipv6"
		}
		return
	}
	if ignoreZero {
		return // a numeric range that excludes zero cannot say "or zero" here
	}
	numeric := rulesOfType(rules)
	if numeric == nil || !isJSONNumber(fd.Kind()) {
		return // 64-bit integers are strings in JSON: the bounds stay in the description
	}
	m := numeric.ProtoReflect()
	get := func(name string) (float64, bool) {
		f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if f == nil || !m.Has(f) || f.IsList() {
			return 0, false
		}
		switch v := m.Get(f).Interface().(type) {
		case int32:
			return float64(v), true
		case uint32:
			return float64(v), true
		case float32:
			return float64(v), true
		case float64:
			return v, true
		}
		return 0, false
	}
	if v, ok := get("gte"); ok {
		s.Min = ptr(v)
	}
	if v, ok := get("lte"); ok {
		s.Max = ptr(v)
	}
	if v, ok := get("gt"); ok {
		s.ExclusiveMin = openapi3.ExclusiveBound{Value: ptr(v)}
	}
	if v, ok := get("lt"); ok {
		s.ExclusiveMax = openapi3.ExclusiveBound{Value: ptr(v)}
	}
	if v, ok := get("const"); ok {
		s.Const = v
	}
}

// rulesOfType is the numeric rules message of rules (Int32Rules,
// DoubleRules, ...), or nil.
func rulesOfType(rules *validate.FieldRules) proto.Message {
	for _, m := range []interface {
		proto.Message
		ProtoReflect() protoreflect.Message
	}{rules.GetInt32(), rules.GetSint32(), rules.GetSfixed32(), rules.GetUint32(), rules.GetFixed32(), rules.GetFloat(), rules.GetDouble()} {
		if m.ProtoReflect().IsValid() {
			return m
		}
	}
	return nil
}

// isJSONNumber reports whether proto3 JSON writes the kind as a number.
func isJSONNumber(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.FloatKind, protoreflect.DoubleKind:
		return true
	}
	return false
}
