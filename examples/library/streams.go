package library

import (
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// ImportBooks creates each book the client streams, as CreateBook would (so
// each one also counts as a call), and answers with their names once the
// client half-closes. The first invalid request ends the stream with its
// error; the books created before it stay.
func (s *Server) ImportBooks(stream grpc.ClientStreamingServer[libraryv1.CreateBookRequest, libraryv1.ImportBooksResponse]) error {
	s.calls.Add(1)
	resp := &libraryv1.ImportBooksResponse{}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		b, err := s.CreateBook(stream.Context(), req)
		if err != nil {
			st := status.Convert(err)
			return status.Errorf(st.Code(), "book %d: %s", len(resp.Names)+1, st.Message())
		}
		resp.Names = append(resp.Names, b.GetName())
	}
}

// Chat echoes each message as soon as it arrives, with the time it was
// echoed, until the client half-closes. A message "error" ends the stream
// with an Aborted status instead, for clients to see a mid-stream failure.
func (s *Server) Chat(stream grpc.BidiStreamingServer[libraryv1.PingRequest, libraryv1.PingResponse]) error {
	s.calls.Add(1)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetMessage() == "error" {
			return status.Error(codes.Aborted, "chat aborted on request")
		}
		if err := stream.Send(&libraryv1.PingResponse{Message: req.GetMessage(), Time: timestamppb.Now()}); err != nil {
			return err
		}
	}
}
