package library_test

import (
	"context"
	"fmt"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// The Server can be called directly, without a network, as well as served
// by a grpc.Server through Register.
func ExampleNewServer() {
	srv := library.NewServer()
	resp, err := srv.ListBooks(context.Background(), &libraryv1.ListBooksRequest{
		Parent: "shelves/2",
		Tags:   []string{"popular-science"},
	})
	if err != nil {
		panic(err)
	}
	for _, b := range resp.GetBooks() {
		fmt.Println(b.GetName(), "-", b.GetTitle())
	}
	fmt.Println("calls:", srv.Calls())
	// Output:
	// shelves/2/books/cosmos - Cosmos
	// shelves/2/books/the-selfish-gene - The Selfish Gene
	// shelves/2/books/a-brief-history-of-time - A Brief History of Time
	// calls: 1
}
