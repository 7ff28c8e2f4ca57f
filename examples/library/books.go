package library

import (
	"context"
	"fmt"
	"math/rand/v2"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// maxBatch is the most books one BatchGetBooks request may name.
const maxBatch = 100

// GetShelf returns the shelf named by req.name.
func (s *Server) GetShelf(_ context.Context, req *libraryv1.GetShelfRequest) (*libraryv1.Shelf, error) {
	s.calls.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	sh, err := s.shelf("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return &libraryv1.Shelf{Name: req.GetName(), Theme: sh.theme, BookCount: int32(len(sh.books))}, nil
}

// GetBook returns the book named by req.name.
func (s *Server) GetBook(_ context.Context, req *libraryv1.GetBookRequest) (*libraryv1.Book, error) {
	s.calls.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, e, err := s.lookup("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return cloneBook(e.book), nil
}

// CreateBook adds req.book to the shelf req.parent under the ID
// req.book_id, or under a generated ID when book_id is empty. The book's
// name and update_time are set by the server. It fails with AlreadyExists
// when the shelf already holds a book with that ID, and with
// InvalidArgument when the book has no title.
func (s *Server) CreateBook(_ context.Context, req *libraryv1.CreateBookRequest) (*libraryv1.Book, error) {
	s.calls.Add(1)
	if _, err := parseShelfName("parent", req.GetParent()); err != nil {
		return nil, err
	}
	if req.GetBook() == nil {
		return nil, invalid("book is required")
	}
	if err := validateBook(req.GetBook()); err != nil {
		return nil, err
	}
	id := req.GetBookId()
	if id != "" && !idPattern.MatchString(id) {
		return nil, invalid("book_id %q is not valid: use lower-case letters, digits and inner hyphens, at most 63 characters", id)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sh, err := s.shelf("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = newID(sh)
	}
	name := req.GetParent() + "/books/" + id
	if _, dup := sh.books[id]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "book %q already exists", name)
	}
	b := cloneBook(req.GetBook())
	b.Name = name
	b.UpdateTime = timestamppb.Now()
	s.put(sh, id, b, nil)
	return cloneBook(b), nil
}

// UpdateBook changes the book named by req.book.name: the fields listed in
// req.update_mask, or every field but name and update_time when the mask is
// absent or "*". A field listed in the mask but absent from req.book is
// cleared. It fails with InvalidArgument for a mask path that is not a
// settable Book field, and with NotFound when the book does not exist.
func (s *Server) UpdateBook(_ context.Context, req *libraryv1.UpdateBookRequest) (*libraryv1.Book, error) {
	s.calls.Add(1)
	if req.GetBook() == nil {
		return nil, invalid("book is required")
	}
	if _, err := parseBookName("book.name", req.GetBook().GetName()); err != nil {
		return nil, err
	}
	paths, err := updatePaths(req.GetUpdateMask())
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	_, e, err := s.lookup("book.name", req.GetBook().GetName())
	if err != nil {
		return nil, err
	}
	b := cloneBook(e.book)
	src := cloneBook(req.GetBook())
	for _, p := range paths {
		copyPath(b.ProtoReflect(), src.ProtoReflect(), p)
	}
	if err := validateBook(b); err != nil {
		return nil, err
	}
	b.UpdateTime = timestamppb.Now()
	e.book = b
	return cloneBook(b), nil
}

// DeleteBook removes the book named by req.name, with its text.
func (s *Server) DeleteBook(_ context.Context, req *libraryv1.DeleteBookRequest) (*emptypb.Empty, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, e, err := s.lookup("name", req.GetName())
	if err != nil {
		return nil, err
	}
	delete(sh.books, e.id)
	return &emptypb.Empty{}, nil
}

// BatchGetBooks returns the books named by req.names, in that order. Every
// name must be a book of the shelf req.parent; the call fails with NotFound
// naming the first book that does not exist.
func (s *Server) BatchGetBooks(_ context.Context, req *libraryv1.BatchGetBooksRequest) (*libraryv1.BatchGetBooksResponse, error) {
	s.calls.Add(1)
	if _, err := parseShelfName("parent", req.GetParent()); err != nil {
		return nil, err
	}
	if n := len(req.GetNames()); n > maxBatch {
		return nil, invalid("names holds %d names, more than the %d allowed", n, maxBatch)
	}
	for i, name := range req.GetNames() {
		field := fmt.Sprintf("names[%d]", i)
		bn, err := parseBookName(field, name)
		if err != nil {
			return nil, err
		}
		if bn.shelfName() != req.GetParent() {
			return nil, invalid("%s %q is not a book of %s", field, name, req.GetParent())
		}
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, err := s.shelf("parent", req.GetParent()); err != nil {
		return nil, err
	}
	resp := &libraryv1.BatchGetBooksResponse{}
	for i, name := range req.GetNames() {
		_, e, err := s.lookup(fmt.Sprintf("names[%d]", i), name)
		if err != nil {
			return nil, err
		}
		resp.Books = append(resp.Books, cloneBook(e.book))
	}
	return resp, nil
}

// MoveBook moves the book named by req.name, with its text, to the shelf
// req.other_shelf, keeping its ID; the book gets a new name. Moving a book to
// the shelf it is on changes nothing. It fails with AlreadyExists when the
// other shelf holds a book with the same ID.
func (s *Server) MoveBook(_ context.Context, req *libraryv1.MoveBookRequest) (*libraryv1.Book, error) {
	s.calls.Add(1)
	if _, err := parseBookName("name", req.GetName()); err != nil {
		return nil, err
	}
	if _, err := parseShelfName("other_shelf", req.GetOtherShelf()); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	from, e, err := s.lookup("name", req.GetName())
	if err != nil {
		return nil, err
	}
	to, err := s.shelf("other_shelf", req.GetOtherShelf())
	if err != nil {
		return nil, err
	}
	if to == from {
		return cloneBook(e.book), nil
	}
	name := req.GetOtherShelf() + "/books/" + e.id
	if _, dup := to.books[e.id]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "book %q already exists", name)
	}
	b := cloneBook(e.book)
	b.Name = name
	b.UpdateTime = timestamppb.Now()
	delete(from.books, e.id)
	s.put(to, e.id, b, e.text)
	return cloneBook(b), nil
}

// GetBookTitle returns the name and title of the book named by req.name.
func (s *Server) GetBookTitle(_ context.Context, req *libraryv1.GetBookRequest) (*libraryv1.BookTitle, error) {
	s.calls.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, e, err := s.lookup("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return &libraryv1.BookTitle{Name: e.book.GetName(), Title: e.book.GetTitle()}, nil
}

// Ping echoes req.message with the server's current time.
func (s *Server) Ping(_ context.Context, req *libraryv1.PingRequest) (*libraryv1.PingResponse, error) {
	s.calls.Add(1)
	return &libraryv1.PingResponse{Message: req.GetMessage(), Time: timestamppb.Now()}, nil
}

// validateBook returns an InvalidArgument status when b, the book of a
// request, lacks a title or has a negative price or an unknown genre.
func validateBook(b *libraryv1.Book) error {
	switch {
	case b.GetTitle() == "":
		return invalid("book.title is required")
	case b.GetPriceCents() < 0:
		return invalid("book.price_cents must not be negative, got %d", b.GetPriceCents())
	}
	if _, ok := libraryv1.Genre_name[int32(b.GetGenre())]; !ok {
		return invalid("book.genre %d is not a known genre", b.GetGenre())
	}
	return nil
}

// newID returns a random book ID that sh does not hold yet.
func newID(sh *shelf) string {
	for {
		id := fmt.Sprintf("%016x", rand.Uint64())
		if _, taken := sh.books[id]; !taken {
			return id
		}
	}
}
