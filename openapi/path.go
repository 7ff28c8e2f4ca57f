package openapi

import (
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// pathOf turns a template into an OpenAPI path and its path parameters.
//
// A variable that matches one segment ("{shelf}", "{shelf=*}") is one
// parameter of that name. A variable whose pattern spans segments
// ("{name=shelves/*/books/*}") is written out: its literals stay in the
// path and each of its wildcards is a parameter named after the variable
// and the literal before it ("/v1/shelves/{name_shelves}/books/{name_books}").
// OpenAPI clients percent-encode a "/" inside a parameter, which such a
// route would not match, and two such routes ("/v1/{name=shelves/*}" and
// "/v1/{name=shelves/*/books/*}") would otherwise share one OpenAPI path.
// A trailing "**" is one parameter whose value may hold slashes.
func pathOf(t *translate.Template, b *translate.Binding, m mapping) (string, openapi3.Parameters) {
	var sb strings.Builder
	var params openapi3.Parameters
	used := map[string]bool{}
	unique := func(name string) string {
		n, i := name, 1
		for used[n] {
			i++
			n = fmt.Sprintf("%s_%d", name, i)
		}
		used[n] = true
		return n
	}
	vi := 0
	for i := 0; i < len(t.Segments); i++ {
		sb.WriteByte('/')
		if vi < len(t.Variables) && t.Variables[vi].Start == i {
			v := t.Variables[vi]
			field := strings.Join(v.FieldPath, ".")
			// Parameter names avoid dots: clients build paths with
			// templating that takes only identifier-like names.
			pname := strings.Join(v.FieldPath, "_")
			var leaf protoreflect.FieldDescriptor
			if b != nil && vi < len(b.PathFields()) {
				fds := b.PathFields()[vi]
				leaf = fds[len(fds)-1]
			}
			segs := t.Segments[v.Start:v.End]
			whole := patternText(segs)
			if len(segs) == 1 && segs[0].Kind == translate.Wildcard {
				p := openapi3.NewPathParameter(unique(pname))
				p.Schema = openapi3.NewSchemaRef("", paramSchema(leaf))
				p.Description = fieldDoc(leaf)
				if pname != field {
					p.Extensions = map[string]any{"x-rosetta-field": field}
				}
				params = append(params, &openapi3.ParameterRef{Value: p})
				sb.WriteString("{" + p.Name + "}")
			} else {
				prev := ""
				for j, s := range segs {
					if j > 0 {
						sb.WriteByte('/')
					}
					switch s.Kind {
					case translate.Literal:
						sb.WriteString(s.Text)
						prev = s.Text
						continue
					}
					name := pname
					if prev != "" {
						name += "_" + strings.ReplaceAll(prev, ".", "_")
					} else if len(segs) > 1 {
						name += fmt.Sprintf("_%d", j+1)
					}
					p := openapi3.NewPathParameter(unique(name))
					ps := openapi3.NewStringSchema().WithPattern(`^[^/]+$`)
					desc := fmt.Sprintf("A segment of the request field `%s`, which the path sets to `%s` with this value in place of the wildcard.", field, whole)
					if s.Kind == translate.DeepWildcard {
						ps = openapi3.NewStringSchema()
						desc = fmt.Sprintf("The rest of the path, slashes included (send them unescaped): it ends the request field `%s` (`%s`).", field, whole)
					}
					p.Schema = openapi3.NewSchemaRef("", ps)
					p.Description = joinText(desc, fieldDoc(leaf))
					p.Extensions = map[string]any{"x-rosetta-field": field, "x-rosetta-field-pattern": whole}
					params = append(params, &openapi3.ParameterRef{Value: p})
					sb.WriteString("{" + p.Name + "}")
				}
			}
			i = v.End - 1
			vi++
			continue
		}
		s := t.Segments[i]
		if s.Kind == translate.Literal {
			sb.WriteString(s.Text)
			continue
		}
		p := openapi3.NewPathParameter(unique(fmt.Sprintf("segment%d", i+1)))
		p.Schema = openapi3.NewSchemaRef("", openapi3.NewStringSchema())
		p.Description = "Any path segment; it sets no request field."
		params = append(params, &openapi3.ParameterRef{Value: p})
		sb.WriteString("{" + p.Name + "}")
	}
	if len(t.Segments) == 0 {
		sb.WriteByte('/')
	}
	if t.Verb != "" {
		sb.WriteString(":" + t.Verb)
	}
	return sb.String(), params
}

// patternText renders a variable's segments as in the template.
func patternText(segs []translate.Segment) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		switch s.Kind {
		case translate.Wildcard:
			parts[i] = "*"
		case translate.DeepWildcard:
			parts[i] = "**"
		default:
			parts[i] = s.Text
		}
	}
	return strings.Join(parts, "/")
}

// fieldDoc is the comment of a field, or "".
func fieldDoc(fd protoreflect.FieldDescriptor) string {
	if fd == nil {
		return ""
	}
	return comment(fd)
}

// paramSchema is the schema of one path or query value of fd: its scalar
// form (enums by name, well-known types as their JSON strings); a string
// when fd is nil.
func paramSchema(fd protoreflect.FieldDescriptor) *openapi3.Schema {
	if fd == nil {
		return openapi3.NewStringSchema()
	}
	switch fd.Kind() {
	case protoreflect.EnumKind:
		s := openapi3.NewStringSchema()
		values := fd.Enum().Values()
		for i := 0; i < values.Len(); i++ {
			s.Enum = append(s.Enum, string(values.Get(i).Name()))
		}
		s.Description = "The value's name (its number is accepted too)."
		return s
	case protoreflect.MessageKind:
		if wk := wellKnown(fd.Message(), mapping{}); wk != nil {
			return wk
		}
		return openapi3.NewStringSchema()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		// In a URL every value is text: "NaN" and "Infinity" are strings
		// whatever the number's schema.
		s := openapi3.NewFloat64Schema()
		if fd.Kind() == protoreflect.FloatKind {
			s.Format = "float"
		}
		return s
	}
	return scalar(fd.Kind())
}
