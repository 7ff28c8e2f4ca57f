package test

import (
	"testing"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// TestEmptyBodyField sends a body: "book" rule an empty body: the upstream
// receives an empty book (has_book = true), as behind grpc-gateway, where
// it used to receive none. (Validation is off, so that the empty book is
// not refused at the edge for its missing title.)
func TestEmptyBodyField(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    validation: {requests: false}\n", ""))
	const createBook = "/example.library.v1.LibraryService/CreateBook"
	for _, body := range []string{"", " \n"} {
		r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books?book_id=empty", body: body})
		// The library refuses a book without a title; the request is what
		// counts here.
		wantStatus(t, r, 400, codeInvalidArgument, "")
		req, ok := up.lastRequest(t, createBook).(*libraryv1.CreateBookRequest)
		if !ok {
			t.Fatalf("the upstream got a %T", up.lastRequest(t, createBook))
		}
		if req.Book == nil || req.GetParent() != "shelves/1" || req.GetBookId() != "empty" {
			t.Errorf("body %q: the upstream got %v, want parent, book_id and an empty book", body, req)
		}
	}
}
