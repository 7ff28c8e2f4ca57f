package upstream

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/router"
)

// NewStream opens a stream calling fullMethod, whose shape (client, server
// or bidirectional streaming) method describes. Messages cross it as raw
// protobuf bytes; gRPC's flow control holds the upstream back while the
// caller does not Recv.
func (g *GRPC) NewStream(ctx context.Context, fullMethod string, method protoreflect.MethodDescriptor, md metadata.MD) (router.UpstreamStream, error) {
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	desc := &grpc.StreamDesc{
		StreamName:    string(method.Name()),
		ClientStreams: method.IsStreamingClient(),
		ServerStreams: method.IsStreamingServer(),
	}
	cs, err := g.conn.NewStream(ctx, desc, fullMethod, rawCall)
	if err != nil {
		return nil, err
	}
	return &grpcStream{cs: cs, single: !desc.ServerStreams}, nil
}

// grpcStream adapts a grpc.ClientStream to router.UpstreamStream.
type grpcStream struct {
	cs grpc.ClientStream
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
