package router

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// httpTarget is the compiled "METHOD /path/{field}" of a plain HTTP step.
// Path variables take request fields; a GET, HEAD or DELETE sends the other
// fields as query parameters and no body, any other method the whole
// request as a proto3 JSON body.
type httpTarget struct {
	method string
	// parts are the literal pieces around the variables: len(vars)+1.
	parts []string
	vars  [][]protoreflect.FieldDescriptor
	// query says the other fields go in the query; inPath are the top-level
	// fields the path already carries.
	query  bool
	inPath map[protoreflect.FieldDescriptor]bool
}

// compileHTTPTarget parses target against the request message type.
func compileHTTPTarget(target string, req protoreflect.MessageDescriptor) (*httpTarget, error) {
	method, path, ok := strings.Cut(target, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("HTTP target %q: want \"METHOD /path\"", target)
	}
	t := &httpTarget{method: method, inPath: map[protoreflect.FieldDescriptor]bool{}}
	switch method {
	case "GET", "HEAD", "DELETE":
		t.query = true
	}
	rest := path
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("HTTP target %q: unclosed {", target)
		}
		fds, err := resolvePath(req, rest[i+1:i+j])
		if err != nil {
			return nil, fmt.Errorf("HTTP target %q: %v", target, err)
		}
		if leaf := fds[len(fds)-1]; leaf.IsList() || leaf.IsMap() || leaf.Message() != nil {
			return nil, fmt.Errorf("HTTP target %q: {%s} is not a singular scalar field", target, rest[i+1:i+j])
		}
		t.parts = append(t.parts, rest[:i])
		t.vars = append(t.vars, fds)
		if len(fds) == 1 {
			t.inPath[fds[0]] = true
		}
		rest = rest[i+j+1:]
	}
	t.parts = append(t.parts, rest)
	if t.query {
		fields := req.Fields()
		for i := 0; i < fields.Len(); i++ {
			if fd := fields.Get(i); fd.IsMap() || fd.Message() != nil {
				return nil, fmt.Errorf("HTTP target %q: a %s sends no body, and field %s is not a scalar for the query", target, method, fd.Name())
			}
		}
	}
	return t, nil
}

// request renders the target and body of one call for req.
func (t *httpTarget) request(req protoreflect.Message, res translate.Resolver) (string, []byte, error) {
	var b strings.Builder
	b.WriteString(t.method)
	b.WriteByte(' ')
	for i, fds := range t.vars {
		m := req
		for _, fd := range fds[:len(fds)-1] {
			m = m.Get(fd).Message()
		}
		leaf := fds[len(fds)-1]
		text := scalarText(leaf, m.Get(leaf))
		if text == "" {
			return "", nil, status.Errorf(codes.InvalidArgument, "path field %s is empty", leaf.Name())
		}
		b.WriteString(t.parts[i])
		b.WriteString(url.PathEscape(text))
	}
	b.WriteString(t.parts[len(t.parts)-1])
	if !t.query {
		body, err := protojson.MarshalOptions{Resolver: res}.Marshal(req.Interface())
		return b.String(), body, err
	}
	q := url.Values{}
	req.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case t.inPath[fd]:
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				q.Add(fd.JSONName(), scalarText(fd, v.List().Get(i)))
			}
		default:
			q.Add(fd.JSONName(), scalarText(fd, v))
		}
		return true
	})
	if len(q) > 0 {
		b.WriteByte('?')
		b.WriteString(q.Encode())
	}
	return b.String(), nil, nil
}

// scalarText writes a scalar value as text: enums by name, bytes in base64.
func scalarText(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.BytesKind:
		return base64.URLEncoding.EncodeToString(v.Bytes())
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32)
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return v.String() // strings, booleans and integers
}

// httpError turns a plain HTTP upstream's error answer into a status: the
// google.rpc.Status of its body when it sends one, else a code from the
// HTTP status.
func httpError(reply *Reply) error {
	var st spb.Status
	if protojson.Unmarshal(reply.Message, &st) == nil && st.Code != 0 {
		return status.ErrorProto(&st)
	}
	return status.Errorf(translate.CodeFromHTTP(reply.HTTPStatus), "HTTP upstream answered %d", reply.HTTPStatus)
}
