package upstream

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/router"
)

// NewStream opens a stream calling fullMethod, whose shape (client, server
// or bidirectional streaming) method describes, on an endpoint the balancer
// chooses. Messages cross it as raw protobuf bytes; gRPC's flow control
// holds the upstream back while the caller does not Recv. The stream is
// one call of its endpoint until it ends (or ctx does).
func (g *GRPC) NewStream(ctx context.Context, fullMethod string, method protoreflect.MethodDescriptor, md metadata.MD) (router.UpstreamStream, error) {
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	desc := &grpc.StreamDesc{
		StreamName:    string(method.Name()),
		ClientStreams: method.IsStreamingClient(),
		ServerStreams: method.IsStreamingServer(),
	}
	cs, err := g.newStream(ctx, desc, fullMethod, rawCall)
	if err != nil {
		return nil, err
	}
	return &grpcStream{cs: cs, single: !desc.ServerStreams}, nil
}

// newStream opens a stream on a chosen endpoint, recording its outcome
// when it ends: at its last message or error, or when ctx ends.
func (g *GRPC) newStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (*trackedStream, error) {
	a, err := g.begin(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := a.e.conn.(*grpc.ClientConn).NewStream(ctx, desc, method, opts...)
	if err != nil {
		a.endGRPC(ctx, err)
		return nil, err
	}
	t := &trackedStream{ClientStream: cs, ctx: ctx, a: a, single: !desc.ServerStreams}
	context.AfterFunc(ctx, func() { t.finish(ctx.Err()) })
	return t, nil
}

// trackedStream ends its attempt once the stream is over.
type trackedStream struct {
	grpc.ClientStream
	ctx    context.Context
	a      attempt
	single bool
	once   sync.Once
}

func (s *trackedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err != nil:
		s.finish(err)
	case s.single:
		s.finish(nil)
	}
	return err
}

func (s *trackedStream) finish(err error) {
	s.once.Do(func() {
		if errors.Is(err, io.EOF) {
			err = nil
		}
		s.a.endGRPC(s.ctx, err)
	})
}

// grpcStream adapts a grpc.ClientStream to router.UpstreamStream.
type grpcStream struct {
	cs *trackedStream
	// single is set for methods with one response message; done once it
	// has been received.
	single, done bool
}

func (s *grpcStream) Send(msg []byte) error {
	return s.cs.SendMsg(&msg) // io.EOF once the stream has ended; Recv says how
}

func (s *grpcStream) CloseSend() error { return s.cs.CloseSend() }

func (s *grpcStream) Recv() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	var msg []byte
	if err := s.cs.RecvMsg(&msg); err != nil {
		return nil, err
	}
	s.done = s.single
	return msg, nil
}

func (s *grpcStream) Header() (metadata.MD, error) { return s.cs.Header() }

func (s *grpcStream) Trailer() metadata.MD { return s.cs.Trailer() }

func (s *grpcStream) Endpoint() string { return s.cs.a.e.addr }
