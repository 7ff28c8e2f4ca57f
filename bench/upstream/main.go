// Command upstream is the benchmark's gRPC upstream: the three
// LibraryService methods the REST scenarios call, answered from canned data
// (bench/fixtures) with no locking and no allocation beyond what grpc-go
// needs, so that it is never the bottleneck, and Chat, the bidirectional
// stream of the WebSocket run, as a plain echo; and the example
// DeviceService of the MQTT run (devices.go), which counts each device's
// readings and checks their order.
//
// Usage:
//
//	upstream -listen 127.0.0.1:9090
//
// Every other method answers UNIMPLEMENTED. A request that does not carry
// the fields the scenario sets is answered INVALID_ARGUMENT, which is how the
// driver's correctness check sees a proxy that lost a query or path
// parameter. It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/bench/fixtures"
	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9090", "address to serve gRPC on")
	flag.Parse()
	if err := run(*listen); err != nil {
		log.Fatal(err)
	}
}

func run(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	libraryv1.RegisterLibraryServiceServer(srv, newLibrary())
	iotv1.RegisterDeviceServiceServer(srv, new(devices))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	fmt.Printf("listening on %s\n", lis.Addr())
	return srv.Serve(lis)
}

// library answers from messages built once; grpc-go only reads them, and
// concurrent marshalling of an unchanged message is safe.
type library struct {
	libraryv1.UnimplementedLibraryServiceServer
	list   *libraryv1.ListBooksResponse
	stream []*libraryv1.Book
}

func newLibrary() *library {
	return &library{list: fixtures.ListResponse(), stream: fixtures.StreamBooks()}
}

// ListBooks returns the canned one-book page when the request is the small
// GET scenario's (fixtures.ListRequest), checked field by field to stay cheap.
func (l *library) ListBooks(_ context.Context, req *libraryv1.ListBooksRequest) (*libraryv1.ListBooksResponse, error) {
	if req.GetParent() != fixtures.Shelf || req.GetPageSize() != 1 ||
		req.GetFilter().GetGenre() != libraryv1.Genre_GENRE_FICTION || len(req.GetTags()) != 1 || req.GetTags()[0] != "classic" {
		return nil, status.Errorf(codes.InvalidArgument, "not the request of fixtures.ListQuery: %v", req)
	}
	return l.list, nil
}

// CreateBook echoes the posted book, named, as a real create would.
func (l *library) CreateBook(_ context.Context, req *libraryv1.CreateBookRequest) (*libraryv1.Book, error) {
	if req.GetParent() != fixtures.Shelf || req.GetBookId() == "" || req.GetBook() == nil {
		return nil, status.Error(codes.InvalidArgument, "parent, book_id and book are required")
	}
	return fixtures.Created(req), nil
}

// StreamBooks sends the canned books of the stream scenario.
func (l *library) StreamBooks(req *libraryv1.ListBooksRequest, stream grpc.ServerStreamingServer[libraryv1.Book]) error {
	if req.GetParent() != fixtures.Shelf {
		return status.Errorf(codes.InvalidArgument, "unexpected parent %q", req.GetParent())
	}
	for _, b := range l.stream {
		if err := stream.Send(b); err != nil {
			return err
		}
	}
	return nil
}

// Chat echoes each message as it arrives, until the client half-closes.
func (l *library) Chat(stream grpc.BidiStreamingServer[libraryv1.PingRequest, libraryv1.PingResponse]) error {
	var req libraryv1.PingRequest
	var resp libraryv1.PingResponse
	for {
		if err := stream.RecvMsg(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		resp.Message = req.GetMessage()
		if err := stream.Send(&resp); err != nil {
			return err
		}
	}
}
