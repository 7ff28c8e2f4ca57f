package openapi

import (
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// maxQueryDepth bounds how deeply query parameters name nested fields
// ("filter.author.name" is depth 3).
const maxQueryDepth = 4

// add describes one endpoint; it returns why it could not, or "".
func (b *builder) add(e Endpoint) string {
	r := e.Route
	method := r.HTTPMethod
	switch method {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch,
		http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return "OpenAPI 3.1 has no custom HTTP methods"
	}
	bind := r.Binding
	m := mapping{}
	if bind != nil {
		m = mappingOf(bind.JSON())
	}
	path, params := pathOf(r.Template, bind, m)
	path = b.samePath(path, params)
	item := b.doc.Paths.Value(path)
	if item == nil {
		item = &openapi3.PathItem{}
		b.doc.Paths.Set(path, item)
	}
	if item.GetOperation(method) != nil {
		return "another route already has " + method + " " + path
	}
	op := openapi3.NewOperation()
	op.Parameters = params
	op.Responses = openapi3.NewResponses()
	op.Responses.Delete("default")
	op.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().
		WithDescription("An error: a google.rpc.Status, with the HTTP status of its code.").
		WithJSONSchemaRef(b.schemas.ref(StatusSchema))})
	if e.Security != nil {
		sec := e.Security
		op.Security = &sec
	}
	switch e.Kind {
	case Method, Aggregate, Watch:
		if bind == nil {
			return "no binding"
		}
		b.describeMethod(op, e, bind, m)
	case Publish:
		b.describePublish(op, e)
	case State:
		op.OperationID = b.operationID(sanitize(method, r.Template.Source))
		op.Summary = "The last message seen on the MQTT topic " + e.Topic + "."
		op.Tags = []string{b.tag("MQTT", "Devices reached through the MQTT bridge.")}
		op.Responses.Set("200", &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription("The message's payload, as the device sent it; Grpc-Metadata-Mqtt-Retain and Grpc-Metadata-Mqtt-Received-At tell whether it was retained and when it came.").
			WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})})
	case Proxy:
		op.OperationID = b.operationID(sanitize(method, r.Template.Source))
		op.Summary = "Proxied to the HTTP upstream " + r.Upstream + " (" + r.Target + ")."
		op.Tags = []string{b.tag(r.Upstream, "Routes of the HTTP upstream "+r.Upstream+".")}
		if method != http.MethodGet && method != http.MethodHead && method != http.MethodDelete {
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().
				WithDescription("Passed to the upstream as it is.").
				WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})}
		}
		op.Responses.Set("200", &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription("The upstream's answer, as it is (its status too).").
			WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})})
	}
	item.SetOperation(method, op)
	return ""
}

// paramRE matches the parameters of an OpenAPI path.
var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// samePath returns the path already in the document that differs from path
// only in its parameters' names, renaming params to match (OpenAPI forbids
// two such paths); else path itself.
func (b *builder) samePath(path string, params openapi3.Parameters) string {
	shape := paramRE.ReplaceAllString(path, "{}")
	prev, ok := b.shapes[shape]
	if !ok {
		b.shapes[shape] = path
		return path
	}
	names := paramRE.FindAllString(prev, -1)
	for i, p := range params {
		if i < len(names) {
			p.Value.Name = strings.Trim(names[i], "{}")
		}
	}
	return prev
}

// tag registers a tag once and returns its name.
func (b *builder) tag(name, desc string) string {
	if !b.tags[name] {
		b.tags[name] = true
		b.doc.Tags = append(b.doc.Tags, &openapi3.Tag{Name: name, Description: desc})
	}
	return name
}

// describeMethod describes a binding of a gRPC method, or an aggregate's.
func (b *builder) describeMethod(op *openapi3.Operation, e Endpoint, bind *translate.Binding, m mapping) {
	r := e.Route
	md := bind.Method
	if e.Kind == Aggregate {
		op.OperationID = b.operationID(sanitize(r.HTTPMethod, r.Template.Source))
		op.Summary = "Aggregate: " + r.Target + "."
		op.Description = "One call that makes several upstream calls and answers one JSON object. When optional steps failed, the answer has \"partial\": true and \"failedSteps\", and the header Rosetta-Partial lists them."
		op.Tags = []string{b.tag("aggregates", "Routes composed of several upstream calls.")}
	} else if e.Kind == Watch {
		op.OperationID = b.operationID(sanitize(r.HTTPMethod, r.Template.Source))
		op.Summary = "Streams the messages published on the MQTT topic filter " + e.Topic + "."
		op.Description = "Each message: its topic, its payload (base64), the payload as JSON when it is JSON, its content type, retain flag and QoS."
		op.Tags = []string{b.tag("MQTT", "Devices reached through the MQTT bridge.")}
	} else {
		svc := md.Parent().(protoreflect.ServiceDescriptor)
		op.OperationID = b.operationID(string(svc.Name()) + "_" + string(md.Name()))
		doc := comment(md)
		op.Summary = summary(doc)
		op.Description = joinText(doc, "gRPC method `"+string(md.FullName())+"`.")
		op.Tags = []string{b.tag(string(svc.FullName()), comment(svc))}
		if opts, ok := md.Options().(interface{ GetDeprecated() bool }); ok && opts.GetDeprecated() {
			op.Deprecated = true
		}
	}
	op.Parameters = append(op.Parameters, b.queryParams(bind, m)...)
	if body := b.requestBody(bind, m); body != nil {
		if md.IsStreamingClient() {
			body.Description = "A client stream: the request messages one after another, as concatenated or newline-delimited JSON values, each of this schema and each within the body limit."
		}
		op.RequestBody = &openapi3.RequestBodyRef{Value: body}
	}
	ok := openapi3.NewResponse()
	switch {
	case r.HTTPMethod == http.MethodHead:
		ok.WithDescription("The headers the GET answer would have; no body.")
	case md.IsStreamingServer():
		line := openapi3.NewObjectSchema()
		line.Properties = openapi3.Schemas{
			"result": b.schemas.message(md.Output(), m),
			"error":  b.schemas.ref(StatusSchema),
		}
		line.Description = "One line per message: {\"result\": message}; a failure after the first message ends the stream with a last line {\"error\": status}."
		sse := openapi3.NewStringSchema()
		sse.Description = "Server-Sent Events: one event per message (id: 1, 2, ..., data: the message in JSON), then a final \"event: status\" whose data is the google.rpc.Status (code 0 when the stream ended well)."
		ok.WithDescription("A server stream: newline-delimited JSON, or Server-Sent Events to a client that accepts text/event-stream.").
			WithContent(openapi3.Content{
				"application/x-ndjson": openapi3.NewMediaType().WithSchema(line),
				"text/event-stream":    openapi3.NewMediaType().WithSchema(sse),
			})
	case e.Kind == Aggregate:
		answer := openapi3.NewObjectSchema()
		answer.AdditionalProperties = openapi3.AdditionalProperties{Has: ptr(true)}
		answer.Properties = openapi3.Schemas{
			"partial":     openapi3.NewSchemaRef("", openapi3.NewBoolSchema()),
			"failedSteps": openapi3.NewSchemaRef("", openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema())),
		}
		answer.Description = "The steps' answers, as the route's respond section shapes them, in the proto3 JSON mapping."
		ok.WithDescription("The composed answer.").WithJSONSchema(answer)
		ok.Headers = openapi3.Headers{"Rosetta-Partial": &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
			Description: "The optional steps that failed or were skipped, comma-separated.",
			Schema:      openapi3.NewSchemaRef("", openapi3.NewStringSchema()),
		}}}}
	case bind.ResponseBodyField() != nil:
		fd := bind.ResponseBodyField()
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && isHTTPBody(fd.Message()) {
			ok.WithDescription("The response's " + string(fd.Name()) + ": its data, with its content_type.").WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})
		} else {
			ok.WithDescription("The response's field " + string(fd.Name()) + " (response_body).").WithJSONSchemaRef(b.schemas.field(fd, m))
		}
	case isHTTPBody(md.Output()):
		ok.WithDescription("The response's data as it is, with its content_type (google.api.HttpBody).").WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})
	default:
		ok.WithDescription(string(md.Output().Name())).WithJSONSchemaRef(b.schemas.message(md.Output(), m))
	}
	op.Responses.Set("200", &openapi3.ResponseRef{Value: ok})
}

func isHTTPBody(md protoreflect.MessageDescriptor) bool {
	return md.FullName() == "google.api.HttpBody"
}

// requestBody describes the body a binding reads, or nil.
func (b *builder) requestBody(bind *translate.Binding, m mapping) *openapi3.RequestBody {
	md := bind.Method.Input()
	switch bind.Body {
	case translate.WholeBody:
		if bind.RawBody() {
			return openapi3.NewRequestBody().WithDescription("The request's data, of any content type (google.api.HttpBody).").
				WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})
		}
		desc := "The request message"
		if len(bind.PathFields()) > 0 {
			desc += "; fields the path sets are taken from the path"
		}
		return openapi3.NewRequestBody().WithDescription(desc + ".").WithJSONSchemaRef(b.schemas.message(md, m))
	case translate.FieldBody:
		fd := bind.BodyField()
		if bind.RawBody() {
			return openapi3.NewRequestBody().WithDescription("The data of the request's " + string(fd.Name()) + ", of any content type (google.api.HttpBody).").
				WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})
		}
		body := openapi3.NewRequestBody().WithDescription("The request's field " + string(fd.Name()) + "; an empty body sets it empty.").
			WithJSONSchemaRef(b.schemas.field(fd, m))
		if facts := applyFieldOptions(openapi3.NewSchemaRef("", openapi3.NewSchema()), fd); facts.required {
			body.Required = true
		}
		return body
	}
	return nil
}

// queryParams lists a query parameter for every field of the request the
// binding leaves free: scalars, enums (by name), repeated fields (the
// parameter repeated), well-known types in their string forms, maps as
// name[key]=value, and the fields of singular messages by dotted names.
func (b *builder) queryParams(bind *translate.Binding, m mapping) openapi3.Parameters {
	var out openapi3.Parameters
	var walk func(md protoreflect.MessageDescriptor, prefix []protoreflect.FieldDescriptor, names []string, seen []protoreflect.FullName)
	walk = func(md protoreflect.MessageDescriptor, prefix []protoreflect.FieldDescriptor, names []string, seen []protoreflect.FullName) {
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			fds := append(slices.Clone(prefix), fd)
			if !bind.QueryAllowed(fds) {
				continue
			}
			name := strings.Join(append(slices.Clone(names), m.fieldName(fd)), ".")
			var s *openapi3.Schema
			p := openapi3.NewQueryParameter(name)
			switch {
			case fd.IsMap():
				if fd.MapValue().Message() != nil && wellKnown(fd.MapValue().Message(), m) == nil {
					continue
				}
				s = openapi3.NewObjectSchema()
				s.AdditionalProperties = openapi3.AdditionalProperties{Schema: openapi3.NewSchemaRef("", paramSchema(fd.MapValue()))}
				p.Style, p.Explode = openapi3.SerializationDeepObject, ptr(true)
			case fd.IsList():
				if fd.Message() != nil && wellKnown(fd.Message(), m) == nil {
					continue // repeated messages cannot be written in a query
				}
				s = openapi3.NewArraySchema().WithItems(paramSchema(fd))
				p.Style, p.Explode = openapi3.SerializationForm, ptr(true)
			case fd.Message() != nil && wellKnown(fd.Message(), m) == nil:
				if len(prefix)+1 >= maxQueryDepth || slices.Contains(seen, fd.Message().FullName()) {
					continue
				}
				walk(fd.Message(), fds, append(slices.Clone(names), m.fieldName(fd)), append(slices.Clone(seen), fd.Message().FullName()))
				continue
			default:
				s = paramSchema(fd)
			}
			ref := openapi3.NewSchemaRef("", s)
			applyFieldOptions(ref, fd)
			p.Schema = ref
			p.Description = joinText(comment(fd), s.Description)
			s.Description = ""
			out = append(out, &openapi3.ParameterRef{Value: p})
		}
	}
	walk(bind.Method.Input(), nil, nil, []protoreflect.FullName{bind.Method.Input().FullName()})
	return out
}

// describePublish describes an MQTT downlink route.
func (b *builder) describePublish(op *openapi3.Operation, e Endpoint) {
	r := e.Route
	op.OperationID = b.operationID(sanitize(r.HTTPMethod, r.Template.Source))
	op.Tags = []string{b.tag("MQTT", "Devices reached through the MQTT bridge.")}
	op.Summary = "Publishes the body to the MQTT topic " + e.Topic + "."
	op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().
		WithDescription("The payload, published as it is.").
		WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})}
	qos := openapi3.NewQueryParameter("qos").WithSchema(openapi3.NewIntegerSchema().WithEnum(0, 1))
	qos.Description = "The QoS to publish with (default: the route's)."
	retain := openapi3.NewQueryParameter("retain").WithSchema(openapi3.NewBoolSchema())
	retain.Description = "Publish a retained message."
	wait := openapi3.NewQueryParameter("wait").WithSchema(openapi3.NewStringSchema().WithPattern(`^[0-9]+(\.[0-9]+)?(ms|s|m)$`))
	wait.Description = "Wait this long (at most 1m) for the device's reply, and answer with it."
	op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: qos}, &openapi3.ParameterRef{Value: retain}, &openapi3.ParameterRef{Value: wait})
	op.Responses.Set("202", &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("Published; no reply awaited.")})
	reply := "The device's reply (with wait), as it sent it; 504 when none came in time."
	if e.Wait {
		reply = "The device's reply, as it sent it; 504 when none came within the route's wait."
	}
	op.Responses.Set("200", &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(reply).
		WithContent(openapi3.Content{"*/*": &openapi3.MediaType{}})})
}
