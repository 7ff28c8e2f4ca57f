package translate

import "google.golang.org/protobuf/reflect/protoreflect"

// PathFields returns the field path each variable of the template binds,
// in the order of Template.Variables. The slices are the binding's own:
// callers must not modify them.
func (b *Binding) PathFields() [][]protoreflect.FieldDescriptor { return b.pathFields }

// BodyField is the request field a `body: "field"` rule maps the HTTP body
// onto; nil for `body: "*"` and for rules without a body.
func (b *Binding) BodyField() protoreflect.FieldDescriptor { return b.bodyField }

// ResponseBodyField is the response field a `response_body` rule answers
// with; nil when the whole response message is the answer.
func (b *Binding) ResponseBodyField() protoreflect.FieldDescriptor { return b.responseBody }

// JSON returns the JSON options the binding reads and writes with.
func (b *Binding) JSON() JSONOptions { return b.opts }

// QueryAllowed reports whether a query parameter may set the field at the
// end of fds: not on a `body: "*"` rule, and not a field the path or the
// body field sets, nor one that holds or lies inside such a field.
func (b *Binding) QueryAllowed(fds []protoreflect.FieldDescriptor) bool {
	if b.Body == WholeBody {
		return false
	}
	return !b.bound(fds)
}
