package library_test

import (
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

func TestImportBooks(t *testing.T) {
	c, _ := start(t)
	s, err := c.ImportBooks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"one", "two"} {
		if err := s.Send(&libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: id, Book: &libraryv1.Book{Title: id}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.CloseAndRecv()
	if err != nil || !slices.Equal(resp.GetNames(), []string{"shelves/1/books/one", "shelves/1/books/two"}) {
		t.Fatalf("ImportBooks = %v, %v", resp, err)
	}

	bad, err := c.ImportBooks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bad.Send(&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{}})
	_, err = bad.CloseAndRecv()
	wantCode(t, err, codes.InvalidArgument, "book 1", "title")
}

func TestChat(t *testing.T) {
	c, _ := start(t)
	s, err := c.Chat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b"} {
		if err := s.Send(&libraryv1.PingRequest{Message: m}); err != nil {
			t.Fatal(err)
		}
		resp, err := s.Recv()
		if err != nil || resp.GetMessage() != m || resp.GetTime() == nil {
			t.Fatalf("echo of %q: %v, %v", m, resp, err)
		}
	}
	s.CloseSend()
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after the half-close: %v, want io.EOF", err)
	}

	failing, err := c.Chat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	failing.Send(&libraryv1.PingRequest{Message: "error"})
	_, err = failing.Recv()
	wantCode(t, err, codes.Aborted)
}
