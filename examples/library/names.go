package library

import (
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// idPattern is what a shelf or book ID looks like: lower-case letters,
// digits and inner hyphens, at most 63 characters (AIP-122).
var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// bookName is a parsed "shelves/{shelf}/books/{book}".
type bookName struct {
	shelf, book string
}

// String returns the resource name.
func (n bookName) String() string {
	return "shelves/" + n.shelf + "/books/" + n.book
}

// shelfName returns the name of the shelf holding the book.
func (n bookName) shelfName() string {
	return "shelves/" + n.shelf
}

// parseShelfName returns the ID of the shelf named "shelves/{shelf}", or an
// InvalidArgument status naming field.
func parseShelfName(field, name string) (string, error) {
	if name == "" {
		return "", invalid("%s is required", field)
	}
	id, ok := strings.CutPrefix(name, "shelves/")
	if !ok || !idPattern.MatchString(id) {
		return "", invalid("%s %q is not a shelf name (want shelves/{shelf})", field, name)
	}
	return id, nil
}

// parseBookName parses "shelves/{shelf}/books/{book}", or returns an
// InvalidArgument status naming field.
func parseBookName(field, name string) (bookName, error) {
	if name == "" {
		return bookName{}, invalid("%s is required", field)
	}
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "shelves" || parts[2] != "books" ||
		!idPattern.MatchString(parts[1]) || !idPattern.MatchString(parts[3]) {
		return bookName{}, invalid("%s %q is not a book name (want shelves/{shelf}/books/{book})", field, name)
	}
	return bookName{shelf: parts[1], book: parts[3]}, nil
}

// invalid returns an InvalidArgument status with a formatted message.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// notFound returns a NotFound status naming the missing resource.
func notFound(kind, name string) error {
	return status.Error(codes.NotFound, fmt.Sprintf("%s %q not found", kind, name))
}
