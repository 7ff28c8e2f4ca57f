package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Resolver finds the message and extension types of one schema generation;
// it resolves google.protobuf.Any in JSON.
type Resolver interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// JSONOptions are the per-service choices of the proto3 JSON mapping.
type JSONOptions struct {
	// UseProtoNames writes original proto field names instead of lowerCamelCase.
	UseProtoNames bool
	// EmitUnpopulated writes fields that hold their default value.
	EmitUnpopulated bool
	// UseEnumNumbers writes enum values as numbers instead of names.
	UseEnumNumbers bool
	// DiscardUnknown ignores unknown JSON fields in request bodies instead of
	// rejecting them.
	DiscardUnknown bool
	// AllowUnknownQuery ignores query parameters that name no field instead
	// of rejecting them.
	AllowUnknownQuery bool
}

// maxJSONDepth bounds the nesting of request JSON documents.
const maxJSONDepth = 64

// BodyKind says how the HTTP body maps onto the request message.
type BodyKind uint8

const (
	// NoBody: the request has no body; free fields come from the query.
	NoBody BodyKind = iota
	// WholeBody (body: "*"): the body is the request message, less path fields.
	WholeBody
	// FieldBody (body: "field"): the body is one top-level field.
	FieldBody
)

// Binding is one compiled HTTP binding of a method: an HTTP method, a path
// template and the body and response mapping, with every field resolved.
// It converts an HTTP request into the upstream request message and the
// upstream response back, and is safe for concurrent use.
type Binding struct {
	// Method is the gRPC method the binding calls.
	Method protoreflect.MethodDescriptor
	// HTTPMethod is GET, POST, ... or the kind of a custom rule.
	HTTPMethod string
	// Template is the compiled path template.
	Template *Template
	// Body says how the request body is mapped.
	Body BodyKind

	pathFields   [][]protoreflect.FieldDescriptor
	multiSegment []bool
	bodyField    protoreflect.FieldDescriptor
	responseBody protoreflect.FieldDescriptor
	input        protoreflect.MessageType
	output       protoreflect.MessageType
	unmarshal    protojson.UnmarshalOptions
	marshal      protojson.MarshalOptions
	opts         JSONOptions
}

// Bindings compiles rule and its additional bindings for method md. The
// error names the method and the offending rule.
func Bindings(md protoreflect.MethodDescriptor, rule *annotations.HttpRule, opts JSONOptions, res Resolver) ([]*Binding, error) {
	rules := append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...)
	var out []*Binding
	for i, r := range rules {
		if i > 0 && len(r.GetAdditionalBindings()) > 0 {
			return nil, fmt.Errorf("method %s: additional_bindings may not nest", md.FullName())
		}
		method, path := ruleMethodPath(r)
		if method == "" {
			return nil, fmt.Errorf("method %s: HTTP rule %d has no pattern", md.FullName(), i)
		}
		b, err := NewBinding(md, method, path, r.GetBody(), r.GetResponseBody(), opts, res)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func ruleMethodPath(r *annotations.HttpRule) (string, string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "GET", p.Get
	case *annotations.HttpRule_Put:
		return "PUT", p.Put
	case *annotations.HttpRule_Post:
		return "POST", p.Post
	case *annotations.HttpRule_Delete:
		return "DELETE", p.Delete
	case *annotations.HttpRule_Patch:
		return "PATCH", p.Patch
	case *annotations.HttpRule_Custom:
		return strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()
	}
	return "", ""
}

// NewBinding compiles one binding. body is "", "*" or a top-level request
// field; responseBody is "" or a top-level response field.
func NewBinding(md protoreflect.MethodDescriptor, httpMethod, path, body, responseBody string, opts JSONOptions, res Resolver) (*Binding, error) {
	b, err := newBinding(md, httpMethod, path, body, responseBody, opts, res)
	if err != nil {
		return nil, fmt.Errorf("method %s, rule %s %s: %w", md.FullName(), httpMethod, path, err)
	}
	return b, nil
}

func newBinding(md protoreflect.MethodDescriptor, httpMethod, path, body, responseBody string, opts JSONOptions, res Resolver) (*Binding, error) {
	tmpl, err := ParseTemplate(path)
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = protoregistry.GlobalTypes
	}
	b := &Binding{
		Method:     md,
		HTTPMethod: httpMethod,
		Template:   tmpl,
		input:      dynamicpb.NewMessageType(md.Input()),
		output:     dynamicpb.NewMessageType(md.Output()),
		opts:       opts,
		unmarshal:  protojson.UnmarshalOptions{DiscardUnknown: opts.DiscardUnknown, Resolver: res, RecursionLimit: maxJSONDepth},
		marshal: protojson.MarshalOptions{
			UseProtoNames: opts.UseProtoNames, EmitUnpopulated: opts.EmitUnpopulated,
			UseEnumNumbers: opts.UseEnumNumbers, Resolver: res,
		},
	}
	for _, v := range tmpl.Variables {
		fds, err := resolveFieldPath(md.Input(), v.FieldPath)
		if err != nil {
			return nil, fmt.Errorf("path variable %q: %w", strings.Join(v.FieldPath, "."), err)
		}
		leaf := fds[len(fds)-1]
		if leaf.IsList() || leaf.IsMap() {
			return nil, fmt.Errorf("path variable %q is a repeated field", strings.Join(v.FieldPath, "."))
		}
		if leaf.Kind() == protoreflect.MessageKind && !isWellKnownScalar(leaf.Message()) {
			return nil, fmt.Errorf("path variable %q is a message field", strings.Join(v.FieldPath, "."))
		}
		b.pathFields = append(b.pathFields, fds)
		multi := false
		for _, s := range tmpl.Segments[v.Start:v.End] {
			multi = multi || s.Kind == DeepWildcard
		}
		b.multiSegment = append(b.multiSegment, multi || v.End-v.Start > 1)
	}
	switch body {
	case "":
	case "*":
		b.Body = WholeBody
	default:
		fd := md.Input().Fields().ByName(protoreflect.Name(body))
		if fd == nil {
			return nil, fmt.Errorf("body: no field %q in message %s", body, md.Input().FullName())
		}
		b.Body, b.bodyField = FieldBody, fd
	}
	if responseBody != "" {
		fd := md.Output().Fields().ByName(protoreflect.Name(responseBody))
		if fd == nil {
			return nil, fmt.Errorf("response_body: no field %q in message %s", responseBody, md.Output().FullName())
		}
		b.responseBody = fd
	}
	return b, nil
}

// isHTTPBody reports whether md is google.api.HttpBody.
func isHTTPBody(md protoreflect.MessageDescriptor) bool {
	return md.FullName() == "google.api.HttpBody"
}

// RawBody reports whether the request body is taken as raw bytes into a
// google.api.HttpBody (any content type) rather than parsed as JSON.
func (b *Binding) RawBody() bool {
	switch b.Body {
	case WholeBody:
		return isHTTPBody(b.Method.Input())
	case FieldBody:
		return b.bodyField.Kind() == protoreflect.MessageKind && isHTTPBody(b.bodyField.Message())
	}
	return false
}

// Request is an HTTP request reduced to what a binding reads.
type Request struct {
	// PathValues are the raw (still escaped) values of the template's
	// variables, in order.
	PathValues []string
	// Query is the raw query string.
	Query string
	// Body is the request body, read in full.
	Body []byte
	// ContentType is the request's Content-Type header.
	ContentType string
}

// DecodeRequest builds the upstream request message from r and returns it in
// protobuf wire form. Client mistakes come back as *BadRequestError naming
// the field or parameter.
func (b *Binding) DecodeRequest(r *Request) ([]byte, error) {
	msg := b.input.New()
	if err := b.decodeBody(msg, r); err != nil {
		return nil, err
	}
	for i, fds := range b.pathFields {
		name := fieldPathName(fds)
		val, err := unescapePathValue(r.PathValues[i], b.multiSegment[i])
		if err != nil {
			return nil, &BadRequestError{Field: name, Description: fmt.Sprintf("path parameter %q: %v", name, err)}
		}
		if err := setFromString(mutableParent(msg, fds), fds[len(fds)-1], val, b.unmarshal); err != nil {
			return nil, &BadRequestError{Field: name, Description: fmt.Sprintf("path parameter %q: %v", name, err)}
		}
	}
	if r.Query != "" {
		if err := b.decodeQuery(msg, r.Query); err != nil {
			return nil, err
		}
	}
	return proto.Marshal(msg.Interface())
}

func (b *Binding) decodeBody(msg protoreflect.Message, r *Request) error {
	switch b.Body {
	case NoBody:
		return nil
	case WholeBody:
		if isHTTPBody(msg.Descriptor()) {
			setHTTPBody(msg, r)
			return nil
		}
		return b.unmarshalJSON(r.Body, msg, "")
	}
	fd := b.bodyField
	if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
		sub := msg.Mutable(fd).Message()
		if isHTTPBody(fd.Message()) {
			setHTTPBody(sub, r)
			return nil
		}
		return b.unmarshalJSON(r.Body, sub, string(fd.Name()))
	}
	// A scalar, repeated or map body field: wrap the body as that field.
	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 {
		return nil
	}
	wrapped := make([]byte, 0, len(body)+len(fd.Name())+5)
	wrapped = append(wrapped, `{"`...)
	wrapped = append(wrapped, fd.Name()...)
	wrapped = append(wrapped, `":`...)
	wrapped = append(wrapped, body...)
	wrapped = append(wrapped, '}')
	return b.unmarshalJSON(wrapped, msg, string(fd.Name()))
}

func setHTTPBody(m protoreflect.Message, r *Request) {
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("content_type"), protoreflect.ValueOfString(r.ContentType))
	m.Set(fields.ByName("data"), protoreflect.ValueOfBytes(r.Body))
}

func (b *Binding) unmarshalJSON(data []byte, m protoreflect.Message, field string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := b.unmarshal.Unmarshal(data, m.Interface()); err != nil {
		desc := strings.TrimPrefix(err.Error(), "proto: ")
		return &BadRequestError{Field: field, Description: "invalid JSON body: " + desc}
	}
	return nil
}

func (b *Binding) decodeQuery(msg protoreflect.Message, raw string) error {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return &BadRequestError{Description: fmt.Sprintf("malformed query string: %v", err)}
	}
	for name, vals := range values {
		if err := b.setQueryParam(msg, name, vals); err != nil {
			return err
		}
	}
	return nil
}

func (b *Binding) setQueryParam(msg protoreflect.Message, name string, vals []string) error {
	key, mapKey, isMapEntry := splitMapKey(name)
	unknown := func(why string) error {
		if b.opts.AllowUnknownQuery {
			return nil
		}
		return &BadRequestError{Field: name, Description: fmt.Sprintf("query parameter %q %s", name, why)}
	}
	if b.Body == WholeBody {
		return unknown("is not allowed: the body carries the whole request")
	}
	parts := strings.Split(key, ".")
	md := msg.Descriptor()
	fds := make([]protoreflect.FieldDescriptor, 0, len(parts))
	for i, part := range parts {
		fd := lookupField(md, part)
		if fd == nil {
			return unknown(fmt.Sprintf("names no field of %s", md.FullName()))
		}
		fds = append(fds, fd)
		if i < len(parts)-1 {
			if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() || isWellKnownScalar(fd.Message()) {
				return unknown(fmt.Sprintf("traverses %q, which is not a singular message field", fd.Name()))
			}
			md = fd.Message()
		}
	}
	if b.bound(fds) {
		return &BadRequestError{Field: name, Description: fmt.Sprintf("query parameter %q sets a field already bound by the path or body", name)}
	}
	parent := mutableParent(msg, fds)
	leaf := fds[len(fds)-1]
	bad := func(err error) error {
		return &BadRequestError{Field: name, Description: fmt.Sprintf("query parameter %q: %v", name, err)}
	}
	if leaf.IsMap() {
		if !isMapEntry {
			return bad(fmt.Errorf("a map field is set as %s[key]=value", key))
		}
		if len(vals) != 1 {
			return bad(fmt.Errorf("map key %q given %d values", mapKey, len(vals)))
		}
		k, err := parseScalar(leaf.MapKey(), mapKey)
		if err != nil {
			return bad(err)
		}
		vfd := leaf.MapValue()
		if vfd.Kind() == protoreflect.MessageKind {
			return bad(fmt.Errorf("map values of message type cannot be set from a parameter"))
		}
		v, err := parseScalar(vfd, vals[0])
		if err != nil {
			return bad(err)
		}
		parent.Mutable(leaf).Map().Set(k.MapKey(), v)
		return nil
	}
	if isMapEntry {
		return unknown(fmt.Sprintf("uses [key] but %q is not a map field", key))
	}
	if !leaf.IsList() && len(vals) > 1 {
		return bad(fmt.Errorf("repeated %d times but the field is not repeated", len(vals)))
	}
	for _, v := range vals {
		if err := setFromString(parent, leaf, v, b.unmarshal); err != nil {
			return bad(err)
		}
	}
	return nil
}

// bound reports whether the field path fds overlaps a field bound by the path
// template or the body.
func (b *Binding) bound(fds []protoreflect.FieldDescriptor) bool {
	if b.Body == FieldBody && fds[0] == b.bodyField {
		return true
	}
	for _, pf := range b.pathFields {
		n := min(len(pf), len(fds))
		same := true
		for i := 0; i < n; i++ {
			same = same && pf[i] == fds[i]
		}
		if same {
			return true
		}
	}
	return false
}

// splitMapKey splits "labels[key]" into "labels", "key".
func splitMapKey(name string) (field, key string, ok bool) {
	if !strings.HasSuffix(name, "]") {
		return name, "", false
	}
	i := strings.IndexByte(name, '[')
	if i <= 0 {
		return name, "", false
	}
	return name[:i], name[i+1 : len(name)-1], true
}

func fieldPathName(fds []protoreflect.FieldDescriptor) string {
	if len(fds) == 1 {
		return string(fds[0].Name())
	}
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = string(fd.Name())
	}
	return strings.Join(names, ".")
}

// unescapePathValue percent-decodes a path variable. A single-segment value
// is decoded fully; a multi-segment value keeps "%2F" escaped so that the
// segments stay distinguishable, as the HttpRule specification requires.
func unescapePathValue(raw string, multi bool) (string, error) {
	if !strings.Contains(raw, "%") {
		return raw, nil
	}
	if !multi {
		return url.PathUnescape(raw)
	}
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		parts := strings.Split(strings.ReplaceAll(s, "%2f", "%2F"), "%2F")
		for j, p := range parts {
			u, err := url.PathUnescape(p)
			if err != nil {
				return "", err
			}
			parts[j] = u
		}
		segs[i] = strings.Join(parts, "%2F")
	}
	return strings.Join(segs, "/"), nil
}

// Response is an upstream response rendered for HTTP.
type Response struct {
	// Body is the HTTP response body.
	Body []byte
	// ContentType is the Content-Type of Body.
	ContentType string
}

// EncodeResponse renders the upstream response message, given in protobuf
// wire form, as the HTTP response body. An HttpBody response (or
// response_body field) is written raw with its own content type.
func (b *Binding) EncodeResponse(wire []byte) (*Response, error) {
	msg := b.output.New()
	if err := (proto.UnmarshalOptions{Resolver: b.unmarshal.Resolver}).Unmarshal(wire, msg.Interface()); err != nil {
		return nil, fmt.Errorf("upstream response %s: %w", b.Method.Output().FullName(), err)
	}
	if b.responseBody == nil {
		if isHTTPBody(msg.Descriptor()) {
			return httpBodyResponse(msg), nil
		}
		out, err := b.marshal.Marshal(msg.Interface())
		return &Response{Body: out, ContentType: "application/json"}, err
	}
	fd := b.responseBody
	if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
		sub := msg.Get(fd).Message()
		if isHTTPBody(fd.Message()) {
			return httpBodyResponse(sub), nil
		}
		out, err := b.marshal.Marshal(sub.Interface())
		return &Response{Body: out, ContentType: "application/json"}, err
	}
	// A scalar, repeated or map field: render the message with only that
	// field, then take the field's JSON value out of it.
	only := b.output.New()
	if msg.Has(fd) {
		only.Set(fd, msg.Get(fd))
	}
	opts := b.marshal
	opts.EmitUnpopulated = true
	whole, err := opts.Marshal(only.Interface())
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(whole, &fields); err != nil {
		return nil, err
	}
	name := fd.JSONName()
	if opts.UseProtoNames {
		name = string(fd.Name())
	}
	return &Response{Body: fields[name], ContentType: "application/json"}, nil
}

func httpBodyResponse(m protoreflect.Message) *Response {
	fields := m.Descriptor().Fields()
	ct := m.Get(fields.ByName("content_type")).String()
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &Response{Body: m.Get(fields.ByName("data")).Bytes(), ContentType: ct}
}

// BadRequestError is a client mistake found while decoding a request. The
// ingress answers it with INVALID_ARGUMENT (HTTP 400) and a
// google.rpc.BadRequest detail naming Field.
type BadRequestError struct {
	// Field is the offending field or parameter ("" for the whole request).
	Field string
	// Description says what is wrong.
	Description string
}

func (e *BadRequestError) Error() string { return e.Description }
