// Package library is an in-memory implementation of the example
// LibraryService (proto/example/library/v1), the upstream that Rosetta's
// examples and end-to-end tests translate REST, WebSocket, gRPC-Web and MQTT
// calls onto.
//
// The catalogue starts with two seeded shelves, shelves/1 ("fiction") and
// shelves/2 ("science"), each holding a few books with most fields filled
// and some text to download. Every method is safe for concurrent use.
// Errors are gRPC statuses with the usual codes: InvalidArgument for a
// malformed request (naming the offending field), NotFound for a resource
// that does not exist, AlreadyExists for a duplicate book.
package library

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// Server implements libraryv1.LibraryServiceServer over an in-memory
// catalogue. Create one with NewServer; the zero value is not usable.
type Server struct {
	libraryv1.UnimplementedLibraryServiceServer

	calls atomic.Int64

	mu      sync.RWMutex
	shelves map[string]*shelf // by shelf ID
	seq     uint64            // last sequence number handed to a book
}

// shelf is one shelf of the catalogue.
type shelf struct {
	theme string
	books map[string]*entry // by book ID
}

// entry is one stored book. seq orders a shelf's books for listing: books
// are listed in the order they were put on the shelf.
type entry struct {
	seq  uint64
	id   string
	book *libraryv1.Book
	text []byte
}

// NewServer returns a Server holding the seeded catalogue.
func NewServer() *Server {
	s := &Server{shelves: make(map[string]*shelf)}
	s.seed()
	return s
}

// Register creates a Server, registers it as the LibraryService of r (a
// *grpc.Server, for instance) and returns it, so that a caller can read its
// call counter.
func Register(r grpc.ServiceRegistrar) *Server {
	s := NewServer()
	libraryv1.RegisterLibraryServiceServer(r, s)
	return s
}

// Calls returns how many RPCs the Server has received, whatever their
// outcome. Tests use it to prove that a request rejected by the gateway never
// reached the upstream.
func (s *Server) Calls() int64 {
	return s.calls.Load()
}

// put stores b, whose name must be set, as the newest book of sh under id.
// The caller holds s.mu for writing.
func (s *Server) put(sh *shelf, id string, b *libraryv1.Book, text []byte) {
	s.seq++
	sh.books[id] = &entry{seq: s.seq, id: id, book: b, text: text}
}

// lookup returns the shelf and the stored book named by name, read from the
// request field field, or a NotFound or InvalidArgument status. The caller
// holds s.mu.
func (s *Server) lookup(field, name string) (*shelf, *entry, error) {
	bn, err := parseBookName(field, name)
	if err != nil {
		return nil, nil, err
	}
	sh, err := s.shelf(field, bn.shelfName())
	if err != nil {
		return nil, nil, err
	}
	e, ok := sh.books[bn.book]
	if !ok {
		return nil, nil, notFound("book", name)
	}
	return sh, e, nil
}

// shelf returns the shelf named by name, read from the request field field,
// or a NotFound or InvalidArgument status. The caller holds s.mu.
func (s *Server) shelf(field, name string) (*shelf, error) {
	id, err := parseShelfName(field, name)
	if err != nil {
		return nil, err
	}
	sh, ok := s.shelves[id]
	if !ok {
		return nil, notFound("shelf", name)
	}
	return sh, nil
}

// cloneBook returns a deep copy of b, safe to hand out while the stored book
// changes.
func cloneBook(b *libraryv1.Book) *libraryv1.Book {
	return proto.Clone(b).(*libraryv1.Book)
}
