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

// scriptedUpstream is a server stream whose messages the test hands out
// one at a time (closing out ends it); calls counts its Recv calls.
type scriptedUpstream struct {
	ctx   context.Context
	out   chan string
	calls chan int
	n     int
}

func (u *scriptedUpstream) Send([]byte) error { return nil }
func (u *scriptedUpstream) CloseSend() error  { return nil }
func (u *scriptedUpstream) Recv() ([]byte, error) {
	u.n++
	if u.calls != nil {
		u.calls <- u.n
	}
	select {
	case msg, ok := <-u.out:
		if !ok {
			return nil, io.EOF
		}
		return []byte(msg), nil
	case <-u.ctx.Done():
		return nil, status.FromContextError(u.ctx.Err()).Err()
	}
}
func (u *scriptedUpstream) Header() (metadata.MD, error) { return metadata.Pairs("h", "1"), nil }
func (u *scriptedUpstream) Trailer() metadata.MD         { return nil }
func (u *scriptedUpstream) Endpoint() string             { return "" }

type scriptedInvoker struct{ up *scriptedUpstream }

func (i *scriptedInvoker) Invoke(context.Context, string, []byte, metadata.MD) (*router.Reply, error) {
	return nil, errors.New("unary call on a streaming test upstream")
}

func (i *scriptedInvoker) NewStream(ctx context.Context, _ string, _ protoreflect.MethodDescriptor, _ metadata.MD) (router.UpstreamStream, error) {
	i.up.ctx = ctx
	return i.up, nil
}

// flushingClient is an ingress stream whose Send only writes (the call's
// Flush sends): it logs both, and reports each to events when set.
type flushingClient struct {
	clientStream
	events   chan string
	beforeM1 chan struct{} // when set, Send of "m1" waits for it
	flushErr error
}

func (s *flushingClient) Send(msg []byte) error {
	if string(msg) == "m1" && s.beforeM1 != nil {
		<-s.beforeM1
	}
	s.clientStream.Send(msg)
	s.event(string(msg))
	return nil
}

func (s *flushingClient) Flush() error {
	s.log = append(s.log, "flush")
	s.event("flush")
	return s.flushErr
}

func (s *flushingClient) event(e string) {
	if s.events != nil {
		s.events <- e
	}
}

func streamBooksRoute(inv router.Invoker) *router.Route {
	r := chatRoute(inv)
	r.Method = r.Method.Parent().(protoreflect.ServiceDescriptor).Methods().ByName("StreamBooks")
	return r
}

// TestDispatchStreamFlushesWhenIdle: with Call.Flush, a message is
// flushed as soon as the upstream has no further one ready, never held
// for the next.
func TestDispatchStreamFlushesWhenIdle(t *testing.T) {
	up := &scriptedUpstream{out: make(chan string)}
	cs := &flushingClient{clientStream: clientStream{reqs: []string{"req"}}, events: make(chan string, 8)}
	c := &router.Call{Route: streamBooksRoute(&scriptedInvoker{up}), Stream: cs, Flush: cs.Flush}
	done := make(chan error, 1)
	go func() { done <- router.Dispatch.Handle(t.Context(), c) }()
	for _, msg := range []string{"m1", "m2"} {
		up.out <- msg
		for _, want := range []string{msg, "flush"} {
			select {
			case got := <-cs.events:
				if got != want {
					t.Fatalf("the client saw %q, want %q", got, want)
				}
			case <-time.After(10 * time.Second): // a hang guard: the flush never came
				t.Fatalf("%q was not flushed while the upstream had nothing more", msg)
			}
		}
	}
	close(up.out)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []string{"header 1", "m1", "flush", "m2", "flush"}; !reflect.DeepEqual(cs.log, want) {
		t.Errorf("client saw %q, want %q", cs.log, want)
	}
}

// TestDispatchStreamBatchesReadyMessages: a message the upstream already
// has behind the one being sent is written with it, in one flush.
func TestDispatchStreamBatchesReadyMessages(t *testing.T) {
	up := &scriptedUpstream{out: make(chan string, 3), calls: make(chan int, 8)}
	for _, m := range []string{"m1", "m2", "m3"} {
		up.out <- m
	}
	close(up.out)
	cs := &flushingClient{clientStream: clientStream{reqs: []string{"req"}}, beforeM1: make(chan struct{})}
	go func() {
		// Once the upstream is asked for its third message, the second
		// has been read ahead: only then may m1 be sent.
		for n := range up.calls {
			if n == 3 {
				close(cs.beforeM1)
				return
			}
		}
	}()
	c := &router.Call{Route: streamBooksRoute(&scriptedInvoker{up}), Stream: cs, Flush: cs.Flush}
	if err := router.Dispatch.Handle(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if len(cs.log) < 3 || !reflect.DeepEqual(cs.log[:3], []string{"header 1", "m1", "m2"}) {
		t.Errorf("client saw %q, want m1 and m2 without a flush between them", cs.log)
	}
}

// TestDispatchStreamFlushFailure: a failed flush (the client gone) ends
// the call with its error and cancels the upstream.
func TestDispatchStreamFlushFailure(t *testing.T) {
	gone := errors.New("connection reset")
	up := &scriptedUpstream{out: make(chan string, 1)}
	up.out <- "m1"
	cs := &flushingClient{clientStream: clientStream{reqs: []string{"req"}}, flushErr: gone}
	c := &router.Call{Route: streamBooksRoute(&scriptedInvoker{up}), Stream: cs, Flush: cs.Flush}
	if err := router.Dispatch.Handle(t.Context(), c); !errors.Is(err, gone) {
		t.Errorf("err %v, want the flush error", err)
	}
	waitDone(t, up.ctx)
}
