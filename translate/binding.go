package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
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
	// StrictQuery refuses (INVALID_ARGUMENT) query parameters that set
	// nothing: one naming no field, any on a body "*" rule, one naming a
	// field the path or body already binds. By default they are ignored,
	// as grpc-gateway ignores them.
	StrictQuery bool
	// AllowUnknownQuery ignores query parameters that name no field even
	// under StrictQuery.
	AllowUnknownQuery bool
	// MaxDepth bounds how deeply messages may nest in a JSON document (a
	// google.protobuf.Any and the message it holds count as a level each);
	// deeper request bodies are refused. Zero means DefaultMaxDepth.
	MaxDepth int
}

// DefaultMaxDepth is the nesting bound of JSONOptions.MaxDepth by default.
const DefaultMaxDepth = 64

// maxDepth is o.MaxDepth or its default.
func (o JSONOptions) maxDepth() int {
	if o.MaxDepth > 0 {
		return o.MaxDepth
	}
	return DefaultMaxDepth
}

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
	pathNames    []string
	multiSegment []bool
	bodyField    protoreflect.FieldDescriptor
	patchMask    protoreflect.FieldDescriptor // update_mask derived from a PATCH body
	responseBody protoreflect.FieldDescriptor
	input        protoreflect.MessageType
	output       protoreflect.MessageType
	unmarshal    protojson.UnmarshalOptions
	marshal      protojson.MarshalOptions
	opts         JSONOptions

	// The request is transcoded straight to wire bytes when fastRequest;
	// body converts the body message (nil without one). Anything the fast
	// path rejects goes through the dynamicpb path, which explains it.
	fastRequest bool
	body        codec
	queryTable  *msgTable // the request message, for the fast query path
	// response renders the whole response message (nil for HttpBody and
	// response_body).
	response codec
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
		unmarshal:  protojson.UnmarshalOptions{DiscardUnknown: opts.DiscardUnknown, Resolver: res, RecursionLimit: opts.maxDepth()},
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
		b.pathNames = append(b.pathNames, fieldPathName(fds))
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
		b.patchMask = patchMaskField(httpMethod, fd, md.Input())
	}
	if responseBody != "" {
		fd := md.Output().Fields().ByName(protoreflect.Name(responseBody))
		if fd == nil {
			return nil, fmt.Errorf("response_body: no field %q in message %s", responseBody, md.Output().FullName())
		}
		b.responseBody = fd
	}
	b.compileCodecs(res)
	return b, nil
}

// compileCodecs chooses the codecs of the request body and the response:
// the transcoder where the binding's shape and schema allow it.
func (b *Binding) compileCodecs(res Resolver) {
	if b.responseBody == nil && !isHTTPBody(b.Method.Output()) {
		b.response = newCodec(b.Method.Output(), b.opts, res)
	}
	if b.patchMask != nil || b.RawBody() {
		return
	}
	for _, fds := range b.pathFields {
		if fds[len(fds)-1].Kind() == protoreflect.MessageKind {
			return // a well-known type from a string: left to the dynamicpb path
		}
	}
	switch b.Body {
	case WholeBody:
		b.body = newCodec(b.Method.Input(), b.opts, res)
	case FieldBody:
		fd := b.bodyField
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			return
		}
		b.body = newCodec(fd.Message(), b.opts, res)
	}
	_, isRef := b.body.(*referenceCodec)
	b.fastRequest = !isRef
	if b.fastRequest && !referenceOnly {
		b.queryTable, _ = compileTable(b.Method.Input()) // nil: queries take the dynamicpb path
	}
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
	if len(r.PathValues) != len(b.pathFields) {
		return nil, fmt.Errorf("method %s: %d path values for the %d variables of %s", b.Method.FullName(), len(r.PathValues), len(b.pathFields), b.Template.Source)
	}
	if b.fastRequest {
		bp := getBuffer()
		out, err := b.appendRequest(*bp, r)
		if wire, err := putBuffer(bp, out, err); err == nil {
			return wire, nil
		}
	}
	msg := b.input.New()
	if err := b.decodeBody(msg, r); err != nil {
		return nil, err
	}
	for i, fds := range b.pathFields {
		name := b.pathNames[i]
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
	if b.patchMask != nil {
		setMaskFromBody(msg, b.patchMask, b.bodyField.Message(), r.Body)
	}
	return proto.Marshal(msg.Interface())
}

// appendRequest is DecodeRequest's fast path: it appends the body's wire
// form, then the path parameters as fields (on the wire a later field
// overrides or merges into an earlier one, as setting it on the message
// would), then the query parameters.
func (b *Binding) appendRequest(out []byte, r *Request) ([]byte, error) {
	var err error
	if b.Body == FieldBody && len(bytes.TrimSpace(r.Body)) == 0 {
		// No body: the field is set, to an empty message (see decodeBody).
		out = protowire.AppendTag(out, b.bodyField.Number(), protowire.BytesType)
		out = protowire.AppendVarint(out, 0)
	} else if b.Body != NoBody && len(bytes.TrimSpace(r.Body)) > 0 {
		if b.Body == WholeBody {
			out, err = b.body.unmarshalJSON(out, r.Body)
		} else {
			var mark int
			out, mark = beginLen(out, b.bodyField.Number())
			out, err = b.body.unmarshalJSON(out, r.Body)
			out = endLen(out, mark)
		}
		if err != nil {
			return out, err
		}
	}
	for i, fds := range b.pathFields {
		val, err := unescapePathValue(r.PathValues[i], b.multiSegment[i])
		if err != nil {
			return out, err
		}
		if out, err = appendPathField(out, fds, val); err != nil {
			return out, err
		}
	}
	if r.Query != "" {
		// Query parameters may not touch the fields of the path or the body
		// (see bound), so they can be decoded into a message of their own,
		// or straight to wire bytes.
		mark := len(out)
		if out, err = b.appendQuery(out, r.Query); err == nil {
			return out, nil
		}
		out = out[:mark]
		msg := b.input.New()
		if err := b.decodeQuery(msg, r.Query); err != nil {
			return out, err
		}
		out, err = proto.MarshalOptions{}.MarshalAppend(out, msg.Interface())
	}
	return out, err
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
		if isHTTPBody(fd.Message()) {
			setHTTPBody(msg.Mutable(fd).Message(), r)
			return nil
		}
		// An empty body still sets the field, to an empty message, as
		// grpc-gateway does: the upstream sees has_field = true.
		return b.unmarshalJSON(r.Body, msg.Mutable(fd).Message(), string(fd.Name()))
	}
	// A scalar, repeated or map body field: wrap the body as that field. The
	// body must be one JSON value, or it could smuggle in other fields
	// (`"x", "other": 1`).
	body := bytes.TrimSpace(r.Body)
	if len(body) == 0 {
		return nil
	}
	if !json.Valid(body) {
		return &BadRequestError{Field: string(fd.Name()), Description: "invalid JSON body: not one JSON value"}
	}
	wrapped := make([]byte, 0, len(body)+len(fd.Name())+5)
	wrapped = append(wrapped, `{"`...)
	wrapped = append(wrapped, fd.Name()...)
	wrapped = append(wrapped, `":`...)
	wrapped = append(wrapped, body...)
	wrapped = append(wrapped, '}')
	return b.unmarshalJSON(wrapped, msg, "")
}

func setHTTPBody(m protoreflect.Message, r *Request) {
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("content_type"), protoreflect.ValueOfString(r.ContentType))
	m.Set(fields.ByName("data"), protoreflect.ValueOfBytes(r.Body))
}

// unmarshalJSON decodes data into m, the message at field of the request
// ("" for the request itself). The error names the offending member, as
// field.author.name, when it can be found.
func (b *Binding) unmarshalJSON(data []byte, m protoreflect.Message, field string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := b.unmarshal.Unmarshal(data, m.Interface()); err != nil {
		// protobuf-go writes "proto:" then a space or, at random, a no-break space.
		desc := strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0")
		var where string
		if off := jsonErrorOffset(data, desc); off >= 0 {
			where = jsonPathAt(data, off, 0)
		} else if strings.Contains(desc, "recursion depth") {
			where = jsonPathAt(data, -1, b.opts.maxDepth())
			desc = fmt.Sprintf("messages nest deeper than %d levels", b.opts.maxDepth())
		}
		switch {
		case field == "":
			field = where
		case where != "":
			field += "." + where
		}
		return &BadRequestError{Field: field, Description: "invalid JSON body: " + desc}
	}
	return nil
}

func (b *Binding) decodeQuery(msg protoreflect.Message, raw string) error {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return &BadRequestError{Description: fmt.Sprintf("malformed query string: %v", err)}
	}
	// In name order, so that the parameter a conflict is blamed on does not
	// depend on map iteration.
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	var set []queryField
	for _, name := range names {
		p, err := b.resolveQueryParam(msg.Descriptor(), name)
		if err != nil {
			return err
		}
		if p.fds == nil {
			continue // an unknown parameter the options let through
		}
		for _, q := range set {
			if p.overlaps(q) {
				return &BadRequestError{Field: name, Description: fmt.Sprintf("query parameters %q and %q set the same field", q.name, name)}
			}
		}
		set = append(set, p)
		if err := b.setQueryParam(msg, p, values[name]); err != nil {
			return err
		}
	}
	return nil
}

// queryField is a query parameter resolved against the request message.
type queryField struct {
	name   string // as the client wrote it
	fds    []protoreflect.FieldDescriptor
	mapKey string // the key of name[key]
	isMap  bool   // name is name[key]
}

// overlaps reports whether p and q set the same field (one field under its
// proto and its JSON name; the same map entry) or one sets a field inside
// the other's (a wrapper and its value). Which of them would win depends on
// the order they are applied in, so both are refused, as grpc-gateway
// refuses a field named twice.
func (p queryField) overlaps(q queryField) bool {
	n := min(len(p.fds), len(q.fds))
	if !slices.Equal(p.fds[:n], q.fds[:n]) {
		return false
	}
	if len(p.fds) == len(q.fds) && p.isMap && q.isMap {
		return p.mapKey == q.mapKey
	}
	return true
}

// resolveQueryParam resolves the field path of the parameter name, given by
// proto or JSON names; every element but the last must be a singular message
// field. A parameter that sets nothing (see JSONOptions.StrictQuery)
// resolves to no field unless the options are strict.
func (b *Binding) resolveQueryParam(md protoreflect.MessageDescriptor, name string) (queryField, error) {
	key, mapKey, isMapEntry := splitMapKey(name)
	p := queryField{name: name, mapKey: mapKey, isMap: isMapEntry}
	ignored := func(why string) (queryField, error) {
		if !b.opts.StrictQuery {
			return queryField{}, nil
		}
		return queryField{}, &BadRequestError{Field: name, Description: fmt.Sprintf("query parameter %q %s", name, why)}
	}
	unknown := func(why string) (queryField, error) {
		if b.opts.AllowUnknownQuery {
			return queryField{}, nil
		}
		return ignored(why)
	}
	if b.Body == WholeBody {
		return unknown("is not allowed: the body carries the whole request")
	}
	parts := strings.Split(key, ".")
	fds := make([]protoreflect.FieldDescriptor, 0, len(parts))
	for i, part := range parts {
		fd := lookupField(md, part)
		if fd == nil {
			return unknown(fmt.Sprintf("names no field of %s", md.FullName()))
		}
		fds = append(fds, fd)
		if i < len(parts)-1 {
			// Any singular message may be traversed, a well-known type
			// too: filter.min_pages.value=5 sets the wrapper's value, as
			// grpc-gateway does.
			if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
				return unknown(fmt.Sprintf("traverses %q, which is not a singular message field", fd.Name()))
			}
			md = fd.Message()
		}
	}
	if isMapEntry && !fds[len(fds)-1].IsMap() {
		return unknown(fmt.Sprintf("uses [key] but %q is not a map field", key))
	}
	if b.bound(fds) {
		return ignored("sets a field already bound by the path or body")
	}
	p.fds = fds
	return p, nil
}

// setQueryParam sets the field of the resolved parameter p from its values.
func (b *Binding) setQueryParam(msg protoreflect.Message, p queryField, vals []string) error {
	name, fds := p.name, p.fds
	bad := func(err error) error {
		return &BadRequestError{Field: name, Description: fmt.Sprintf("query parameter %q: %v", name, err)}
	}
	if err := checkOneofs(msg, fds); err != nil {
		return bad(err)
	}
	parent := mutableParent(msg, fds)
	leaf := fds[len(fds)-1]
	if leaf.IsMap() {
		if !p.isMap {
			return bad(fmt.Errorf("a map field is set as %s[key]=value", leaf.Name()))
		}
		if len(vals) != 1 {
			return bad(fmt.Errorf("map key %q given %d values", p.mapKey, len(vals)))
		}
		k, err := parseScalar(leaf.MapKey(), p.mapKey)
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
	if b.Body == FieldBody && overlaps([]protoreflect.FieldDescriptor{b.bodyField}, fds) {
		return true
	}
	for _, pf := range b.pathFields {
		if overlaps(pf, fds) {
			return true
		}
	}
	return false
}

// overlaps reports whether setting one of the field paths a and b can change
// the other: one is a prefix of the other, or they part at two members of
// one oneof (setting one clears the other).
func overlaps(a, b []protoreflect.FieldDescriptor) bool {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			oa := a[i].ContainingOneof()
			return oa != nil && !oa.IsSynthetic() && oa == b[i].ContainingOneof()
		}
	}
	return true
}

// checkOneofs refuses to set the field path fds of m when a step of it is a
// member of a oneof whose other member an earlier parameter already set.
func checkOneofs(m protoreflect.Message, fds []protoreflect.FieldDescriptor) error {
	for i, fd := range fds {
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if set := m.WhichOneof(od); set != nil && set != fd {
				return fmt.Errorf("oneof %s already has %s set", od.Name(), set.Name())
			}
		}
		if i == len(fds)-1 || !m.Has(fd) {
			return nil
		}
		m = m.Get(fd).Message()
	}
	return nil
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
// is decoded fully; a multi-segment value leaves "%2F" and "%2f" unchanged so
// that the segments stay distinguishable, as the HttpRule specification
// requires.
func unescapePathValue(raw string, multi bool) (string, error) {
	if !strings.Contains(raw, "%") {
		return raw, nil
	}
	if !multi {
		return url.PathUnescape(raw)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			out = append(out, raw[i])
			continue
		}
		if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
			return "", url.EscapeError(raw[i:min(i+3, len(raw))])
		}
		if raw[i+1] == '2' && (raw[i+2] == 'F' || raw[i+2] == 'f') {
			out = append(out, raw[i:i+3]...)
		} else {
			out = append(out, unhex(raw[i+1])<<4|unhex(raw[i+2]))
		}
		i += 2
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
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
	if b.response != nil {
		bp := getBuffer()
		out, err := b.response.marshalJSON(*bp, wire)
		if t, fast := b.response.(*transcoder); fast && err != nil {
			out, err = t.ref.marshalJSON(out[:0], wire) // it explains the error, or renders the rare shapes
		}
		body, err := putBuffer(bp, out, err)
		if err != nil {
			return nil, err
		}
		return &Response{Body: body, ContentType: "application/json"}, nil
	}
	msg := b.output.New()
	if err := unmarshalWire(proto.UnmarshalOptions{Resolver: b.unmarshal.Resolver}, wire, msg.Interface()); err != nil {
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
	// field, then take the field's JSON value out of it. An unset field is
	// rendered as its zero value ("", 0, [], {}), which EmitUnpopulated
	// gives without touching the nested messages of a set one.
	only := b.output.New()
	opts := b.marshal
	if msg.Has(fd) {
		only.Set(fd, msg.Get(fd))
	} else {
		opts.EmitUnpopulated = true
	}
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
	value := []byte(fields[name])
	if value == nil { // an unset oneof or proto3 optional field
		value = []byte("null")
	}
	return &Response{Body: value, ContentType: "application/json"}, nil
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
