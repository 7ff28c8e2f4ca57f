package mqtt

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/translate"
)

// methodCodec maps the messages of the gRPC method a downlink or state
// route serves onto MQTT: the request's string fields named like the topic's
// named levels fill the topic, the rest of the request is the payload (proto3
// JSON), and a device's payload (JSON, or binary protobuf when its content
// type says so) is the response.
type methodCodec struct {
	method   protoreflect.MethodDescriptor
	levels   map[string]protoreflect.FieldDescriptor // by named level
	resolver translate.Resolver
}

// newMethodCodec checks that md is unary and that each named level of tt is
// a string field of its request.
func newMethodCodec(md protoreflect.MethodDescriptor, tt *topicTemplate, resolver translate.Resolver) (*methodCodec, error) {
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, fmt.Errorf("%s streams: a downlink or state route serves a unary method", md.FullName())
	}
	c := &methodCodec{method: md, levels: map[string]protoreflect.FieldDescriptor{}, resolver: resolver}
	for _, l := range tt.levels {
		name, ok := strings.CutPrefix(l, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		fd := md.Input().Fields().ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated {
			return nil, fmt.Errorf("topic %s: %s has no string field %s", tt.src, md.Input().FullName(), name)
		}
		c.levels[name] = fd
	}
	return c, nil
}

// request decodes a request in protobuf wire form and returns its topic, the
// values of the named levels, and the payload: the request without the
// fields that went into the topic, in proto3 JSON.
func (c *methodCodec) request(tt *topicTemplate, wire []byte) (string, map[string]string, []byte, error) {
	msg := dynamicpb.NewMessage(c.method.Input())
	if err := proto.Unmarshal(wire, msg); err != nil {
		return "", nil, nil, status.Errorf(codes.InvalidArgument, "%s: %v", c.method.Input().FullName(), err)
	}
	vals := make(map[string]string, len(c.levels))
	for name, fd := range c.levels {
		v := msg.Get(fd).String()
		if err := checkLevel(name, v); err != nil {
			return "", nil, nil, err
		}
		vals[name] = v
		msg.Clear(fd)
	}
	payload, err := protojson.MarshalOptions{Resolver: c.resolver}.Marshal(msg)
	if err != nil {
		return "", nil, nil, status.Errorf(codes.InvalidArgument, "%s: %v", c.method.Input().FullName(), err)
	}
	return tt.expand(vals), vals, payload, nil
}

// response turns a device's message into the method's response in
// protobuf wire form.
func (c *methodCodec) response(m *Message) ([]byte, error) {
	out := dynamicpb.NewMessage(c.method.Output())
	var err error
	if m.ContentType == "application/protobuf" || m.ContentType == "application/x-protobuf" {
		err = proto.Unmarshal(m.Payload, out)
	} else {
		err = protojson.UnmarshalOptions{Resolver: c.resolver}.Unmarshal(m.Payload, out)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "the message on %s is not a %s: %v", m.Topic, c.method.Output().FullName(), err)
	}
	return proto.Marshal(out)
}

// checkLevel reports a value that is not one non-empty topic level without
// wildcards.
func checkLevel(name, v string) error {
	if v == "" || strings.ContainsAny(v, "/+#\x00") {
		return status.Errorf(codes.InvalidArgument, "%s: %q is not a topic level", name, v)
	}
	return nil
}
