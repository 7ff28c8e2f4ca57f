package router_test

import (
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
)

// echoUpstream is a bidirectional upstream stream that echoes each request
// with a prefix, and fails with failWith (if set) after the first reply.
type echoUpstream struct {
	ctx      context.Context
	in       chan []byte // requests; closed by CloseSend
	failWith error
	replies  int
}

func (u *echoUpstream) Send(msg []byte) error {
	select {
	case u.in <- msg:
		return nil
	case <-u.ctx.Done():
		return io.EOF
	}
}

func (u *echoUpstream) CloseSend() error { close(u.in); return nil }

// echoEndpoint is the address every echoUpstream says it went to.
const echoEndpoint = "10.0.0.7:9090"

func (u *echoUpstream) Endpoint() string { return echoEndpoint }

func (u *echoUpstream) Recv() ([]byte, error) {
	if u.failWith != nil && u.replies == 1 {
		return nil, u.failWith
	}
	select {
	case msg, ok := <-u.in:
		if !ok {
			return nil, io.EOF
		}
		u.replies++
		return append([]byte("echo "), msg...), nil
	case <-u.ctx.Done():
		return nil, status.FromContextError(u.ctx.Err()).Err()
	}
}

func (u *echoUpstream) Header() (metadata.MD, error) { return metadata.Pairs("h", "1"), nil }
func (u *echoUpstream) Trailer() metadata.MD         { return metadata.Pairs("t", "2") }

// streamInvoker opens echoUpstreams and remembers the last one's context.
type streamInvoker struct {
	failWith error
	ctx      context.Context
}

func (i *streamInvoker) Invoke(context.Context, string, []byte, metadata.MD) (*router.Reply, error) {
	return nil, errors.New("unary call on a streaming test upstream")
}

func (i *streamInvoker) NewStream(ctx context.Context, _ string, _ protoreflect.MethodDescriptor, _ metadata.MD) (router.UpstreamStream, error) {
	i.ctx = ctx
	return &echoUpstream{ctx: ctx, in: make(chan []byte), failWith: i.failWith}, nil
}

// clientStream is the ingress side: it sends reqs then half-closes (or
// fails with recvErr), and records what it was sent.
type clientStream struct {
	reqs    []string
	recvErr error
	sendErr error
	log     []string
}

func (s *clientStream) Recv() ([]byte, error) {
	if len(s.reqs) == 0 {
		if s.recvErr != nil {
			return nil, s.recvErr
		}
		return nil, io.EOF
	}
	msg := s.reqs[0]
	s.reqs = s.reqs[1:]
	return []byte(msg), nil
}

func (s *clientStream) SetHeader(md metadata.MD) error {
	s.log = append(s.log, "header "+md.Get("h")[0])
	return nil
}

func (s *clientStream) Send(msg []byte) error {
	if s.sendErr != nil {
		return s.sendErr
	}
	s.log = append(s.log, string(msg))
	return nil
}

func chatRoute(inv router.Invoker) *router.Route {
	md := libraryv1.File_example_library_v1_library_proto.Services().Get(0).Methods().ByName("Chat")
	return &router.Route{Method: md, Target: "/example.library.v1.LibraryService/Chat", Invoker: inv, Handler: router.Dispatch}
}

func TestDispatchStream(t *testing.T) {
	inv := &streamInvoker{}
	cs := &clientStream{reqs: []string{"a", "b"}}
	c := &router.Call{Route: chatRoute(inv), Stream: cs}
	if err := router.Dispatch.Handle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if want := []string{"header 1", "echo a", "echo b"}; !reflect.DeepEqual(cs.log, want) {
		t.Errorf("client saw %q, want %q", cs.log, want)
	}
	if c.Reply == nil || c.Reply.Trailer.Get("t")[0] != "2" || c.Reply.Endpoint != echoEndpoint {
		t.Errorf("reply %+v, want the upstream's trailer and endpoint %s", c.Reply, echoEndpoint)
	}
	if inv.ctx.Err() == nil {
		t.Error("the upstream stream's context is still live after the call")
	}
}

func TestDispatchStreamUpstreamFailure(t *testing.T) {
	inv := &streamInvoker{failWith: status.Error(codes.DataLoss, "lost")}
	cs := &clientStream{reqs: []string{"a", "b"}}
	err := router.Dispatch.Handle(t.Context(), &router.Call{Route: chatRoute(inv), Stream: cs})
	if status.Code(err) != codes.DataLoss {
		t.Errorf("err %v, want DataLoss", err)
	}
	if want := []string{"header 1", "echo a"}; !reflect.DeepEqual(cs.log, want) {
		t.Errorf("client saw %q, want %q", cs.log, want)
	}
}

func TestDispatchStreamClientFailure(t *testing.T) {
	bad := errors.New("bad message")
	inv := &streamInvoker{}
	cs := &clientStream{reqs: []string{"a"}, recvErr: bad}
	err := router.Dispatch.Handle(t.Context(), &router.Call{Route: chatRoute(inv), Stream: cs})
	if !errors.Is(err, bad) {
		t.Errorf("err %v, want the client's error", err)
	}
	waitDone(t, inv.ctx)
}

func TestDispatchStreamClientGone(t *testing.T) {
	gone := errors.New("connection reset")
	inv := &streamInvoker{}
	cs := &clientStream{reqs: []string{"a"}, sendErr: gone}
	err := router.Dispatch.Handle(t.Context(), &router.Call{Route: chatRoute(inv), Stream: cs})
	if !errors.Is(err, gone) {
		t.Errorf("err %v, want the send error", err)
	}
	waitDone(t, inv.ctx)
}

func TestDispatchStreamNeedsStreamInvoker(t *testing.T) {
	r := chatRoute(unaryOnly{})
	err := router.Dispatch.Handle(t.Context(), &router.Call{Route: r, Stream: &clientStream{}})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("err %v, want Unimplemented", err)
	}
}

type unaryOnly struct{}

func (unaryOnly) Invoke(context.Context, string, []byte, metadata.MD) (*router.Reply, error) {
	return &router.Reply{}, nil
}

// waitDone waits (bounded) for the upstream's context to end.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream stream was not cancelled")
	}
}

func TestDispatchStreamBadRequestNeverCallsUpstream(t *testing.T) {
	bad := errors.New("bad request")
	inv := &streamInvoker{}
	r := chatRoute(inv)
	r.Method = r.Method.Parent().(protoreflect.ServiceDescriptor).Methods().ByName("StreamBooks")
	for _, cs := range []*clientStream{{recvErr: bad}, {}} {
		err := router.Dispatch.Handle(t.Context(), &router.Call{Route: r, Stream: cs})
		if err == nil || inv.ctx != nil {
			t.Errorf("err %v, upstream opened: %v; want an error and no upstream stream", err, inv.ctx != nil)
		}
	}
}
