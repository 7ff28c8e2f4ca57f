package library

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// Page sizes of ListBooks.
const (
	defaultPageSize = 10
	maxPageSize     = 100
)

// ListBooks returns a page of the books of the shelf req.parent that match
// the request, in the order they were put on the shelf, with the number of
// matching books in total_size.
//
// A book matches when every condition given holds: filter.author.name
// (compared without regard to case), filter.genre, filter.min_pages,
// filter.published_after, every one of tags, one of genres,
// min_price_cents, min_rating and max_read_time. A read_mask keeps only the
// fields it names. show_unavailable, cursor and labels are accepted and
// ignored.
//
// page_size defaults to 10 and is capped at 100; a negative one is
// InvalidArgument. page_token is the opaque next_page_token of the previous
// page, valid only for a request whose other fields, page_size aside, are
// unchanged.
func (s *Server) ListBooks(_ context.Context, req *libraryv1.ListBooksRequest) (*libraryv1.ListBooksResponse, error) {
	s.calls.Add(1)
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalid("page_size must not be negative, got %d", size)
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	q, err := newQuery(req)
	if err != nil {
		return nil, err
	}
	var after uint64
	if tok := req.GetPageToken(); tok != "" {
		if after, err = q.parseToken(tok); err != nil {
			return nil, err
		}
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	matches, err := s.find(q)
	if err != nil {
		return nil, err
	}
	start, _ := slices.BinarySearchFunc(matches, after+1, func(e *entry, seq uint64) int {
		return cmp.Compare(e.seq, seq)
	})
	end := min(start+size, len(matches))
	resp := &libraryv1.ListBooksResponse{TotalSize: int32(len(matches))}
	for _, e := range matches[start:end] {
		resp.Books = append(resp.Books, q.present(e.book))
	}
	if end < len(matches) {
		resp.NextPageToken = q.token(matches[end-1].seq)
	}
	return resp, nil
}

// StreamBooks sends every book that ListBooks would list for req, one
// message per book, ignoring page_size and page_token. It stops with the
// context's status when the client goes away.
func (s *Server) StreamBooks(req *libraryv1.ListBooksRequest, stream grpc.ServerStreamingServer[libraryv1.Book]) error {
	s.calls.Add(1)
	q, err := newQuery(req)
	if err != nil {
		return err
	}
	s.mu.RLock()
	matches, err := s.find(q)
	books := make([]*libraryv1.Book, len(matches))
	for i, e := range matches {
		books[i] = q.present(e.book)
	}
	s.mu.RUnlock()
	if err != nil {
		return err
	}

	ctx := stream.Context()
	for _, b := range books {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		if err := stream.Send(b); err != nil {
			return err
		}
	}
	return nil
}

// query is a validated ListBooks or StreamBooks request.
type query struct {
	req         *libraryv1.ListBooksRequest
	fingerprint uint64 // of the request without page_size and page_token
}

// newQuery validates req, returning an InvalidArgument status for a
// malformed parent or an unknown read_mask path.
func newQuery(req *libraryv1.ListBooksRequest) (*query, error) {
	if _, err := parseShelfName("parent", req.GetParent()); err != nil {
		return nil, err
	}
	if err := checkPaths("read_mask", req.GetReadMask().GetPaths()); err != nil {
		return nil, err
	}
	key := proto.Clone(req).(*libraryv1.ListBooksRequest)
	key.PageSize, key.PageToken = 0, ""
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(key)
	if err != nil {
		return nil, invalid("request cannot be encoded: %v", err)
	}
	h := fnv.New64a()
	h.Write(data)
	return &query{req: req, fingerprint: h.Sum64()}, nil
}

// find returns the books of the query's shelf that match it, in listing
// order. The caller holds s.mu.
func (s *Server) find(q *query) ([]*entry, error) {
	sh, err := s.shelf("parent", q.req.GetParent())
	if err != nil {
		return nil, err
	}
	var matches []*entry
	for _, e := range sh.books {
		if q.match(e.book) {
			matches = append(matches, e)
		}
	}
	slices.SortFunc(matches, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	return matches, nil
}

// match reports whether b meets every condition of the query.
func (q *query) match(b *libraryv1.Book) bool {
	r, f := q.req, q.req.GetFilter()
	if n := f.GetAuthor().GetName(); n != "" && !strings.EqualFold(n, b.GetAuthor().GetName()) {
		return false
	}
	if g := f.GetGenre(); g != libraryv1.Genre_GENRE_UNSPECIFIED && g != b.GetGenre() {
		return false
	}
	if mp := f.GetMinPages(); mp != nil && b.GetPageCount() < mp.GetValue() {
		return false
	}
	if pa := f.GetPublishedAfter(); pa != nil && (b.GetPublishTime() == nil || !b.GetPublishTime().AsTime().After(pa.AsTime())) {
		return false
	}
	for _, tag := range r.GetTags() {
		if !slices.Contains(b.GetTags(), tag) {
			return false
		}
	}
	if len(r.GetGenres()) > 0 && !slices.Contains(r.GetGenres(), b.GetGenre()) {
		return false
	}
	if b.GetPriceCents() < r.GetMinPriceCents() {
		return false
	}
	if r.GetMinRating() > 0 && b.GetRating().GetValue() < r.GetMinRating() {
		return false
	}
	if mrt := r.GetMaxReadTime(); mrt != nil && (b.GetReadTime() == nil || b.GetReadTime().AsDuration() > mrt.AsDuration()) {
		return false
	}
	return true
}

// present returns a copy of b holding only the fields of the read mask.
func (q *query) present(b *libraryv1.Book) *libraryv1.Book {
	c := cloneBook(b)
	if paths := q.req.GetReadMask().GetPaths(); len(paths) > 0 {
		keepPaths(c.ProtoReflect(), paths)
	}
	return c
}

// token returns the page token of the page that starts after the book with
// sequence number seq.
func (q *query) token(seq uint64) string {
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], seq)
	binary.BigEndian.PutUint64(buf[8:], q.fingerprint)
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

// parseToken returns the sequence number a page token continues after, or an
// InvalidArgument status when the token is malformed or was issued for
// another query.
func (q *query) parseToken(tok string) (uint64, error) {
	buf, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(buf) != 16 {
		return 0, invalid("page_token %q is not a valid page token", tok)
	}
	if binary.BigEndian.Uint64(buf[8:]) != q.fingerprint {
		return 0, invalid("page_token was issued for a different query: every field but page_size must match the request that returned it")
	}
	return binary.BigEndian.Uint64(buf[:8]), nil
}
