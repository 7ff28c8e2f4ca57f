package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rosettagw/rosetta/router"
)

// WatchBuffer bounds the messages a watch holds for a client that reads
// slower than they come; beyond it the watch ends with RESOURCE_EXHAUSTED.
const WatchBuffer = 64

var watchSeq atomic.Int64

// WatchMethod describes the server-streaming method a watch route serves:
// its request has one string field per name (the route's path variables),
// its responses are rosetta.mqtt.v1.Message: topic, payload, json (the
// payload when it is JSON), content_type, retain, qos. The descriptors are
// built for the route and registered nowhere.
func WatchMethod(names []string) (protoreflect.MethodDescriptor, error) {
	n := watchSeq.Add(1)
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	field := func(name string, num int32, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: typ, Label: opt, JsonName: proto.String(jsonName(name))}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	req := &descriptorpb.DescriptorProto{Name: proto.String("WatchRequest")}
	for i, name := range names {
		req.Field = append(req.Field, field(name, int32(i+1), str, ""))
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(fmt.Sprintf("rosetta/mqtt/watch%d.proto", n)),
		Package:    proto.String(fmt.Sprintf("rosetta.mqtt.v1.watch%d", n)),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/struct.proto"},
		MessageType: []*descriptorpb.DescriptorProto{req, {
			Name: proto.String("Message"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("topic", 1, str, ""),
				field("payload", 2, descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(), ""),
				field("json", 3, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), ".google.protobuf.Value"),
				field("content_type", 4, str, ""),
				field("retain", 5, descriptorpb.FieldDescriptorProto_TYPE_BOOL.Enum(), ""),
				field("qos", 6, descriptorpb.FieldDescriptorProto_TYPE_UINT32.Enum(), ""),
			},
		}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Topics"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name: proto.String("Watch"), InputType: proto.String("WatchRequest"), OutputType: proto.String("Message"),
				ServerStreaming: proto.Bool(true),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		return nil, err
	}
	return fd.Services().Get(0).Methods().Get(0), nil
}

// jsonName is protoc's lowerCamelCase JSON name of a field.
func jsonName(s string) string {
	var b strings.Builder
	up := false
	for _, r := range s {
		if r == '_' {
			up = true
			continue
		}
		if up && 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		b.WriteRune(r)
	}
	return b.String()
}

// Watcher is the router.StreamInvoker of a watch route: a server stream of
// the messages published on a topic filter whose named levels are the
// route's path variables ("devices/{device_id}/#").
type Watcher struct {
	broker Broker
	filter string
	method protoreflect.MethodDescriptor
}

// NewWatcher returns the invoker of a watch route on br for method (made
// by WatchMethod for the filter's named levels).
func NewWatcher(br Broker, filter string, method protoreflect.MethodDescriptor) *Watcher {
	return &Watcher{broker: br, filter: filter, method: method}
}

// Invoke refuses unary calls: a watch is a stream.
func (w *Watcher) Invoke(context.Context, string, []byte, metadata.MD) (*router.Reply, error) {
	return nil, status.Error(codes.Unimplemented, "a topic watch is a stream")
}

// NewStream opens a watch; it subscribes once the request (the named
// levels' values) is sent.
func (w *Watcher) NewStream(ctx context.Context, _ string, _ protoreflect.MethodDescriptor, _ metadata.MD) (router.UpstreamStream, error) {
	return &watch{w: w, ctx: ctx, ready: make(chan struct{}), msgs: make(chan *Message, WatchBuffer), overflow: make(chan struct{})}, nil
}

// watch is one open watch.
type watch struct {
	w        *Watcher
	ctx      context.Context
	ready    chan struct{} // closed once subscribed, or err set
	err      error
	msgs     chan *Message
	overflow chan struct{}
	once     sync.Once
	sent     bool
}

// Send takes the request and subscribes.
func (s *watch) Send(req []byte) error {
	if s.sent {
		return status.Error(codes.InvalidArgument, "a watch takes one request")
	}
	s.sent = true
	defer close(s.ready)
	msg := dynamicpb.NewMessage(s.w.method.Input())
	if err := proto.Unmarshal(req, msg); err != nil {
		s.err = status.Errorf(codes.Internal, "watch request: %v", err)
		return nil
	}
	filter := s.w.filter
	fields := msg.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		v := msg.Get(fd).String()
		if v == "" || strings.ContainsAny(v, "/+#\x00") {
			s.err = status.Errorf(codes.InvalidArgument, "%s: %q is not a topic level", fd.Name(), v)
			return nil
		}
		filter = strings.ReplaceAll(filter, "{"+string(fd.Name())+"}", v)
	}
	unsubscribe, err := s.w.broker.Subscribe(s.ctx, filter, func(m *Message) {
		select {
		case s.msgs <- m:
		default:
			s.once.Do(func() { close(s.overflow) })
		}
	})
	if err != nil {
		s.err = status.Errorf(codes.Unavailable, "subscribe to %s: %v", filter, err)
		return nil
	}
	go func() {
		<-s.ctx.Done()
		unsubscribe()
	}()
	return nil
}

func (s *watch) CloseSend() error { return nil }

// Endpoint is "": a watch reads the broker, not an upstream endpoint.
func (s *watch) Endpoint() string { return "" }

// Recv returns the next message on the filter.
func (s *watch) Recv() ([]byte, error) {
	select {
	case <-s.ready:
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
	if s.err != nil {
		return nil, s.err
	}
	select {
	case m := <-s.msgs:
		return s.encode(m)
	case <-s.overflow:
		return nil, status.Errorf(codes.ResourceExhausted, "the client reads too slowly: more than %d messages waiting", WatchBuffer)
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// encode renders m as a rosetta.mqtt.v1.Message.
func (s *watch) encode(m *Message) ([]byte, error) {
	out := dynamicpb.NewMessage(s.w.method.Output())
	f := out.Descriptor().Fields()
	out.Set(f.ByName("topic"), protoreflect.ValueOfString(m.Topic))
	out.Set(f.ByName("payload"), protoreflect.ValueOfBytes(m.Payload))
	if json.Valid(m.Payload) {
		v := &structpb.Value{}
		if protojson.Unmarshal(m.Payload, v) == nil {
			out.Set(f.ByName("json"), protoreflect.ValueOfMessage(v.ProtoReflect()))
		}
	}
	out.Set(f.ByName("content_type"), protoreflect.ValueOfString(m.ContentType))
	out.Set(f.ByName("retain"), protoreflect.ValueOfBool(m.Retain))
	out.Set(f.ByName("qos"), protoreflect.ValueOfUint32(uint32(m.QoS)))
	return proto.Marshal(out)
}

func (s *watch) Header() (metadata.MD, error) { return metadata.MD{}, nil }

func (s *watch) Trailer() metadata.MD { return nil }
