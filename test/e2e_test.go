package test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// duneJSON is the seeded book shelves/1/books/dune as the gateway renders it
// by default (lowerCamelCase names, unpopulated fields left out).
const duneJSON = `{
  "name": "shelves/1/books/dune",
  "title": "Dune",
  "author": {"name": "Frank Herbert", "born": "1920-10-08T00:00:00Z"},
  "isbn": "978-0441172719",
  "genre": "GENRE_FICTION",
  "tags": ["classic", "sci-fi"],
  "pageCount": 412,
  "priceCents": "999",
  "publishTime": "1965-08-01T00:00:00Z",
  "readTime": "50400s",
  "rating": 4.6,
  "attributes": {"format": "paperback", "language": "en", "publisher": "Ace"},
  "code": "FIC-HER-0001",
  "available": true,
  "coverThumbnail": "iVBORw0KGgo=",
  "updateTime": "2024-01-01T00:00:00Z",
  "reviews": [
    {"reader": "ada", "stars": 5, "text": "Still the best world-building I know."},
    {"reader": "brian", "stars": 4, "text": "Slow start, then impossible to put down."}
  ]
}`

// TestREST runs the REST surface of the example LibraryService through a
// real rosetta process, once for each schema source, each against its own
// library-server.
func TestREST(t *testing.T) {
	t.Parallel()
	for _, src := range schemaSources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			lib := startLibrary(t)
			gw := startRosetta(t, libraryConfig(src.schema(), lib, "    auto_mapping: true\n", ""))
			testRESTCalls(t, gw.base)
			testRESTErrors(t, gw.base)
		})
	}
}

// testRESTCalls exercises every HTTP rule of the LibraryService. The
// subtests run in order: later ones see what earlier ones changed.
func testRESTCalls(t *testing.T, base string) {
	t.Run("GetShelf", func(t *testing.T) {
		r := get(t, base, "/v1/shelves/1")
		wantJSON(t, r, `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
		if got, want := r.header.Get("Content-Length"), strconv.Itoa(len(r.body)); got != want {
			t.Errorf("Content-Length %q, want %q", got, want)
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		g := get(t, base, "/v1/shelves/2")
		r := do(t, base, request{method: http.MethodHead, path: "/v1/shelves/2"})
		if r.status != http.StatusOK {
			t.Fatalf("HEAD status %d, want 200", r.status)
		}
		wantContentType(t, r, "application/json")
		if len(r.body) != 0 {
			t.Errorf("HEAD answered with a body: %q", r.body)
		}
		if got, want := r.header.Get("Content-Length"), strconv.Itoa(len(g.body)); got != want {
			t.Errorf("HEAD Content-Length %q, want the GET body's length %s", got, want)
		}
		r = do(t, base, request{method: http.MethodHead, path: "/v1/shelves/9"})
		if r.status != http.StatusNotFound {
			t.Errorf("HEAD of an absent shelf: status %d, want 404", r.status)
		}
	})

	t.Run("GetBook", func(t *testing.T) {
		wantJSON(t, get(t, base, "/v1/shelves/1/books/dune"), duneJSON)
	})

	t.Run("ListBooks/pagination", func(t *testing.T) {
		r := get(t, base, "/v1/shelves/1/books?page_size=2")
		page := wantJSON(t, r, `{"totalSize":4}`, "books", "nextPageToken")
		names := bookNames(t, page)
		if want := []string{"shelves/1/books/dune", "shelves/1/books/neuromancer"}; !reflect.DeepEqual(names, want) {
			t.Errorf("first page %q, want %q", names, want)
		}
		if books, _ := page["books"].([]any); len(books) > 0 {
			first, _ := books[0].(map[string]any)
			if !reflect.DeepEqual(first, decodeJSON(t, "dune", []byte(duneJSON))) {
				t.Errorf("first book of the listing differs from GetBook:\n%s", pretty(first))
			}
		}
		tok, _ := page["nextPageToken"].(string)
		if tok == "" {
			t.Fatalf("first page has no nextPageToken: %s", r.body)
		}
		r = get(t, base, "/v1/shelves/1/books?page_size=2&pageToken="+url.QueryEscape(tok))
		page = wantJSON(t, r, `{"totalSize":4}`, "books")
		names = bookNames(t, page)
		if want := []string{"shelves/1/books/the-left-hand-of-darkness", "shelves/1/books/leaves-of-grass"}; !reflect.DeepEqual(names, want) {
			t.Errorf("second page %q, want %q", names, want)
		}
		// A token used with another filter is refused by the upstream.
		r = get(t, base, "/v1/shelves/1/books?page_size=2&tags=classic&page_token="+url.QueryEscape(tok))
		wantStatus(t, r, http.StatusBadRequest, codeInvalidArgument, "")
	})

	t.Run("ListBooks/filters", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"filter.genre=GENRE_POETRY", []string{"leaves-of-grass"}},
			{"filter.genre=4", []string{"leaves-of-grass"}},
			{"genres=GENRE_POETRY&genres=1", []string{"dune", "neuromancer", "the-left-hand-of-darkness", "leaves-of-grass"}},
			{"tags=classic&tags=sci-fi", []string{"dune", "the-left-hand-of-darkness"}},
			{"filter.author.name=william%20gibson", []string{"neuromancer"}},
			{"filter.author.name=Ursula+K.+Le+Guin", []string{"the-left-hand-of-darkness"}},
			{"filter.minPages=300", []string{"dune", "the-left-hand-of-darkness"}},
			{"filter.published_after=1968-01-01T00:00:00Z", []string{"neuromancer", "the-left-hand-of-darkness"}},
			{"max_read_time=36000s&min_price_cents=1000", []string{"neuromancer", "the-left-hand-of-darkness"}},
			{"min_rating=4.5", []string{"dune"}},
		} {
			t.Run(tc.query, func(t *testing.T) {
				page := wantJSON(t, get(t, base, "/v1/shelves/1/books?"+tc.query), fmt.Sprintf(`{"totalSize":%d}`, len(tc.want)), "books")
				var want []string
				for _, id := range tc.want {
					want = append(want, "shelves/1/books/"+id)
				}
				if got := bookNames(t, page); !reflect.DeepEqual(got, want) {
					t.Errorf("got %q, want %q", got, want)
				}
			})
		}
		t.Run("read_mask", func(t *testing.T) {
			wantJSON(t, get(t, base, "/v1/shelves/2/books?read_mask=name,title&genres=GENRE_HISTORY"), `{
				"books": [{"name": "shelves/2/books/the-structure-of-scientific-revolutions", "title": "The Structure of Scientific Revolutions"}],
				"totalSize": 1}`)
		})
	})

	t.Run("CreateBook", func(t *testing.T) {
		r := do(t, base, request{method: http.MethodPost, path: "/v1/shelves/1/books?book_id=foundation", body: `{
			"title": "Foundation",
			"author": {"name": "Isaac Asimov", "born": "1920-01-02T00:00:00Z"},
			"genre": "GENRE_FICTION",
			"tags": ["classic"],
			"pageCount": 255,
			"priceCents": "899",
			"readTime": "3600.5s",
			"rating": 4.2,
			"attributes": {"series": "Foundation"},
			"code": "FIC-ASI-0005",
			"extra": {"@type": "type.googleapis.com/example.library.v1.Shelf", "name": "shelves/9", "bookCount": 3},
			"coverThumbnail": "AAEC"
		}`})
		book := wantJSON(t, r, `{
			"name": "shelves/1/books/foundation",
			"title": "Foundation",
			"author": {"name": "Isaac Asimov", "born": "1920-01-02T00:00:00Z"},
			"genre": "GENRE_FICTION",
			"tags": ["classic"],
			"pageCount": 255,
			"priceCents": "899",
			"readTime": "3600.500s",
			"rating": 4.2,
			"attributes": {"series": "Foundation"},
			"code": "FIC-ASI-0005",
			"extra": {"@type": "type.googleapis.com/example.library.v1.Shelf", "name": "shelves/9", "bookCount": 3},
			"coverThumbnail": "AAEC"
		}`, "updateTime")
		if book == nil {
			return
		}
		wantRecent(t, r)
		wantJSON(t, get(t, base, "/v1/shelves/1"), `{"name":"shelves/1","theme":"fiction","bookCount":5}`)
		// The same ID again: AlreadyExists from the upstream.
		r = do(t, base, request{method: http.MethodPost, path: "/v1/shelves/1/books?book_id=foundation", body: `{"title":"Foundation"}`})
		wantStatus(t, r, http.StatusConflict, 6, "")
	})

	t.Run("UpdateBook/PATCH", func(t *testing.T) {
		r := do(t, base, request{method: http.MethodPatch, path: "/v1/shelves/1/books/foundation?update_mask=title", body: `{"title":"Foundation and Empire","pageCount":999}`})
		wantJSON(t, r, `{"name":"shelves/1/books/foundation","title":"Foundation and Empire","pageCount":255}`,
			"updateTime", "author", "genre", "tags", "priceCents", "readTime", "rating", "attributes", "code", "extra", "coverThumbnail")
		r = do(t, base, request{method: http.MethodPatch, path: "/v1/shelves/1/books/foundation?updateMask=pageCount,author.name", body: `{"pageCount":300,"author":{"name":"I. Asimov"}}`})
		wantJSON(t, r, `{"name":"shelves/1/books/foundation","title":"Foundation and Empire","pageCount":300,"author":{"name":"I. Asimov","born":"1920-01-02T00:00:00Z"}}`,
			"updateTime", "genre", "tags", "priceCents", "readTime", "rating", "attributes", "code", "extra", "coverThumbnail")
	})

	t.Run("UpdateBook/PATCH-snake_case-mask", func(t *testing.T) {
		// grpc-gateway takes the paths of a FieldMask query parameter as
		// written, so clients commonly send proto (snake_case) names.
		r := do(t, base, request{method: http.MethodPatch, path: "/v1/shelves/1/books/foundation?update_mask=price_cents", body: `{"priceCents":"1000","title":"ignored"}`})
		wantJSON(t, r, `{"name":"shelves/1/books/foundation","title":"Foundation and Empire","priceCents":"1000"}`,
			"updateTime", "author", "genre", "tags", "pageCount", "readTime", "rating", "attributes", "code", "extra", "coverThumbnail")
	})

	t.Run("UpdateBook/PUT", func(t *testing.T) {
		r := do(t, base, request{method: http.MethodPut, path: "/v1/shelves/1/books/foundation",
			body: `{"book":{"title":"Second Foundation","genre":"GENRE_HISTORY"},"updateMask":"title,genre"}`})
		wantJSON(t, r, `{"name":"shelves/1/books/foundation","title":"Second Foundation","genre":"GENRE_HISTORY","pageCount":300}`,
			"updateTime", "author", "tags", "priceCents", "readTime", "rating", "attributes", "code", "extra", "coverThumbnail")
		// The path binds book.name: a name in the body does not win.
		r = do(t, base, request{method: http.MethodPut, path: "/v1/shelves/1/books/foundation",
			body: `{"book":{"name":"shelves/1/books/dune","title":"Foundation"},"updateMask":"title"}`})
		wantJSON(t, r, `{"name":"shelves/1/books/foundation","title":"Foundation","genre":"GENRE_HISTORY","pageCount":300}`,
			"updateTime", "author", "tags", "priceCents", "readTime", "rating", "attributes", "code", "extra", "coverThumbnail")
		wantJSON(t, get(t, base, "/v1/shelves/1/books/dune"), duneJSON)
	})

	t.Run("UpdateBook/PATCH-without-mask", func(t *testing.T) {
		// Without update_mask, a PATCH changes only the fields the body
		// holds: the mask is derived from the body, as grpc-gateway does
		// (and AIP-134 asks). The upstream alone would replace every field.
		r := do(t, base, request{method: http.MethodPatch, path: "/v1/shelves/1/books/foundation", body: `{"isbn":"978-0553293357","author":{"name":"Isaac Asimov"}}`})
		wantJSON(t, r, `{"name":"shelves/1/books/foundation","title":"Foundation","genre":"GENRE_HISTORY","pageCount":300,"priceCents":"1000","isbn":"978-0553293357","author":{"name":"Isaac Asimov","born":"1920-01-02T00:00:00Z"}}`,
			"updateTime", "tags", "readTime", "rating", "attributes", "code", "extra", "coverThumbnail")
	})

	t.Run("BatchGetBooks", func(t *testing.T) {
		r := get(t, base, "/v1/shelves/1/books:batchGet?names=shelves/1/books/neuromancer&names=shelves/1/books/dune")
		page := wantJSON(t, r, `{}`, "books")
		if got, want := bookNames(t, page), []string{"shelves/1/books/neuromancer", "shelves/1/books/dune"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		r = get(t, base, "/v1/shelves/1/books:batchGet?names=shelves/1/books/dune&names=shelves/1/books/nope")
		wantStatus(t, r, http.StatusNotFound, codeNotFound, "")
	})

	t.Run("MoveBook", func(t *testing.T) {
		r := do(t, base, request{method: http.MethodPost, path: "/v1/shelves/1/books/neuromancer:move", body: `{"otherShelf":"shelves/2"}`})
		book := wantJSON(t, r, `{"name":"shelves/2/books/neuromancer","title":"Neuromancer"}`,
			"updateTime", "author", "isbn", "genre", "tags", "pageCount", "priceCents", "publishTime", "readTime", "rating", "attributes", "code", "reviews")
		if book != nil {
			wantRecent(t, r)
		}
		wantStatus(t, get(t, base, "/v1/shelves/1/books/neuromancer"), http.StatusNotFound, codeNotFound, "")
		// The text moved with the book.
		r = get(t, base, "/v1/shelves/2/books/neuromancer:download")
		if r.status != http.StatusOK || !strings.HasPrefix(string(r.body), "Neuromancer, by William Gibson.") {
			t.Errorf("download of the moved book: status %d, body %q", r.status, r.body)
		}
	})

	t.Run("GetBookTitle", func(t *testing.T) {
		r := get(t, base, "/v1/shelves/1/books/dune/title")
		if r.status != http.StatusOK {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		wantContentType(t, r, "application/json")
		if got := decodeJSON(t, "title", r.body); got != "Dune" {
			t.Errorf("body %s, want the bare JSON string \"Dune\"", r.body)
		}
	})

	t.Run("DownloadBook", func(t *testing.T) {
		r := get(t, base, "/v1/shelves/1/books/dune:download")
		if r.status != http.StatusOK {
			t.Fatalf("status %d\n%s", r.status, r.body)
		}
		wantContentType(t, r, "text/plain; charset=utf-8")
		if want := "Dune, by Frank Herbert.\n\nA desert planet, a noble house and the spice that everyone wants.\n"; string(r.body) != want {
			t.Errorf("body %q, want %q", r.body, want)
		}
	})

	t.Run("UploadBookText", func(t *testing.T) {
		text := "# Dune\n\nRewritten: {not JSON} \"at all\" ✓\n"
		r := do(t, base, request{method: http.MethodPut, path: "/v1/shelves/1/books/dune/text", body: text,
			header: map[string]string{"Content-Type": "text/markdown; charset=utf-8"}})
		wantJSON(t, r, duneJSON, "updateTime")
		wantRecent(t, r)
		r = get(t, base, "/v1/shelves/1/books/dune:download")
		if r.status != http.StatusOK {
			t.Fatalf("download after upload: status %d\n%s", r.status, r.body)
		}
		wantContentType(t, r, "text/plain; charset=utf-8")
		if string(r.body) != text {
			t.Errorf("downloaded %q, want the uploaded %q", r.body, text)
		}
		// Not UTF-8: the upstream refuses it.
		r = do(t, base, request{method: http.MethodPut, path: "/v1/shelves/1/books/dune/text", body: "\xff\xfe",
			header: map[string]string{"Content-Type": "application/octet-stream"}})
		wantStatus(t, r, http.StatusBadRequest, codeInvalidArgument, "")
	})

	t.Run("GetAsset", func(t *testing.T) {
		wantJSON(t, get(t, base, "/v1/assets/css/site.css"), `{"path":"css/site.css","contentType":"text/css; charset=utf-8","size":"42"}`)
		wantJSON(t, get(t, base, "/v1/assets/docs/api/v1/openapi.json"), `{"path":"docs/api/v1/openapi.json","contentType":"application/json","size":"21"}`)
		wantJSON(t, get(t, base, "/v1/assets/index.html"), `{"path":"index.html","contentType":"text/html; charset=utf-8","size":"56"}`)
		wantStatus(t, get(t, base, "/v1/assets/images/none.png"), http.StatusNotFound, codeNotFound, "")
	})

	t.Run("DeleteBook", func(t *testing.T) {
		r := do(t, base, request{method: http.MethodDelete, path: "/v1/shelves/1/books/foundation"})
		wantJSON(t, r, `{}`)
		wantStatus(t, get(t, base, "/v1/shelves/1/books/foundation"), http.StatusNotFound, codeNotFound, "")
		r = do(t, base, request{method: http.MethodDelete, path: "/v1/shelves/1/books/foundation"})
		wantStatus(t, r, http.StatusNotFound, codeNotFound, "")
	})

	t.Run("Ping", func(t *testing.T) {
		r := do(t, base, request{method: http.MethodPost, path: "/example.library.v1.LibraryService/Ping", body: `{"message":"hi"}`})
		wantJSON(t, r, `{"message":"hi"}`, "time")
		wantRecentKey(t, r, "time")
		// The auto-mapped route takes POST only.
		r = get(t, base, "/example.library.v1.LibraryService/Ping")
		wantStatus(t, r, http.StatusMethodNotAllowed, codeUnimplemented, "")
		if got := r.header.Get("Allow"); got != "POST" {
			t.Errorf("Allow %q, want %q", got, "POST")
		}
	})
}

// bookNames returns the names of the books of a listing.
func bookNames(t testing.TB, page map[string]any) []string {
	t.Helper()
	books, _ := page["books"].([]any)
	var names []string
	for _, b := range books {
		m, _ := b.(map[string]any)
		name, _ := m["name"].(string)
		names = append(names, name)
	}
	return names
}

// wantRecent asserts that a Book answer has an updateTime set by the
// upstream just now.
func wantRecent(t testing.TB, r *response) {
	t.Helper()
	wantRecentKey(t, r, "updateTime")
}

func wantRecentKey(t testing.TB, r *response, key string) {
	t.Helper()
	obj, _ := decodeJSON(t, "response", r.body).(map[string]any)
	s, _ := obj[key].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("%s %q is not an RFC 3339 time: %v", key, s, err)
		return
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Minute {
		t.Errorf("%s %s is not recent", key, s)
	}
}

// testRESTErrors checks every class of client and upstream error: HTTP
// status, and a JSON google.rpc.Status naming what is wrong.
func testRESTErrors(t *testing.T, base string) {
	for _, tc := range []struct {
		name       string
		req        request
		httpStatus int
		code       int
		field      string // the BadRequest field violation, "" for none
		allow      string // the Allow header, for 405
	}{
		{name: "unknown path", req: request{method: "GET", path: "/v2/nothing/here"}, httpStatus: 404, code: codeNotFound},
		{name: "unknown verb", req: request{method: "GET", path: "/v1/shelves/1/books:explode"}, httpStatus: 404, code: codeNotFound},
		{name: "wrong method", req: request{method: "DELETE", path: "/v1/shelves/1"}, httpStatus: 405, code: codeUnimplemented, allow: "GET, HEAD"},
		{name: "wrong method on a path with several", req: request{method: "POST", path: "/v1/shelves/1/books/dune"}, httpStatus: 405, code: codeUnimplemented, allow: "DELETE, GET, HEAD, PATCH, PUT"},
		{name: "malformed JSON", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x",`}, httpStatus: 400, code: codeInvalidArgument, field: "book*"},
		{name: "malformed JSON whole body", req: request{method: "POST", path: "/v1/shelves/1/books/dune:move", body: `{"otherShelf"`}, httpStatus: 400, code: codeInvalidArgument},
		{name: "wrong type", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": 1}`}, httpStatus: 400, code: codeInvalidArgument, field: "book.title"},
		{name: "unknown JSON field", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x", "colour": "red"}`}, httpStatus: 400, code: codeInvalidArgument, field: "book.colour"},
		{name: "wrong query type", req: request{method: "GET", path: "/v1/shelves/1/books?page_size=ten"}, httpStatus: 400, code: codeInvalidArgument, field: "page_size"},
		{name: "non-repeated query param repeated", req: request{method: "GET", path: "/v1/shelves/1/books?page_size=1&page_size=2"}, httpStatus: 400, code: codeInvalidArgument, field: "page_size"},
		{name: "bad enum in query", req: request{method: "GET", path: "/v1/shelves/1/books?filter.genre=GENRE_CYBERPUNK"}, httpStatus: 400, code: codeInvalidArgument, field: "filter.genre"},
		{name: "bad enum in repeated query", req: request{method: "GET", path: "/v1/shelves/1/books?genres=GENRE_FICTION&genres=NOVEL"}, httpStatus: 400, code: codeInvalidArgument, field: "genres"},
		{name: "bad enum in body", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x", "genre": "GENRE_CYBERPUNK"}`}, httpStatus: 400, code: codeInvalidArgument, field: "book.genre"},
		{name: "bad base64 in query", req: request{method: "GET", path: "/v1/shelves/1/books?cursor=%21%21not-base64%21%21"}, httpStatus: 400, code: codeInvalidArgument, field: "cursor"},
		{name: "bad base64 in body", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x", "coverThumbnail": "!!not base64!!"}`}, httpStatus: 400, code: codeInvalidArgument, field: "book.coverThumbnail|book.cover_thumbnail"},
		{name: "bad timestamp in query", req: request{method: "GET", path: "/v1/shelves/1/books?filter.published_after=yesterday"}, httpStatus: 400, code: codeInvalidArgument, field: "filter.published_after"},
		{name: "bad timestamp in body", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x", "publishTime": "2024-13-45"}`}, httpStatus: 400, code: codeInvalidArgument, field: "book.publishTime|book.publish_time"},
		{name: "bad duration in query", req: request{method: "GET", path: "/v1/shelves/1/books?max_read_time=10hours"}, httpStatus: 400, code: codeInvalidArgument, field: "max_read_time"},
		{name: "bad map key syntax", req: request{method: "GET", path: "/v1/shelves/1/books?labels=x"}, httpStatus: 400, code: codeInvalidArgument, field: "labels"},
		{name: "bad Grpc-Timeout", req: request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Grpc-Timeout": "soon"}}, httpStatus: 400, code: codeInvalidArgument},
		{name: "wrong Content-Type", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x"}`, header: map[string]string{"Content-Type": "text/plain"}}, httpStatus: 415, code: codeInvalidArgument},
		{name: "form Content-Type", req: request{method: "POST", path: "/v1/shelves/1/books", body: `{"title": "x"}`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, httpStatus: 415, code: codeInvalidArgument},
		{name: "upstream NotFound", req: request{method: "GET", path: "/v1/shelves/1/books/no-such-book"}, httpStatus: 404, code: codeNotFound},
		{name: "upstream NotFound shelf", req: request{method: "GET", path: "/v1/shelves/77"}, httpStatus: 404, code: codeNotFound},
		{name: "upstream InvalidArgument", req: request{method: "GET", path: "/v1/shelves/1/books?page_size=-1"}, httpStatus: 400, code: codeInvalidArgument},
		{name: "upstream deadline via Grpc-Timeout", req: request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Grpc-Timeout": "1n"}}, httpStatus: 504, code: codeDeadlineExceeded},
	} {
		t.Run("error/"+tc.name, func(t *testing.T) {
			r := do(t, base, tc.req)
			st := wantStatus(t, r, tc.httpStatus, tc.code, tc.field)
			if tc.allow != "" {
				if got := r.header.Get("Allow"); got != tc.allow {
					t.Errorf("Allow %q, want %q", got, tc.allow)
				}
			}
			if tc.name == "upstream NotFound" && !strings.Contains(st.Message, `"shelves/1/books/no-such-book"`) {
				t.Errorf("message %q does not carry the upstream's message", st.Message)
			}
		})
	}
}

// TestBodyLimit checks that a body over http.max_body_bytes is refused with
// 413 whether its length is announced or not, and that the upstream is not
// called.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", "http: {max_body_bytes: 256}\n"))
	big := fmt.Sprintf(`{"title": %q}`, strings.Repeat("x", 1000))
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books?book_id=big", body: big, chunked: chunked})
			wantStatus(t, r, http.StatusRequestEntityTooLarge, codeResourceExhausted, "")
		})
	}
	wantStatus(t, get(t, gw.base, "/v1/shelves/1/books/big"), http.StatusNotFound, codeNotFound, "")
	// Under the limit it goes through.
	r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books?book_id=small", body: `{"title":"Small"}`})
	wantJSON(t, r, `{"name":"shelves/1/books/small","title":"Small"}`, "updateTime")
	// The raw HttpBody route is bounded too.
	r = do(t, gw.base, request{method: "PUT", path: "/v1/shelves/1/books/dune/text", body: strings.Repeat("y", 1000), header: map[string]string{"Content-Type": "text/plain"}})
	wantStatus(t, r, http.StatusRequestEntityTooLarge, codeResourceExhausted, "")
}

// TestUpstreamUnavailable points the gateway at a closed port: calls fail
// with 503 UNAVAILABLE, promptly.
func TestUpstreamUnavailable(t *testing.T) {
	t.Parallel()
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), freePort(t), "", ""))
	for _, path := range []string{"/v1/shelves/1", "/v1/shelves/1/books?page_size=1"} {
		r := get(t, gw.base, path)
		wantStatus(t, r, http.StatusServiceUnavailable, codeUnavailable, "")
	}
	// A client error is still found before the upstream is tried.
	wantStatus(t, get(t, gw.base, "/v1/shelves/1/books?page_size=ten"), http.StatusBadRequest, codeInvalidArgument, "page_size")
}

// TestRouteTimeout checks a tiny per-route deadline from the routes section
// (504), and that the same method on its annotated route is unaffected.
func TestRouteTimeout(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", `routes:
  - get: /v1/hurried/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
    timeout: 1ns
  - get: /v1/relaxed/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
`))
	wantStatus(t, get(t, gw.base, "/v1/hurried/shelves/1"), http.StatusGatewayTimeout, codeDeadlineExceeded, "")
	wantJSON(t, get(t, gw.base, "/v1/relaxed/shelves/1"), `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
	wantJSON(t, get(t, gw.base, "/v1/shelves/1"), `{"name":"shelves/1","theme":"fiction","bookCount":4}`)

	// A service-wide timeout applies to every annotated route.
	gw2 := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "    timeout: 1ns\n", ""))
	wantStatus(t, get(t, gw2.base, "/v1/shelves/1"), http.StatusGatewayTimeout, codeDeadlineExceeded, "")
}

// TestJSONOptions checks the per-service JSON options through the binary.
func TestJSONOptions(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, `    json:
      use_proto_names: true
      emit_unpopulated: true
      enums_as_numbers: true
      discard_unknown_fields: true
      allow_unknown_query_params: true
`, ""))
	wantJSON(t, get(t, gw.base, "/v1/shelves/1?colour=red"), `{"name":"shelves/1","theme":"fiction","book_count":4}`)
	r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books?book_id=opts", body: `{"title":"Opts","colour":"red","page_count":7}`})
	book := wantJSON(t, r, `{
		"name": "shelves/1/books/opts", "title": "Opts", "author": null, "isbn": "", "genre": 0, "tags": [],
		"page_count": 7, "price_cents": "0", "publish_time": null, "read_time": null, "rating": null,
		"attributes": {}, "catalogue_code": "", "extra": null, "available": false, "cover_thumbnail": "",
		"reviews": []}`, "update_time")
	if book != nil {
		wantRecentKey(t, r, "update_time")
	}
}

// TestDynamicOnlySchema serves a schema that no code linked into rosetta
// knows (compiled from a .proto at start-up) and checks that enum query
// parameters resolve against it. The upstream does not implement the
// service, so a request that gets through the gateway ends UNIMPLEMENTED.
func TestDynamicOnlySchema(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "dyn", "v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dyn", "v1", "dyn.proto"), []byte(dynamicProto), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startRosetta(t, fmt.Sprintf(`schemas:
  - proto: {import_paths: [%q], files: [dyn/v1/dyn.proto]}
upstreams:
  lib: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: dyn.v1.Painter
    upstream: lib
`, dir, lib))
	for _, q := range []string{"color=COLOR_RED", "color=1"} {
		wantStatus(t, get(t, gw.base, "/v1/paint/x?"+q), http.StatusNotImplemented, codeUnimplemented, "")
	}
	wantStatus(t, get(t, gw.base, "/v1/paint/x?color=COLOR_BLUE"), http.StatusBadRequest, codeInvalidArgument, "color")
}
