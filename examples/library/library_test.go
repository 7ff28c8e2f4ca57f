package library_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// start serves a fresh library on a loopback port and returns a client
// connected to it and the server, for its call counter.
func start(t *testing.T) (libraryv1.LibraryServiceClient, *library.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv := library.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return libraryv1.NewLibraryServiceClient(conn), srv
}

// wantCode fails the test unless err is a status with the given code whose
// message contains every one of words.
func wantCode(t *testing.T, err error, code codes.Code, words ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got error %v, want code %v", err, code)
	}
	for _, w := range words {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("error message %q does not mention %q", st.Message(), w)
		}
	}
}

// names returns the names of books.
func names(books []*libraryv1.Book) []string {
	var out []string
	for _, b := range books {
		out = append(out, b.GetName())
	}
	return out
}

var fiction = []string{
	"shelves/1/books/dune",
	"shelves/1/books/neuromancer",
	"shelves/1/books/the-left-hand-of-darkness",
	"shelves/1/books/leaves-of-grass",
}

func TestGetShelf(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	sh, err := c.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/2"})
	if err != nil {
		t.Fatal(err)
	}
	if sh.GetName() != "shelves/2" || sh.GetTheme() != "science" || sh.GetBookCount() != 4 {
		t.Errorf("GetShelf(shelves/2) = %v, want science with 4 books", sh)
	}
	_, err = c.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/9"})
	wantCode(t, err, codes.NotFound, "shelves/9")
	_, err = c.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "racks/1"})
	wantCode(t, err, codes.InvalidArgument, "name", "racks/1")
	_, err = c.GetShelf(ctx, &libraryv1.GetShelfRequest{})
	wantCode(t, err, codes.InvalidArgument, "name is required")
}

func TestGetBookSeeded(t *testing.T) {
	c, _ := start(t)
	b, err := c.GetBook(t.Context(), &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetTitle() != "Dune" || b.GetAuthor().GetName() != "Frank Herbert" || b.GetAuthor().GetBorn() == nil ||
		b.GetIsbn() == "" || b.GetGenre() != libraryv1.Genre_GENRE_FICTION || len(b.GetTags()) == 0 ||
		b.GetPriceCents() != 999 || b.GetPublishTime() == nil || b.GetReadTime() == nil ||
		b.GetRating().GetValue() == 0 || len(b.GetAttributes()) == 0 || b.GetCatalogueCode() == "" ||
		len(b.GetReviews()) == 0 || b.GetUpdateTime() == nil {
		t.Errorf("seeded book is missing fields: %v", b)
	}
}

func TestListBooksPagination(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	var got []string
	req := &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 3}
	for pages := 0; ; pages++ {
		if pages > len(fiction) {
			t.Fatal("pagination does not end")
		}
		resp, err := c.ListBooks(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotalSize() != int32(len(fiction)) {
			t.Errorf("total_size = %d, want %d", resp.GetTotalSize(), len(fiction))
		}
		if len(resp.GetBooks()) > 3 {
			t.Errorf("page holds %d books, more than page_size 3", len(resp.GetBooks()))
		}
		got = append(got, names(resp.GetBooks())...)
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if !slices.Equal(got, fiction) {
		t.Errorf("paged through %v, want %v", got, fiction)
	}

	first, err := c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	// A token belongs to its query: another filter or shelf is rejected.
	_, err = c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/1", PageToken: first.GetNextPageToken(), Tags: []string{"classic"}})
	wantCode(t, err, codes.InvalidArgument, "page_token")
	_, err = c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/2", PageToken: first.GetNextPageToken()})
	wantCode(t, err, codes.InvalidArgument, "page_token")
	_, err = c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/1", PageToken: "not a token"})
	wantCode(t, err, codes.InvalidArgument, "page_token")
	_, err = c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: -1})
	wantCode(t, err, codes.InvalidArgument, "page_size")
	// page_size may change from page to page.
	rest, err := c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 10, PageToken: first.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(rest.GetBooks()); !slices.Equal(got, fiction[1:]) || rest.GetNextPageToken() != "" {
		t.Errorf("second page = %v (next %q), want %v and no next page", got, rest.GetNextPageToken(), fiction[1:])
	}
}

func TestListBooksPageSizeBounds(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	for i := range 110 {
		_, err := c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/2", Book: &libraryv1.Book{Title: fmt.Sprintf("Volume %d", i+1)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		size int32
		want int
	}{{0, 10}, {25, 25}, {100, 100}, {1000, 100}} {
		resp, err := c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/2", PageSize: tc.size})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetBooks()) != tc.want || resp.GetNextPageToken() == "" || resp.GetTotalSize() != 114 {
			t.Errorf("page_size %d: %d books, next %q, total %d; want %d books, a next page, total 114",
				tc.size, len(resp.GetBooks()), resp.GetNextPageToken(), resp.GetTotalSize(), tc.want)
		}
	}
}

func TestListBooksFilters(t *testing.T) {
	c, _ := start(t)
	for _, tc := range []struct {
		name string
		req  *libraryv1.ListBooksRequest
		want []string
	}{
		{"author", &libraryv1.ListBooksRequest{Parent: "shelves/1", Filter: &libraryv1.BookFilter{Author: &libraryv1.Author{Name: "frank herbert"}}},
			[]string{"shelves/1/books/dune"}},
		{"genre", &libraryv1.ListBooksRequest{Parent: "shelves/1", Filter: &libraryv1.BookFilter{Genre: libraryv1.Genre_GENRE_POETRY}},
			[]string{"shelves/1/books/leaves-of-grass"}},
		{"every tag", &libraryv1.ListBooksRequest{Parent: "shelves/1", Tags: []string{"classic", "sci-fi"}},
			[]string{"shelves/1/books/dune", "shelves/1/books/the-left-hand-of-darkness"}},
		{"any genre", &libraryv1.ListBooksRequest{Parent: "shelves/2", Genres: []libraryv1.Genre{libraryv1.Genre_GENRE_HISTORY, libraryv1.Genre_GENRE_POETRY}},
			[]string{"shelves/2/books/the-structure-of-scientific-revolutions"}},
		{"min price", &libraryv1.ListBooksRequest{Parent: "shelves/2", MinPriceCents: 1700},
			[]string{"shelves/2/books/cosmos", "shelves/2/books/a-brief-history-of-time"}},
		{"min pages", &libraryv1.ListBooksRequest{Parent: "shelves/1", Filter: &libraryv1.BookFilter{MinPages: wrapperspb.Int32(300)}},
			[]string{"shelves/1/books/dune", "shelves/1/books/the-left-hand-of-darkness"}},
		{"published after", &libraryv1.ListBooksRequest{Parent: "shelves/2", Filter: &libraryv1.BookFilter{PublishedAfter: timestamppb.New(time.Date(1980, time.January, 1, 0, 0, 0, 0, time.UTC))}},
			[]string{"shelves/2/books/cosmos", "shelves/2/books/a-brief-history-of-time"}},
		{"nothing matches", &libraryv1.ListBooksRequest{Parent: "shelves/1", Tags: []string{"cookery"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.ListBooks(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(resp.GetBooks()); !slices.Equal(got, tc.want) || resp.GetTotalSize() != int32(len(tc.want)) {
				t.Errorf("got %v (total %d), want %v", got, resp.GetTotalSize(), tc.want)
			}
		})
	}
}

func TestListBooksReadMask(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	resp, err := c.ListBooks(ctx, &libraryv1.ListBooksRequest{
		Parent:   "shelves/1",
		PageSize: 1,
		ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"name", "author.name"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := resp.GetBooks()[0]
	if b.GetName() != fiction[0] || b.GetAuthor().GetName() != "Frank Herbert" ||
		b.GetAuthor().GetBorn() != nil || b.GetTitle() != "" || b.GetPriceCents() != 0 {
		t.Errorf("read mask [name author.name] gave %v", b)
	}
	_, err = c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/1", ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"colour"}}})
	wantCode(t, err, codes.InvalidArgument, "read_mask", "colour")
}

func TestCreateBook(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	b, err := c.CreateBook(ctx, &libraryv1.CreateBookRequest{
		Parent: "shelves/1",
		BookId: "solaris",
		Book:   &libraryv1.Book{Name: "ignored", Title: "Solaris", Genre: libraryv1.Genre_GENRE_FICTION, PriceCents: 1100},
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetName() != "shelves/1/books/solaris" || b.GetTitle() != "Solaris" || b.GetUpdateTime() == nil {
		t.Errorf("CreateBook returned %v", b)
	}
	got, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/solaris"})
	if err != nil || got.GetTitle() != "Solaris" {
		t.Errorf("GetBook after CreateBook = %v, %v", got, err)
	}

	gen, err := c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{Title: "Untitled draft"}})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := strings.CutPrefix(gen.GetName(), "shelves/1/books/"); !ok || id == "" {
		t.Errorf("generated name %q is not a book of shelves/1", gen.GetName())
	}

	_, err = c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "solaris", Book: &libraryv1.Book{Title: "Solaris"}})
	wantCode(t, err, codes.AlreadyExists, "shelves/1/books/solaris")
	_, err = c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{}})
	wantCode(t, err, codes.InvalidArgument, "book.title")
	_, err = c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/1"})
	wantCode(t, err, codes.InvalidArgument, "book is required")
	_, err = c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "Bad ID", Book: &libraryv1.Book{Title: "x"}})
	wantCode(t, err, codes.InvalidArgument, "book_id")
	_, err = c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/7", Book: &libraryv1.Book{Title: "x"}})
	wantCode(t, err, codes.NotFound, "shelves/7")
	_, err = c.CreateBook(ctx, &libraryv1.CreateBookRequest{Parent: "shelves/1/books", Book: &libraryv1.Book{Title: "x"}})
	wantCode(t, err, codes.InvalidArgument, "parent")
}

func TestUpdateBookMask(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	const name = "shelves/2/books/cosmos"

	b, err := c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{
		Book:       &libraryv1.Book{Name: name, Title: "Cosmos (illustrated)", Isbn: "ignored", Author: &libraryv1.Author{Name: "C. Sagan"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "author.name", "rating"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetTitle() != "Cosmos (illustrated)" || b.GetAuthor().GetName() != "C. Sagan" {
		t.Errorf("masked fields not updated: %v", b)
	}
	if b.GetIsbn() != "978-0345539434" || b.GetAuthor().GetBorn() == nil || b.GetPriceCents() != 1799 {
		t.Errorf("fields outside the mask changed: %v", b)
	}
	if b.GetRating() != nil {
		t.Errorf("rating is in the mask but not in the book, so it should be cleared; got %v", b.GetRating())
	}
	if got, _ := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: name}); got.GetTitle() != "Cosmos (illustrated)" {
		t.Errorf("update not stored: %v", got)
	}

	// Without a mask every settable field is replaced.
	b, err = c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: name, Title: "Cosmos", PageCount: 400}})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetName() != name || b.GetTitle() != "Cosmos" || b.GetPageCount() != 400 || b.GetIsbn() != "" || b.GetAuthor() != nil || b.GetUpdateTime() == nil {
		t.Errorf("full replacement gave %v", b)
	}

	_, err = c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: name, Title: "x"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "colour"}}})
	wantCode(t, err, codes.InvalidArgument, "update_mask", "colour")
	_, err = c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
	wantCode(t, err, codes.InvalidArgument, "update_mask", "name")
	_, err = c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: name}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}}})
	wantCode(t, err, codes.InvalidArgument, "book.title")
	_, err = c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: "shelves/2/books/missing", Title: "x"}})
	wantCode(t, err, codes.NotFound, "shelves/2/books/missing")
	_, err = c.UpdateBook(ctx, &libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: "cosmos", Title: "x"}})
	wantCode(t, err, codes.InvalidArgument, "book.name")
}

func TestDeleteBook(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	const name = "shelves/1/books/neuromancer"
	if _, err := c.DeleteBook(ctx, &libraryv1.DeleteBookRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: name})
	wantCode(t, err, codes.NotFound, name)
	_, err = c.DeleteBook(ctx, &libraryv1.DeleteBookRequest{Name: name})
	wantCode(t, err, codes.NotFound, name)
	_, err = c.DeleteBook(ctx, &libraryv1.DeleteBookRequest{Name: "shelves/1/books/"})
	wantCode(t, err, codes.InvalidArgument, "name")
}

func TestBatchGetBooks(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	want := []string{"shelves/1/books/leaves-of-grass", "shelves/1/books/dune"}
	resp, err := c.BatchGetBooks(ctx, &libraryv1.BatchGetBooksRequest{Parent: "shelves/1", Names: want})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(resp.GetBooks()); !slices.Equal(got, want) {
		t.Errorf("BatchGetBooks = %v, want %v", got, want)
	}
	_, err = c.BatchGetBooks(ctx, &libraryv1.BatchGetBooksRequest{Parent: "shelves/1", Names: []string{"shelves/1/books/dune", "shelves/1/books/ulysses"}})
	wantCode(t, err, codes.NotFound, "shelves/1/books/ulysses")
	_, err = c.BatchGetBooks(ctx, &libraryv1.BatchGetBooksRequest{Parent: "shelves/1", Names: []string{"shelves/2/books/cosmos"}})
	wantCode(t, err, codes.InvalidArgument, "names[0]", "shelves/1")
}

func TestMoveBook(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	before, err := c.DownloadBook(ctx, &libraryv1.DownloadBookRequest{Name: "shelves/1/books/dune"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.MoveBook(ctx, &libraryv1.MoveBookRequest{Name: "shelves/1/books/dune", OtherShelf: "shelves/2"})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetName() != "shelves/2/books/dune" || b.GetTitle() != "Dune" {
		t.Errorf("MoveBook returned %v", b)
	}
	_, err = c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
	wantCode(t, err, codes.NotFound)
	after, err := c.DownloadBook(ctx, &libraryv1.DownloadBookRequest{Name: "shelves/2/books/dune"})
	if err != nil || string(after.GetData()) != string(before.GetData()) {
		t.Errorf("text did not move with the book: %q, %v", after.GetData(), err)
	}
	list, err := c.ListBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/2"})
	if err != nil || names(list.GetBooks())[len(list.GetBooks())-1] != "shelves/2/books/dune" {
		t.Errorf("moved book is not listed last on its new shelf: %v, %v", names(list.GetBooks()), err)
	}
	_, err = c.MoveBook(ctx, &libraryv1.MoveBookRequest{Name: "shelves/2/books/dune", OtherShelf: "shelves/3"})
	wantCode(t, err, codes.NotFound, "shelves/3")
	_, err = c.MoveBook(ctx, &libraryv1.MoveBookRequest{Name: "shelves/2/books/dune", OtherShelf: "2"})
	wantCode(t, err, codes.InvalidArgument, "other_shelf")
}

func TestGetBookTitle(t *testing.T) {
	c, _ := start(t)
	got, err := c.GetBookTitle(t.Context(), &libraryv1.GetBookRequest{Name: "shelves/2/books/the-selfish-gene"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetName() != "shelves/2/books/the-selfish-gene" || got.GetTitle() != "The Selfish Gene" {
		t.Errorf("GetBookTitle = %v", got)
	}
}

func TestBookText(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	const name = "shelves/1/books/leaves-of-grass"
	body, err := c.DownloadBook(ctx, &libraryv1.DownloadBookRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if body.GetContentType() != "text/plain; charset=utf-8" || !strings.Contains(string(body.GetData()), "I celebrate myself") {
		t.Errorf("DownloadBook = %q %q", body.GetContentType(), body.GetData())
	}

	const text = "Song of Myself, revised.\n"
	b, err := c.UploadBookText(ctx, &libraryv1.UploadBookTextRequest{Name: name, Text: &httpbody.HttpBody{ContentType: "text/plain", Data: []byte(text)}})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetName() != name || !b.GetUpdateTime().AsTime().After(time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("UploadBookText returned %v", b)
	}
	body, err = c.DownloadBook(ctx, &libraryv1.DownloadBookRequest{Name: name})
	if err != nil || string(body.GetData()) != text {
		t.Errorf("DownloadBook after upload = %q, %v; want %q", body.GetData(), err, text)
	}

	_, err = c.UploadBookText(ctx, &libraryv1.UploadBookTextRequest{Name: name, Text: &httpbody.HttpBody{Data: []byte{0xff, 0xfe}}})
	wantCode(t, err, codes.InvalidArgument, "UTF-8")
	_, err = c.DownloadBook(ctx, &libraryv1.DownloadBookRequest{Name: "shelves/1/books/nope"})
	wantCode(t, err, codes.NotFound, "shelves/1/books/nope")
}

func TestGetAsset(t *testing.T) {
	c, _ := start(t)
	ctx := t.Context()
	for path, wantType := range map[string]string{
		"index.html":             "text/html; charset=utf-8",
		"css/site.css":           "text/css; charset=utf-8",
		"images/covers/dune.png": "image/png",
	} {
		a, err := c.GetAsset(ctx, &libraryv1.GetAssetRequest{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if a.GetPath() != path || a.GetContentType() != wantType || a.GetSize() <= 0 {
			t.Errorf("GetAsset(%q) = %v, want content type %q and a size", path, a, wantType)
		}
	}
	_, err := c.GetAsset(ctx, &libraryv1.GetAssetRequest{Path: "css/missing.css"})
	wantCode(t, err, codes.NotFound, "css/missing.css")
	for _, bad := range []string{"", "/index.html", "css//site.css", "../etc/passwd", "css/./site.css"} {
		_, err := c.GetAsset(ctx, &libraryv1.GetAssetRequest{Path: bad})
		wantCode(t, err, codes.InvalidArgument, "path")
	}
}

func TestStreamBooks(t *testing.T) {
	c, _ := start(t)
	stream, err := c.StreamBooks(t.Context(), &libraryv1.ListBooksRequest{Parent: "shelves/1", Tags: []string{"classic"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b.GetName())
	}
	want := []string{"shelves/1/books/dune", "shelves/1/books/the-left-hand-of-darkness", "shelves/1/books/leaves-of-grass"}
	if !slices.Equal(got, want) {
		t.Errorf("streamed %v, want %v", got, want)
	}

	bad, err := c.StreamBooks(t.Context(), &libraryv1.ListBooksRequest{Parent: "shelves/9"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Recv()
	wantCode(t, err, codes.NotFound, "shelves/9")
}

// cancelAfterFirst is a server stream whose client goes away after the
// first message.
type cancelAfterFirst struct {
	grpc.ServerStream // nil: StreamBooks uses only Context and Send
	ctx               context.Context
	cancel            context.CancelFunc
	sent              int
}

func (s *cancelAfterFirst) Context() context.Context { return s.ctx }

func (s *cancelAfterFirst) Send(*libraryv1.Book) error {
	s.sent++
	s.cancel()
	return nil
}

func TestStreamBooksStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream := &cancelAfterFirst{ctx: ctx, cancel: cancel}
	err := library.NewServer().StreamBooks(&libraryv1.ListBooksRequest{Parent: "shelves/1"}, stream)
	wantCode(t, err, codes.Canceled)
	if stream.sent != 1 {
		t.Errorf("sent %d books after the client went away, want 1 in all", stream.sent)
	}
}

func TestPing(t *testing.T) {
	c, _ := start(t)
	before := time.Now()
	resp, err := c.Ping(t.Context(), &libraryv1.PingRequest{Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMessage() != "hello" || resp.GetTime().AsTime().Before(before.Add(-time.Second)) {
		t.Errorf("Ping = %v", resp)
	}
}

func TestCallsCountsEveryRPC(t *testing.T) {
	c, srv := start(t)
	ctx := t.Context()
	if n := srv.Calls(); n != 0 {
		t.Fatalf("fresh server counted %d calls", n)
	}
	if _, err := c.Ping(ctx, &libraryv1.PingRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "bad"})
	wantCode(t, err, codes.InvalidArgument)
	stream, err := c.StreamBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/2"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	if n := srv.Calls(); n != 3 {
		t.Errorf("Calls() = %d after a ping, a rejected call and a stream, want 3", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	c, srv := start(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-b%d", w, i)
				if _, err := c.CreateBook(t.Context(), &libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: id, Book: &libraryv1.Book{Title: id}}); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.ListBooks(t.Context(), &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 5}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	sh, err := c.GetShelf(t.Context(), &libraryv1.GetShelfRequest{Name: "shelves/1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := int32(len(fiction) + workers*each); sh.GetBookCount() != want {
		t.Errorf("book_count = %d after concurrent creates, want %d", sh.GetBookCount(), want)
	}
	if want := int64(2*workers*each + 1); srv.Calls() != want {
		t.Errorf("Calls() = %d, want %d", srv.Calls(), want)
	}
}
