package translate_test

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rosettagw/rosetta/descriptors"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/translate"
)

var libraryService = libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService")

func libMethod(t testing.TB, name string) protoreflect.MethodDescriptor {
	t.Helper()
	md := libraryService.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		t.Fatalf("no method %s", name)
	}
	return md
}

// libBindings compiles the HTTP rule of a LibraryService method.
func libBindings(t testing.TB, name string, opts translate.JSONOptions) []*translate.Binding {
	t.Helper()
	md := libMethod(t, name)
	rule, ok, err := descriptors.HTTPRule(md)
	if err != nil || !ok {
		t.Fatalf("HTTPRule(%s) = %v, %v", name, ok, err)
	}
	bs, err := translate.Bindings(md, rule, opts, protoregistry.GlobalTypes)
	if err != nil {
		t.Fatalf("Bindings(%s): %v", name, err)
	}
	return bs
}

// libBinding is the first binding of the library method name, with
// strict query parameters (so that a parameter setting nothing is refused).
func libBinding(t testing.TB, name string) *translate.Binding {
	t.Helper()
	return libBindings(t, name, translate.JSONOptions{StrictQuery: true})[0]
}

func newBinding(t testing.TB, method, httpMethod, path, body, responseBody string, opts translate.JSONOptions) *translate.Binding {
	t.Helper()
	b, err := translate.NewBinding(libMethod(t, method), httpMethod, path, body, responseBody, opts, protoregistry.GlobalTypes)
	if err != nil {
		t.Fatalf("NewBinding: %v", err)
	}
	return b
}

// decode runs DecodeRequest and unmarshals the wire bytes into want's type.
func decode(t *testing.T, b *translate.Binding, r *translate.Request, want proto.Message) proto.Message {
	t.Helper()
	wire, err := b.DecodeRequest(r)
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	got := want.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(wire, got); err != nil {
		t.Fatalf("the wire bytes do not unmarshal: %v", err)
	}
	return got
}

func checkDecode(t *testing.T, b *translate.Binding, r *translate.Request, want proto.Message) {
	t.Helper()
	if got := decode(t, b, r, want); !proto.Equal(got, want) {
		t.Errorf("decoded\n%v\nwant\n%v", prototext.Format(got), prototext.Format(want))
	}
}

// checkBadRequest asserts that DecodeRequest fails with a *BadRequestError
// naming field.
func checkBadRequest(t *testing.T, b *translate.Binding, r *translate.Request, field string) {
	t.Helper()
	wire, err := b.DecodeRequest(r)
	if err == nil {
		t.Fatalf("DecodeRequest accepted the request: %x", wire)
	}
	var bre *translate.BadRequestError
	if !errors.As(err, &bre) {
		t.Fatalf("error %v (%T) is not a *BadRequestError", err, err)
	}
	if bre.Field != field {
		t.Errorf("Field = %q, want %q (%v)", bre.Field, field, bre.Description)
	}
	if bre.Description == "" || bre.Error() != bre.Description {
		t.Errorf("Description %q, Error() %q", bre.Description, bre.Error())
	}
}

func TestBindingsOfLibraryService(t *testing.T) {
	type want struct {
		method, template string
		body             translate.BodyKind
		raw              bool
	}
	tests := map[string][]want{
		"GetShelf":       {{"GET", "/v1/{name=shelves/*}", translate.NoBody, false}, {"HEAD", "/v1/{name=shelves/*}", translate.NoBody, false}},
		"ListBooks":      {{"GET", "/v1/{parent=shelves/*}/books", translate.NoBody, false}},
		"GetBook":        {{"GET", "/v1/{name=shelves/*/books/*}", translate.NoBody, false}},
		"CreateBook":     {{"POST", "/v1/{parent=shelves/*}/books", translate.FieldBody, false}},
		"UpdateBook":     {{"PATCH", "/v1/{book.name=shelves/*/books/*}", translate.FieldBody, false}, {"PUT", "/v1/{book.name=shelves/*/books/*}", translate.WholeBody, false}},
		"DeleteBook":     {{"DELETE", "/v1/{name=shelves/*/books/*}", translate.NoBody, false}},
		"BatchGetBooks":  {{"GET", "/v1/{parent=shelves/*}/books:batchGet", translate.NoBody, false}},
		"MoveBook":       {{"POST", "/v1/{name=shelves/*/books/*}:move", translate.WholeBody, false}},
		"GetBookTitle":   {{"GET", "/v1/{name=shelves/*/books/*}/title", translate.NoBody, false}},
		"DownloadBook":   {{"GET", "/v1/{name=shelves/*/books/*}:download", translate.NoBody, false}},
		"UploadBookText": {{"PUT", "/v1/{name=shelves/*/books/*}/text", translate.FieldBody, true}},
		"GetAsset":       {{"GET", "/v1/assets/{path=**}", translate.NoBody, false}},
		"StreamBooks":    {{"GET", "/v1/{parent=shelves/*}/books:stream", translate.NoBody, false}},
	}
	methods := libraryService.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		name := string(md.Name())
		t.Run(name, func(t *testing.T) {
			rule, ok, err := descriptors.HTTPRule(md)
			if err != nil {
				t.Fatal(err)
			}
			wants, listed := tests[name]
			if !ok {
				if listed {
					t.Fatal("no HTTP rule")
				}
				// Ping: the auto-mapped POST binding.
				b, err := translate.NewBinding(md, "POST", "/example.library.v1.LibraryService/Ping", "*", "", translate.JSONOptions{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if b.Body != translate.WholeBody || b.RawBody() || b.Method != md {
					t.Errorf("Ping binding = %+v", b)
				}
				return
			}
			if !listed {
				t.Fatal("method has an HTTP rule the test does not know")
			}
			bs, err := translate.Bindings(md, rule, translate.JSONOptions{}, protoregistry.GlobalTypes)
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != len(wants) {
				t.Fatalf("%d bindings, want %d", len(bs), len(wants))
			}
			for j, w := range wants {
				b := bs[j]
				if b.Method != md || b.HTTPMethod != w.method || b.Template.String() != w.template || b.Template.Source != w.template || b.Body != w.body || b.RawBody() != w.raw {
					t.Errorf("binding %d = %s %s body %d raw %v, want %s %s body %d raw %v",
						j, b.HTTPMethod, b.Template, b.Body, b.RawBody(), w.method, w.template, w.body, w.raw)
				}
			}
		})
	}
}

func TestBindingCompileErrors(t *testing.T) {
	tests := []struct {
		name, method, httpMethod, path, body, responseBody string
		want                                               string
	}{
		{"unknown template field", "GetShelf", "GET", "/v1/{nope=shelves/*}", "", "", `no field "nope"`},
		{"unknown nested template field", "UpdateBook", "GET", "/v1/{book.nope}", "", "", `no field "nope"`},
		{"traversing a scalar", "ListBooks", "GET", "/v1/{parent.x}", "", "", "not a singular message"},
		{"traversing a repeated field", "ListBooks", "GET", "/v1/{tags.x}", "", "", "not a singular message"},
		{"path variable on a repeated field", "ListBooks", "GET", "/v1/{tags}", "", "", "repeated field"},
		{"path variable on a repeated enum", "ListBooks", "GET", "/v1/{genres}", "", "", "repeated field"},
		{"path variable on a map", "ListBooks", "GET", "/v1/{labels}", "", "", "repeated field"},
		{"path variable on a message field", "ListBooks", "GET", "/v1/{filter}", "", "", "message field"},
		{"path variable on a nested message field", "ListBooks", "GET", "/v1/{filter.author}", "", "", "message field"},
		{"path variable on a whole message", "CreateBook", "GET", "/v1/{book}", "", "", "message field"},
		{"unknown body field", "CreateBook", "POST", "/v1/{parent=shelves/*}/books", "nope", "", `body: no field "nope"`},
		{"nested body field", "UpdateBook", "PATCH", "/v1/x", "book.title", "", `body: no field "book.title"`},
		{"unknown response_body field", "GetBookTitle", "GET", "/v1/x", "", "nope", `response_body: no field "nope"`},
		{"bad template", "GetShelf", "GET", "v1/x", "", "", "must start with '/'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := libMethod(t, tt.method)
			b, err := translate.NewBinding(md, tt.httpMethod, tt.path, tt.body, tt.responseBody, translate.JSONOptions{}, protoregistry.GlobalTypes)
			if err == nil {
				t.Fatalf("NewBinding accepted it: %+v", b)
			}
			for _, frag := range []string{tt.want, string(md.FullName()), tt.path} {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not mention %q", err, frag)
				}
			}
		})
	}
}

func TestBindingsRuleErrors(t *testing.T) {
	md := libMethod(t, "GetShelf")
	tests := []struct {
		name string
		rule *annotations.HttpRule
		want string
	}{
		{"no pattern", &annotations.HttpRule{}, "no pattern"},
		{"custom without kind", &annotations.HttpRule{Pattern: &annotations.HttpRule_Custom{Custom: &annotations.CustomHttpPattern{Path: "/v1/x"}}}, "no pattern"},
		{"nested additional bindings", &annotations.HttpRule{
			Pattern: &annotations.HttpRule_Get{Get: "/v1/{name=shelves/*}"},
			AdditionalBindings: []*annotations.HttpRule{{
				Pattern:            &annotations.HttpRule_Get{Get: "/v2/{name=shelves/*}"},
				AdditionalBindings: []*annotations.HttpRule{{Pattern: &annotations.HttpRule_Get{Get: "/v3/{name=shelves/*}"}}},
			}},
		}, "may not nest"},
		{"bad additional binding", &annotations.HttpRule{
			Pattern:            &annotations.HttpRule_Get{Get: "/v1/{name=shelves/*}"},
			AdditionalBindings: []*annotations.HttpRule{{Pattern: &annotations.HttpRule_Post{Post: "/v1/{nope}"}, Body: "*"}},
		}, `no field "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := translate.Bindings(md, tt.rule, translate.JSONOptions{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "GetShelf") {
				t.Errorf("err = %v, want one about %q naming the method", err, tt.want)
			}
		})
	}

	custom := &annotations.HttpRule{Pattern: &annotations.HttpRule_Custom{Custom: &annotations.CustomHttpPattern{Kind: "options", Path: "/v1/{name=shelves/*}"}}}
	bs, err := translate.Bindings(md, custom, translate.JSONOptions{}, nil)
	if err != nil || len(bs) != 1 || bs[0].HTTPMethod != "OPTIONS" {
		t.Errorf("custom rule: %v, %v", bs, err)
	}
}

func ts(s string) *timestamppb.Timestamp {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(tm)
}

func TestDecodeQuery(t *testing.T) {
	cursor := []byte{0xfb, 0xff, 0xbf, 0x01}
	b64 := func(enc *base64.Encoding) string { return url.QueryEscape(enc.EncodeToString(cursor)) }
	withParent := func(m *libraryv1.ListBooksRequest) *libraryv1.ListBooksRequest {
		m.Parent = "shelves/1"
		return m
	}
	tests := []struct {
		query string
		want  *libraryv1.ListBooksRequest
	}{
		{"", &libraryv1.ListBooksRequest{}},
		{"page_size=10", &libraryv1.ListBooksRequest{PageSize: 10}},
		{"pageSize=-3", &libraryv1.ListBooksRequest{PageSize: -3}},
		{"page_size=2147483647", &libraryv1.ListBooksRequest{PageSize: 2147483647}},
		{"page_token=a%20b+c%2Bd", &libraryv1.ListBooksRequest{PageToken: "a b c+d"}},
		{"pageToken=%E2%9C%93", &libraryv1.ListBooksRequest{PageToken: "✓"}},
		{"show_unavailable=true", &libraryv1.ListBooksRequest{ShowUnavailable: true}},
		{"show_unavailable=1", &libraryv1.ListBooksRequest{ShowUnavailable: true}},
		{"showUnavailable=false", &libraryv1.ListBooksRequest{}},
		{"min_price_cents=9007199254740993", &libraryv1.ListBooksRequest{MinPriceCents: 9007199254740993}},
		{"minPriceCents=-9223372036854775808", &libraryv1.ListBooksRequest{MinPriceCents: -9223372036854775808}},
		{"min_rating=4.5", &libraryv1.ListBooksRequest{MinRating: 4.5}},
		{"minRating=-1e3", &libraryv1.ListBooksRequest{MinRating: -1000}},
		{"min_rating=%2B2.5E-1", &libraryv1.ListBooksRequest{MinRating: 0.25}},
		{"min_rating=Infinity", &libraryv1.ListBooksRequest{MinRating: math.Inf(1)}},
		{"min_rating=-Infinity", &libraryv1.ListBooksRequest{MinRating: math.Inf(-1)}},
		{"min_rating=NaN", &libraryv1.ListBooksRequest{MinRating: math.NaN()}},
		{"cursor=" + b64(base64.StdEncoding), &libraryv1.ListBooksRequest{Cursor: cursor}},
		{"cursor=" + b64(base64.RawStdEncoding), &libraryv1.ListBooksRequest{Cursor: cursor}},
		{"cursor=" + b64(base64.URLEncoding), &libraryv1.ListBooksRequest{Cursor: cursor}},
		{"cursor=" + b64(base64.RawURLEncoding), &libraryv1.ListBooksRequest{Cursor: cursor}},
		{"cursor=", &libraryv1.ListBooksRequest{}},
		{"genres=GENRE_FICTION&genres=2&genres=GENRE_POETRY", &libraryv1.ListBooksRequest{Genres: []libraryv1.Genre{1, 2, 4}}},
		{"filter.genre=GENRE_HISTORY", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{Genre: libraryv1.Genre_GENRE_HISTORY}}},
		{"filter.genre=3", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{Genre: libraryv1.Genre_GENRE_HISTORY}}},
		{"filter.genre=42", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{Genre: 42}}}, // an open enum
		{"tags=a&tags=b", &libraryv1.ListBooksRequest{Tags: []string{"a", "b"}}},
		{"tags=a,b", &libraryv1.ListBooksRequest{Tags: []string{"a,b"}}},
		{"filter.author.name=Ursula", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{Author: &libraryv1.Author{Name: "Ursula"}}}},
		{"filter.author.born=1929-10-21T00:00:00Z", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{Author: &libraryv1.Author{Born: ts("1929-10-21T00:00:00Z")}}}},
		{"filter.min_pages=5", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{MinPages: wrapperspb.Int32(5)}}},
		{"filter.minPages=0", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{MinPages: wrapperspb.Int32(0)}}},
		// A well-known type's own fields may be named, as grpc-gateway allows.
		{"filter.min_pages.value=5", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{MinPages: wrapperspb.Int32(5)}}},
		{"filter.minPages.value=0", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{MinPages: wrapperspb.Int32(0)}}},
		{"max_read_time.seconds=7&max_read_time.nanos=5", &libraryv1.ListBooksRequest{MaxReadTime: &durationpb.Duration{Seconds: 7, Nanos: 5}}},
		{"read_mask.paths=title&read_mask.paths=isbn", &libraryv1.ListBooksRequest{ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "isbn"}}}},
		{"filter.author.name=x&filter.minPages.value=2", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{Author: &libraryv1.Author{Name: "x"}, MinPages: wrapperspb.Int32(2)}}},
		{"filter.published_after=2020-01-01T00:00:00Z", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{PublishedAfter: ts("2020-01-01T00:00:00Z")}}},
		{"filter.publishedAfter=2020-01-01T01:02:03.5%2B01:00", &libraryv1.ListBooksRequest{Filter: &libraryv1.BookFilter{PublishedAfter: ts("2020-01-01T00:02:03.5Z")}}},
		{"max_read_time=1.5s", &libraryv1.ListBooksRequest{MaxReadTime: durationpb.New(1500 * time.Millisecond)}},
		{"maxReadTime=-2s", &libraryv1.ListBooksRequest{MaxReadTime: durationpb.New(-2 * time.Second)}},
		{"read_mask=title,author.name", &libraryv1.ListBooksRequest{ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "author.name"}}}},
		{"readMask=pageCount,price_cents", &libraryv1.ListBooksRequest{ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"page_count", "price_cents"}}}},
		{"read_mask=", &libraryv1.ListBooksRequest{ReadMask: &fieldmaskpb.FieldMask{}}},
		{"labels[k]=v&labels%5Bk2%5D=v%202&labels[]=empty", &libraryv1.ListBooksRequest{Labels: map[string]string{"k": "v", "k2": "v 2", "": "empty"}}},
		{
			"page_size=5&filter.author.name=x&filter.genre=GENRE_POETRY&tags=t&labels[a]=b&max_read_time=3s&show_unavailable=true",
			&libraryv1.ListBooksRequest{
				PageSize: 5, Tags: []string{"t"}, Labels: map[string]string{"a": "b"},
				MaxReadTime: durationpb.New(3 * time.Second), ShowUnavailable: true,
				Filter: &libraryv1.BookFilter{Author: &libraryv1.Author{Name: "x"}, Genre: libraryv1.Genre_GENRE_POETRY},
			},
		},
	}
	b := libBinding(t, "ListBooks")
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			checkDecode(t, b, &translate.Request{PathValues: []string{"shelves/1"}, Query: tt.query}, withParent(tt.want))
		})
	}
}

func TestDecodeQueryErrors(t *testing.T) {
	tests := []struct {
		query string
		field string
	}{
		{"nope=1", "nope"},
		{"filter.nope=1", "filter.nope"},
		{"Page_Size=1", "Page_Size"},
		{"page_size=ten", "page_size"},
		{"page_size=3000000000", "page_size"},
		{"page_size=1.0", "page_size"},
		{"page_size=", "page_size"},
		{"show_unavailable=yes", "show_unavailable"},
		{"min_rating=high", "min_rating"},
		{"min_price_cents=1.5", "min_price_cents"},
		{"min_price_cents=9223372036854775808", "min_price_cents"},
		{"genres=GENRE_NOPE", "genres"},
		{"genres=GENRE_FICTION&genres=fiction", "genres"},
		{"filter.genre=NOPE", "filter.genre"},
		{"filter.genre=genre_fiction", "filter.genre"},
		{"cursor=%21%21%21", "cursor"},
		{"cursor=AQ%3D%3D%3D", "cursor"},
		{"cursor=A", "cursor"},
		{"filter.published_after=yesterday", "filter.published_after"},
		{"filter.published_after=2020-01-01", "filter.published_after"},
		{"filter.publishedAfter=2020-13-01T00:00:00Z", "filter.publishedAfter"},
		{"max_read_time=5", "max_read_time"},
		{"max_read_time=5m", "max_read_time"},
		{"filter.min_pages=many", "filter.min_pages"},
		{"filter.min_pages=99999999999", "filter.min_pages"},
		{"read_mask=a..b", "read_mask"},
		{"read_mask=title,,x", "read_mask"},
		{"page_size=1&page_size=2", "page_size"},
		{"filter.genre=1&filter.genre=2", "filter.genre"},
		{"parent=shelves/2", "parent"},
		{"labels=x", "labels"},
		{"labels[k]=a&labels[k]=b", "labels[k]"},
		{"tags[k]=v", "tags[k]"},
		{"filter=x", "filter"},
		{"filter.author=x", "filter.author"},
		{"filter.min_pages.nope=3", "filter.min_pages.nope"},
		{"filter.min_pages.value=x", "filter.min_pages.value"},
		// Floating point as proto3 JSON spells it (and grpc-gateway reads
		// it): Go's other spellings are refused.
		{"min_rating=nan", "min_rating"},
		{"min_rating=inf", "min_rating"},
		{"min_rating=%2BInf", "min_rating"},
		{"min_rating=infinity", "min_rating"},
		{"min_rating=0x1p-2", "min_rating"},
		{"min_rating=1_0", "min_rating"},
		{"min_rating=1e400", "min_rating"},
		{"filter.min_pages=NaN", "filter.min_pages"},
		// One field named twice, under its proto and its JSON names, or a
		// well-known type and a field of it: which would win depends on the
		// order, so both are refused (blamed on the later name in byte order).
		{"min_rating=1&minRating=2", "min_rating"},
		{"page_size=1&pageSize=1", "page_size"},
		{"filter.min_pages=1&filter.minPages=2", "filter.min_pages"},
		{"filter.min_pages=1&filter.min_pages.value=2", "filter.min_pages.value"},
		{"max_read_time=1s&maxReadTime.seconds=2", "max_read_time"},
		{"tags.x=1", "tags.x"},
		{"page_token.x=1", "page_token.x"},
		// Invalid UTF-8 in a value or map key bound to a string: the
		// client's mistake, not a failure to marshal (issue 14).
		{"page_token=%ff", "page_token"},
		{"filter.author.name=a%c3", "filter.author.name"},
		{"labels[%ff]=v", "labels[\xff]"},
		{"labels[k]=%fe%ff", "labels[k]"},
	}
	b := libBinding(t, "ListBooks")
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			checkBadRequest(t, b, &translate.Request{PathValues: []string{"shelves/1"}, Query: tt.query}, tt.field)
		})
	}
	t.Run("malformed query", func(t *testing.T) {
		checkBadRequest(t, b, &translate.Request{PathValues: []string{"shelves/1"}, Query: "a=%zz"}, "")
	})
}

// TestDecodeLenientQuery: by default a query parameter that sets nothing
// (an unknown name, any on a body "*" rule, a field the path or body binds)
// is ignored, as grpc-gateway ignores it; malformed values of known fields
// are still refused.
func TestDecodeLenientQuery(t *testing.T) {
	list := libBindings(t, "ListBooks", translate.JSONOptions{})[0]
	checkDecode(t, list, &translate.Request{PathValues: []string{"shelves/1"}, Query: "nope=1&filter.nope=2&tags.x=3&page_size=2&utm_source=x&parent=shelves/2"},
		&libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 2})
	checkBadRequest(t, list, &translate.Request{PathValues: []string{"shelves/1"}, Query: "nope=1&page_size=ten"}, "page_size")

	move := libBindings(t, "MoveBook", translate.JSONOptions{})[0]
	checkDecode(t, move, &translate.Request{PathValues: []string{"shelves/1/books/2"}, Query: "other_shelf=shelves/9&_=123", Body: []byte(`{"otherShelf":"shelves/3"}`)},
		&libraryv1.MoveBookRequest{Name: "shelves/1/books/2", OtherShelf: "shelves/3"})

	update := libBindings(t, "UpdateBook", translate.JSONOptions{})[0]
	checkDecode(t, update, &translate.Request{PathValues: []string{"shelves/1/books/2"}, Query: "book.title=x&book.name=y", Body: []byte(`{"title":"t"}`)},
		&libraryv1.UpdateBookRequest{Book: &libraryv1.Book{Name: "shelves/1/books/2", Title: "t"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}}})
}

func TestDecodeAllowUnknownQuery(t *testing.T) {
	opts := translate.JSONOptions{StrictQuery: true, AllowUnknownQuery: true}
	list := libBindings(t, "ListBooks", opts)[0]
	checkDecode(t, list, &translate.Request{PathValues: []string{"shelves/1"}, Query: "nope=1&filter.nope=2&tags.x=3&page_size=2&utm_source=x"},
		&libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 2})
	// Known parameters are still checked.
	checkBadRequest(t, list, &translate.Request{PathValues: []string{"shelves/1"}, Query: "nope=1&page_size=ten"}, "page_size")
	checkBadRequest(t, list, &translate.Request{PathValues: []string{"shelves/1"}, Query: "parent=shelves/2"}, "parent")

	move := libBindings(t, "MoveBook", opts)[0]
	checkDecode(t, move, &translate.Request{PathValues: []string{"shelves/1/books/2"}, Query: "other_shelf=shelves/9", Body: []byte(`{"otherShelf":"shelves/3"}`)},
		&libraryv1.MoveBookRequest{Name: "shelves/1/books/2", OtherShelf: "shelves/3"})
}

func TestDecodePath(t *testing.T) {
	tests := []struct {
		name    string
		binding *translate.Binding
		values  []string
		want    proto.Message
	}{
		{"multi-segment", libBinding(t, "GetBook"), []string{"shelves/1/books/2"}, &libraryv1.GetBookRequest{Name: "shelves/1/books/2"}},
		{
			"multi-segment keeps %2F",
			libBinding(t, "GetBook"), []string{"shelves/a%2Fb/books/c%20d%2fe%3A"},
			&libraryv1.GetBookRequest{Name: "shelves/a%2Fb/books/c d%2fe:"},
		},
		{
			"single segment fully decoded",
			newBinding(t, "GetShelf", "GET", "/v2/shelves/{name}", "", "", translate.JSONOptions{}), []string{"a%2Fb%20c%3A%25+"},
			&libraryv1.GetShelfRequest{Name: "a/b c:%+"},
		},
		{"deep wildcard", libBinding(t, "GetAsset"), []string{"css/a%20b/c%2Fd.css"}, &libraryv1.GetAssetRequest{Path: "css/a b/c%2Fd.css"}},
		{"deep wildcard, empty", libBinding(t, "GetAsset"), []string{""}, &libraryv1.GetAssetRequest{}},
		{"unicode", libBinding(t, "GetShelf"), []string{"shelves/%C3%A9t%C3%A9"}, &libraryv1.GetShelfRequest{Name: "shelves/été"}},
		{
			"typed and nested variables",
			newBinding(t, "ListBooks", "GET", "/v2/{page_size}/{filter.genre}/{max_read_time}/{filter.min_pages}/{filter.author.name}/{show_unavailable}", "", "", translate.JSONOptions{}),
			[]string{"7", "GENRE_POETRY", "2s", "9", "Le%20Guin", "true"},
			&libraryv1.ListBooksRequest{
				PageSize: 7, MaxReadTime: durationpb.New(2 * time.Second), ShowUnavailable: true,
				Filter: &libraryv1.BookFilter{Genre: libraryv1.Genre_GENRE_POETRY, MinPages: wrapperspb.Int32(9), Author: &libraryv1.Author{Name: "Le Guin"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecode(t, tt.binding, &translate.Request{PathValues: tt.values}, tt.want)
		})
	}

	typed := newBinding(t, "ListBooks", "GET", "/v2/{page_size}/{filter.genre}", "", "", translate.JSONOptions{})
	for _, tt := range []struct {
		binding *translate.Binding
		values  []string
		field   string
	}{
		{libBinding(t, "GetBook"), []string{"shelves/1/books/%zz"}, "name"},
		{libBinding(t, "GetBook"), []string{"shelves/1/books/%4"}, "name"},
		{libBinding(t, "GetShelf"), []string{"shelves/%"}, "name"},
		{typed, []string{"x", "GENRE_POETRY"}, "page_size"},
		{typed, []string{"1", "NOPE"}, "filter.genre"},
		{newBinding(t, "UpdateBook", "GET", "/v2/{book.page_count}", "", "", translate.JSONOptions{}), []string{"%zz"}, "book.page_count"},
		{libBinding(t, "GetBook"), []string{"shelves/1/books/%ff"}, "name"},
		{newBinding(t, "GetShelf", "GET", "/v2/shelves/{name}", "", "", translate.JSONOptions{}), []string{"%c3%28"}, "name"},
	} {
		t.Run("bad "+strings.Join(tt.values, ","), func(t *testing.T) {
			checkBadRequest(t, tt.binding, &translate.Request{PathValues: tt.values}, tt.field)
		})
	}

	t.Run("wrong number of values", func(t *testing.T) {
		_, err := libBinding(t, "GetBook").DecodeRequest(&translate.Request{})
		var bre *translate.BadRequestError
		if err == nil || errors.As(err, &bre) {
			t.Errorf("err = %v, want a programming error, not a client one", err)
		}
	})
}

func TestDecodeBody(t *testing.T) {
	book := &libraryv1.Book{
		Title: "Dune", Author: &libraryv1.Author{Name: "Frank Herbert", Born: ts("1920-10-08T00:00:00Z")},
		Genre: libraryv1.Genre_GENRE_FICTION, Tags: []string{"sf", "classic"}, PriceCents: 1999,
		Attributes: map[string]string{"lang": "en"}, CatalogueCode: "C-1", ReadTime: durationpb.New(90 * time.Minute),
		Rating: wrapperspb.Double(4.5), CoverThumbnail: []byte{1, 2, 3},
	}
	bookJSON := `{"title":"Dune","author":{"name":"Frank Herbert","born":"1920-10-08T00:00:00Z"},"genre":"GENRE_FICTION",
		"tags":["sf","classic"],"priceCents":"1999","attributes":{"lang":"en"},"code":"C-1","readTime":"5400s",
		"rating":4.5,"coverThumbnail":"AQID"}`
	titled := func(name, title string) *libraryv1.Book { return &libraryv1.Book{Name: name, Title: title} }
	tests := []struct {
		name    string
		binding *translate.Binding
		req     translate.Request
		want    proto.Message
	}{
		{
			"body * with path",
			libBinding(t, "MoveBook"),
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(`{"otherShelf":"shelves/3"}`)},
			&libraryv1.MoveBookRequest{Name: "shelves/1/books/2", OtherShelf: "shelves/3"},
		},
		{
			"body * with proto names; the path wins over the body",
			libBinding(t, "MoveBook"),
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(`{"other_shelf":"shelves/3","name":"shelves/evil"}`)},
			&libraryv1.MoveBookRequest{Name: "shelves/1/books/2", OtherShelf: "shelves/3"},
		},
		{
			"body * empty",
			libBinding(t, "MoveBook"),
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(" \n")},
			&libraryv1.MoveBookRequest{Name: "shelves/1/books/2"},
		},
		{
			"body field with parent from the path and a query parameter",
			libBinding(t, "CreateBook"),
			translate.Request{PathValues: []string{"shelves/1"}, Query: "book_id=b1", Body: []byte(bookJSON)},
			&libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "b1", Book: book},
		},
		{
			// As grpc-gateway: the upstream sees has_book = true.
			"body field absent sets an empty message",
			libBinding(t, "CreateBook"),
			translate.Request{PathValues: []string{"shelves/1"}},
			&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{}},
		},
		{
			"body field of white space sets an empty message",
			libBinding(t, "CreateBook"),
			translate.Request{PathValues: []string{"shelves/1"}, Query: "book_id=b1", Body: []byte(" \r\n")},
			&libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "b1", Book: &libraryv1.Book{}},
		},
		{
			"scalar body field absent stays unset",
			newBinding(t, "MoveBook", "POST", "/v1/{name=shelves/*/books/*}:move", "other_shelf", "", translate.JSONOptions{}),
			translate.Request{PathValues: []string{"shelves/1/books/2"}},
			&libraryv1.MoveBookRequest{Name: "shelves/1/books/2"},
		},
		{
			"repeated body field absent stays empty",
			newBinding(t, "BatchGetBooks", "POST", "/v1/{parent=shelves/*}/books:batchGet", "names", "", translate.JSONOptions{}),
			translate.Request{PathValues: []string{"shelves/1"}},
			&libraryv1.BatchGetBooksRequest{Parent: "shelves/1"},
		},
		{
			"PATCH with no body: an empty book and an empty derived update_mask",
			libBindings(t, "UpdateBook", translate.JSONOptions{})[0],
			translate.Request{PathValues: []string{"shelves/1/books/2"}},
			&libraryv1.UpdateBookRequest{Book: titled("shelves/1/books/2", ""), UpdateMask: &fieldmaskpb.FieldMask{}},
		},
		{
			"body field empty object",
			libBinding(t, "CreateBook"),
			translate.Request{PathValues: []string{"shelves/1"}, Body: []byte(`{}`)},
			&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{}},
		},
		{
			"body field with update_mask from the query; the path sets book.name",
			libBindings(t, "UpdateBook", translate.JSONOptions{})[0],
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Query: "update_mask=title,author.name", Body: []byte(`{"title":"T","name":"shelves/evil/books/x"}`)},
			&libraryv1.UpdateBookRequest{Book: titled("shelves/1/books/2", "T"), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "author.name"}}},
		},
		{
			"body field absent but a path field inside it",
			libBindings(t, "UpdateBook", translate.JSONOptions{})[0],
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Query: "updateMask=pageCount"},
			&libraryv1.UpdateBookRequest{Book: titled("shelves/1/books/2", ""), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"page_count"}}},
		},
		{
			"PATCH without update_mask derives it from the body",
			libBindings(t, "UpdateBook", translate.JSONOptions{})[0],
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(`{"title":"T","author":{"name":"x"},"tags":["a"],"readTime":"1s"}`)},
			&libraryv1.UpdateBookRequest{
				Book:       &libraryv1.Book{Name: "shelves/1/books/2", Title: "T", Author: &libraryv1.Author{Name: "x"}, Tags: []string{"a"}, ReadTime: durationpb.New(time.Second)},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"author.name", "read_time", "tags", "title"}},
			},
		},
		{
			"PUT derives no update_mask",
			libBindings(t, "UpdateBook", translate.JSONOptions{})[1],
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(`{"book":{"title":"T"}}`)},
			&libraryv1.UpdateBookRequest{Book: titled("shelves/1/books/2", "T")},
		},
		{
			"body * with a nested path field",
			libBindings(t, "UpdateBook", translate.JSONOptions{})[1],
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(`{"book":{"title":"T"},"updateMask":"title,pageCount"}`)},
			&libraryv1.UpdateBookRequest{Book: titled("shelves/1/books/2", "T"), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title", "page_count"}}},
		},
		{
			"HttpBody field takes the raw body",
			libBinding(t, "UploadBookText"),
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte("It was a dark {and stormy night"), ContentType: "text/plain; charset=utf-8"},
			&libraryv1.UploadBookTextRequest{Name: "shelves/1/books/2", Text: &httpbody.HttpBody{ContentType: "text/plain; charset=utf-8", Data: []byte("It was a dark {and stormy night")}},
		},
		{
			"auto-mapped POST",
			newBinding(t, "Ping", "POST", "/example.library.v1.LibraryService/Ping", "*", "", translate.JSONOptions{}),
			translate.Request{Body: []byte(`{"message":"hi"}`)},
			&libraryv1.PingRequest{Message: "hi"},
		},
		{
			"repeated body field",
			newBinding(t, "BatchGetBooks", "POST", "/v1/{parent=shelves/*}/books:batchGet", "names", "", translate.JSONOptions{}),
			translate.Request{PathValues: []string{"shelves/1"}, Body: []byte(` ["a", "b"] `)},
			&libraryv1.BatchGetBooksRequest{Parent: "shelves/1", Names: []string{"a", "b"}},
		},
		{
			"scalar body field",
			newBinding(t, "MoveBook", "POST", "/v1/{name=shelves/*/books/*}:move", "other_shelf", "", translate.JSONOptions{}),
			translate.Request{PathValues: []string{"shelves/1/books/2"}, Body: []byte(`"shelves/9"`)},
			&libraryv1.MoveBookRequest{Name: "shelves/1/books/2", OtherShelf: "shelves/9"},
		},
		{
			"discard unknown",
			libBindings(t, "CreateBook", translate.JSONOptions{DiscardUnknown: true})[0],
			translate.Request{PathValues: []string{"shelves/1"}, Body: []byte(`{"nope":{"deep":[1,2]},"title":"T"}`)},
			&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{Title: "T"}},
		},
		{
			"Any in the body resolved through the resolver",
			libBinding(t, "CreateBook"),
			translate.Request{PathValues: []string{"shelves/1"}, Body: []byte(`{"extra":{"@type":"type.googleapis.com/example.library.v1.Shelf","name":"shelves/x"}}`)},
			&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{Extra: mustAnyT(&libraryv1.Shelf{Name: "shelves/x"})}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecode(t, tt.binding, &tt.req, tt.want)
		})
	}
}

func mustAnyT(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// nestedValue is a google.protobuf.Value of n nested lists, in an Any.
func nestedValue(n int) string {
	return `{"extra":{"@type":"type.googleapis.com/google.protobuf.Value","value":` +
		strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`
}

func TestDecodeBodyErrors(t *testing.T) {
	create := libBinding(t, "CreateBook")
	move := libBinding(t, "MoveBook")
	update := libBindings(t, "UpdateBook", translate.JSONOptions{StrictQuery: true})[0]
	batch := newBinding(t, "BatchGetBooks", "POST", "/v1/{parent=shelves/*}/books:batchGet", "names", "", translate.JSONOptions{})
	_ = structpb.NewNullValue() // google.protobuf.Value must be linked in for nestedValue
	tests := []struct {
		name    string
		binding *translate.Binding
		values  []string
		query   string
		body    string
		field   string
	}{
		{"malformed JSON", create, []string{"shelves/1"}, "", `not json`, "book"},
		{"truncated JSON", create, []string{"shelves/1"}, "", `{"title": "x",`, "book"},
		{"missing value", create, []string{"shelves/1"}, "", `{"title": }`, "book.title"},
		{"trailing garbage", create, []string{"shelves/1"}, "", `{"title": "x"} {}`, "book"},
		{"wrong JSON type", create, []string{"shelves/1"}, "", `{"title":1}`, "book.title"},
		{"wrong JSON type, proto name", create, []string{"shelves/1"}, "", `{"page_count":"many"}`, "book.page_count"},
		{"wrong type nested", create, []string{"shelves/1"}, "", `{"author":{"name":5}}`, "book.author.name"},
		{"wrong type in a list", create, []string{"shelves/1"}, "", "{\"reviews\":[{\"stars\":1},\n {\"stars\":\"x\"}]}", "book.reviews[1].stars"},
		{"wrong type after an escaped key", create, []string{"shelves/1"}, "", `{"ti\u0074le":"ok","tags":["a",2]}`, "book.tags[1]"},
		{"bad int64", create, []string{"shelves/1"}, "", `{"priceCents":"12x"}`, "book.priceCents"},
		{"bad enum", create, []string{"shelves/1"}, "", `{"genre":"GENRE_NOPE"}`, "book.genre"},
		{"bad timestamp", create, []string{"shelves/1"}, "", `{"publishTime":"yesterday"}`, "book.publishTime"},
		{"bad duration", create, []string{"shelves/1"}, "", `{"readTime":"5"}`, "book.readTime"},
		{"bad base64", create, []string{"shelves/1"}, "", `{"coverThumbnail":"!!"}`, "book.coverThumbnail"},
		{"bad map value", create, []string{"shelves/1"}, "", `{"attributes":{"k":1}}`, "book.attributes.k"},
		{"unknown field", create, []string{"shelves/1"}, "", `{"title":"x","nope":1}`, "book.nope"},
		{"unknown field with unicode before it", create, []string{"shelves/1"}, "", `{"title":"été","nope":1}`, "book.nope"},
		{"unknown nested field", create, []string{"shelves/1"}, "", `{"author":{"nope":1}}`, "book.author.nope"},
		{"unresolvable Any", create, []string{"shelves/1"}, "", `{"extra":{"@type":"type.googleapis.com/no.Such"}}`, "book.extra.@type"},
		// book and extra are two levels: the rest is the first list past 64.
		{"too deep", create, []string{"shelves/1"}, "", nestedValue(100), "book.extra.value" + strings.Repeat("[0]", 62)},
		{"whole body: wrong type", move, []string{"shelves/1/books/2"}, "", `{"other_shelf": 1}`, "other_shelf"},
		{"whole body: unknown field", move, []string{"shelves/1/books/2"}, "", `{"otherShelf":"a","x":{"y":1}}`, "x"},
		{"whole body: not an object", move, []string{"shelves/1/books/2"}, "", `[1]`, ""},
		{"query with body *", move, []string{"shelves/1/books/2"}, "other_shelf=x", `{}`, "other_shelf"},
		{"query with body * and no body", move, []string{"shelves/1/books/2"}, "page=1", ``, "page"},
		{"query setting the body field", update, []string{"shelves/1/books/2"}, "book.title=x", `{}`, "book.title"},
		{"query setting the path field", update, []string{"shelves/1/books/2"}, "book.name=x", `{}`, "book.name"},
		{"repeated body field: wrong element", batch, []string{"shelves/1"}, "", `["a", 2]`, "names[1]"},
		{"repeated body field: not a list", batch, []string{"shelves/1"}, "", `"a"`, "names"},
		{"repeated body field: smuggled field", batch, []string{"shelves/1"}, "", `["a"], "parent": "shelves/2"`, "names"},
		{"repeated body field: malformed", batch, []string{"shelves/1"}, "", `["a"`, "names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBadRequest(t, tt.binding, &translate.Request{PathValues: tt.values, Query: tt.query, Body: []byte(tt.body)}, tt.field)
		})
	}

	// Nesting within the limit is fine.
	checkDecode(t, create, &translate.Request{PathValues: []string{"shelves/1"}, Body: []byte(nestedValue(20))},
		&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: &libraryv1.Book{Extra: mustAnyT(nestedList(20))}})
}

func nestedList(n int) *structpb.Value {
	v := structpb.NewListValue(&structpb.ListValue{})
	for i := 1; i < n; i++ {
		v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
	}
	return v
}

// TestDecodeRequestIsRepeatable checks that a binding keeps no state from
// one request to the next.
func TestDecodeRequestIsRepeatable(t *testing.T) {
	b := libBinding(t, "ListBooks")
	first := decode(t, b, &translate.Request{PathValues: []string{"shelves/1"}, Query: "tags=a&page_size=3"}, &libraryv1.ListBooksRequest{})
	second := decode(t, b, &translate.Request{PathValues: []string{"shelves/2"}, Query: "tags=b"}, &libraryv1.ListBooksRequest{})
	if want := (&libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: 3, Tags: []string{"a"}}); !proto.Equal(first, want) {
		t.Errorf("first = %v", first)
	}
	if want := (&libraryv1.ListBooksRequest{Parent: "shelves/2", Tags: []string{"b"}}); !proto.Equal(second, want) {
		t.Errorf("second = %v", second)
	}
}

func fullBook() *libraryv1.Book {
	return &libraryv1.Book{
		Name: "shelves/1/books/2", Title: "Dune",
		Author: &libraryv1.Author{Name: "Frank Herbert", Born: ts("1920-10-08T00:00:00Z")},
		Isbn:   "978-0441013593", Genre: libraryv1.Genre_GENRE_SCIENCE, Tags: []string{"sf", "classic"},
		PageCount: 412, PriceCents: 9007199254740993, PublishTime: ts("1965-08-01T12:30:00.5Z"),
		ReadTime: durationpb.New(1500 * time.Millisecond), Rating: wrapperspb.Double(4.5),
		Attributes: map[string]string{"lang": "en", "format": "paperback"}, CatalogueCode: "C-1",
		Extra: mustAnyT(&libraryv1.Shelf{Name: "shelves/1", BookCount: 3}), Available: true,
		CoverThumbnail: []byte{0xfb, 0xff, 0x01}, UpdateTime: ts("2024-01-02T03:04:05Z"),
		Reviews: []*libraryv1.Review{{Reader: "ann", Stars: 5, Text: "great"}, {Reader: "bob", Stars: 2}},
	}
}

func encode(t *testing.T, b *translate.Binding, m proto.Message) *translate.Response {
	t.Helper()
	wire, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.EncodeResponse(wire)
	if err != nil {
		t.Fatalf("EncodeResponse: %v", err)
	}
	return resp
}

func TestEncodeResponseJSON(t *testing.T) {
	book := fullBook()
	tests := []struct {
		name string
		opts translate.JSONOptions
		msg  proto.Message
		want map[string]any
	}{
		{
			name: "defaults",
			msg:  book,
			want: map[string]any{
				"name": "shelves/1/books/2", "title": "Dune",
				"author": map[string]any{"name": "Frank Herbert", "born": "1920-10-08T00:00:00Z"},
				"isbn":   "978-0441013593", "genre": "GENRE_SCIENCE", "tags": []any{"sf", "classic"},
				"pageCount": 412.0, "priceCents": "9007199254740993", "publishTime": "1965-08-01T12:30:00.500Z",
				"readTime": "1.500s", "rating": 4.5, "attributes": map[string]any{"lang": "en", "format": "paperback"},
				"code":      "C-1",
				"extra":     map[string]any{"@type": "type.googleapis.com/example.library.v1.Shelf", "name": "shelves/1", "bookCount": 3.0},
				"available": true, "coverThumbnail": "+/8B", "updateTime": "2024-01-02T03:04:05Z",
				"reviews": []any{map[string]any{"reader": "ann", "stars": 5.0, "text": "great"}, map[string]any{"reader": "bob", "stars": 2.0}},
			},
		},
		{
			name: "proto names and enum numbers",
			opts: translate.JSONOptions{UseProtoNames: true, UseEnumNumbers: true},
			msg:  &libraryv1.Book{Genre: libraryv1.Genre_GENRE_POETRY, CatalogueCode: "X", PriceCents: -1, PageCount: 3},
			want: map[string]any{"genre": 4.0, "catalogue_code": "X", "price_cents": "-1", "page_count": 3.0},
		},
		{
			name: "emit unpopulated",
			opts: translate.JSONOptions{EmitUnpopulated: true},
			msg:  &libraryv1.Book{Title: "T"},
			want: map[string]any{
				"name": "", "title": "T", "author": nil, "isbn": "", "genre": "GENRE_UNSPECIFIED", "tags": []any{},
				"pageCount": 0.0, "priceCents": "0", "publishTime": nil, "readTime": nil, "rating": nil,
				"attributes": map[string]any{}, "code": "", "extra": nil, "available": false, "coverThumbnail": "",
				"updateTime": nil, "reviews": []any{},
			},
		},
		{
			name: "empty message",
			msg:  &libraryv1.Book{},
			want: map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := libBindings(t, "GetBook", tt.opts)[0]
			resp := encode(t, b, tt.msg)
			if resp.ContentType != "application/json" {
				t.Errorf("ContentType = %q", resp.ContentType)
			}
			if got := decodeJSON(t, resp.Body); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EncodeResponse = %s\nwant %v", resp.Body, tt.want)
			}
		})
	}
}

// TestJSONRoundTrip renders a book as the response of one method and reads it
// back as the body of another.
func TestJSONRoundTrip(t *testing.T) {
	book := fullBook()
	for _, opts := range []translate.JSONOptions{{}, {UseProtoNames: true, UseEnumNumbers: true, EmitUnpopulated: true}} {
		out := encode(t, libBindings(t, "GetBook", opts)[0], book)
		create := libBindings(t, "CreateBook", opts)[0]
		got := decode(t, create, &translate.Request{PathValues: []string{"shelves/1"}, Body: out.Body}, &libraryv1.CreateBookRequest{})
		if want := (&libraryv1.CreateBookRequest{Parent: "shelves/1", Book: book}); !proto.Equal(got, want) {
			t.Errorf("%+v: round trip\n%v\nwant\n%v", opts, prototext.Format(got), prototext.Format(want))
		}
	}
}

func TestEncodeResponseAnyNeedsResolver(t *testing.T) {
	b, err := translate.NewBinding(libMethod(t, "GetBook"), "GET", "/v1/{name=shelves/*/books/*}", "", "", translate.JSONOptions{}, new(protoregistry.Types))
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := proto.Marshal(&libraryv1.Book{Extra: mustAnyT(&libraryv1.Shelf{Name: "s"})})
	if _, err := b.EncodeResponse(wire); err == nil {
		t.Error("an Any the resolver does not know was rendered")
	}
	wire, _ = proto.Marshal(&libraryv1.Book{Title: "no any"})
	if resp, err := b.EncodeResponse(wire); err != nil || string(resp.Body) == "" {
		t.Errorf("EncodeResponse = %v, %v", resp, err)
	}
}

func TestEncodeResponseBody(t *testing.T) {
	title := libBinding(t, "GetBookTitle")
	tests := []struct {
		name        string
		binding     *translate.Binding
		msg         proto.Message
		body        string
		contentType string
	}{
		{"response_body scalar", title, &libraryv1.BookTitle{Name: "n", Title: "Dune \"2\""}, `"Dune \"2\""`, "application/json"},
		{"response_body scalar unset", title, &libraryv1.BookTitle{Name: "n"}, `""`, "application/json"},
		{
			"response_body scalar with proto names",
			libBindings(t, "GetBookTitle", translate.JSONOptions{UseProtoNames: true})[0],
			&libraryv1.BookTitle{Title: "T"}, `"T"`, "application/json",
		},
		{
			"response_body repeated",
			newBinding(t, "ListBooks", "GET", "/v1/{parent=shelves/*}/books", "", "books", translate.JSONOptions{}),
			&libraryv1.ListBooksResponse{Books: []*libraryv1.Book{{Title: "a"}, {PriceCents: 5}}, NextPageToken: "x"},
			`[{"title":"a"},{"priceCents":"5"}]`, "application/json",
		},
		{
			"response_body repeated unset",
			newBinding(t, "ListBooks", "GET", "/v1/{parent=shelves/*}/books", "", "books", translate.JSONOptions{}),
			&libraryv1.ListBooksResponse{NextPageToken: "x"}, `[]`, "application/json",
		},
		{
			"response_body int64",
			newBinding(t, "GetAsset", "GET", "/v1/assets/{path=**}", "", "size", translate.JSONOptions{}),
			&libraryv1.Asset{Size: 1 << 60}, `"1152921504606846976"`, "application/json",
		},
		{
			"response_body message",
			newBinding(t, "Ping", "POST", "/ping", "*", "time", translate.JSONOptions{}),
			&libraryv1.PingResponse{Message: "m", Time: ts("2020-01-01T00:00:00Z")}, `"2020-01-01T00:00:00Z"`, "application/json",
		},
		{
			"HttpBody response",
			libBinding(t, "DownloadBook"),
			&httpbody.HttpBody{ContentType: "text/plain; charset=utf-8", Data: []byte("Call me Ishmael.\x00\xff")},
			"Call me Ishmael.\x00\xff", "text/plain; charset=utf-8",
		},
		{
			"HttpBody response without a content type",
			libBinding(t, "DownloadBook"),
			&httpbody.HttpBody{Data: []byte{1, 2}}, "\x01\x02", "application/octet-stream",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := encode(t, tt.binding, tt.msg)
			if resp.ContentType != tt.contentType {
				t.Errorf("ContentType = %q, want %q", resp.ContentType, tt.contentType)
			}
			got := string(resp.Body)
			if tt.contentType == "application/json" {
				got = compactJSON(t, resp.Body)
			}
			if got != tt.body {
				t.Errorf("Body = %q, want %q", got, tt.body)
			}
		})
	}

	t.Run("corrupt upstream bytes", func(t *testing.T) {
		if _, err := title.EncodeResponse([]byte{0xff, 0xff, 0xff}); err == nil {
			t.Error("EncodeResponse accepted corrupt wire bytes")
		}
	})
}

// compactJSON normalizes protojson's deliberately unstable spacing.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := jsonUnmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	out, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// dynamicSchema is a schema compiled at run time, with its own resolver:
// nothing of it is in the global registry.
const dynamicProto = `syntax = "proto3";
package test.dyn.v1;

import "google/protobuf/any.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Color {
  COLOR_UNSPECIFIED = 0;
  RED = 1;
  BLUE = 2;
}

message Inner { string id = 1; }

message Req {
  string name = 1;
  repeated string names = 2;
  Inner inner = 3;
  map<int32, Color> colors = 4;
  uint64 u64 = 5;
  uint32 u32 = 6;
  sint32 s32 = 7;
  fixed64 f64 = 8;
  float f = 9;
  sfixed32 sf32 = 10;
  Color color = 11;
  map<bool, string> flags = 12;
  map<string, Inner> inners = 13;
  repeated google.protobuf.Timestamp times = 14;
  optional string opt = 15;
  oneof choice {
    string a = 16;
    int32 b = 17;
  }
  repeated Inner items = 18;
  google.protobuf.Any any = 19;
  google.protobuf.StringValue sv = 20;
  google.protobuf.BoolValue bv = 21;
  google.protobuf.BytesValue bytes_v = 22;
  google.protobuf.UInt64Value u64v = 23;
}

message Resp {
  string out = 1;
  optional string opt = 2;
  oneof choice { string a = 3; }
  Inner inner = 4;
  repeated Inner items = 5;
  map<string, int64> counts = 6;
  google.protobuf.Any any = 7;
}

service S {
  rpc M(Req) returns (Resp);
}
`

func loadDynamic(t *testing.T) (protoreflect.MethodDescriptor, *protoregistry.Types) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dyn.proto"), []byte(dynamicProto), 0o644); err != nil {
		t.Fatal(err)
	}
	schema, err := descriptors.Load(context.Background(), []descriptors.Source{{Proto: &descriptors.ProtoSource{ImportPaths: []string{dir}, Files: []string{"dyn.proto"}}}})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := schema.Service("test.dyn.v1.S")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByName("test.dyn.v1.Inner"); err == nil {
		t.Fatal("the dynamic schema leaked into the global registry")
	}
	return sd.Methods().ByName("M"), schema.Types()
}

// dynText renders a dynamic message for comparison.
func dynDecode(t *testing.T, b *translate.Binding, md protoreflect.MessageDescriptor, r *translate.Request) string {
	t.Helper()
	wire, err := b.DecodeRequest(r)
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(wire, m); err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(prototext.MarshalOptions{}.Format(m)), " ")
}

func TestDynamicSchema(t *testing.T) {
	md, types := loadDynamic(t)
	compile := func(path, body, responseBody string) (*translate.Binding, error) {
		return translate.NewBinding(md, "POST", path, body, responseBody, translate.JSONOptions{StrictQuery: true}, types)
	}

	for _, tt := range []struct{ path, body, responseBody, want string }{
		{"/v1/{names}", "", "", "repeated field"},
		{"/v1/{colors}", "", "", "repeated field"},
		{"/v1/{times}", "", "", "repeated field"},
		{"/v1/{inner}", "", "", "message field"},
		{"/v1/{any}", "", "", "message field"},
		{"/v1/{name.x}", "", "", "not a singular message"},
		{"/v1/{items.id}", "", "", "not a singular message"},
		{"/v1/{inners.id}", "", "", "not a singular message"},
		{"/v1/{nope}", "", "", `no field "nope"`},
		{"/v1/x", "nope", "", `body: no field "nope"`},
		{"/v1/x", "", "nope", `response_body: no field "nope"`},
	} {
		if _, err := compile(tt.path, tt.body, tt.responseBody); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewBinding(%s, body %q, response_body %q) = %v, want an error about %q", tt.path, tt.body, tt.responseBody, err, tt.want)
		}
	}

	b, err := compile("/v1/{name}/{inner.id}/{color}/{opt}/{a}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ values, query, want string }{
		{"n,i,RED,o,x", "", `name:"n" inner:{id:"i"} color:RED opt:"o" a:"x"`},
		{"n,i,2,o,x", "u64=18446744073709551615&u32=4294967295&s32=-3&f64=7&f=1.5&sf32=-7",
			`name:"n" inner:{id:"i"} u64:18446744073709551615 u32:4294967295 s32:-3 f64:7 f:1.5 sf32:-7 color:BLUE opt:"o" a:"x"`},
		{"n,i,0,,x", "colors[1]=RED&colors[-2]=2&flags[true]=yes&flags[false]=no",
			`name:"n" inner:{id:"i"} colors:{key:-2 value:BLUE} colors:{key:1 value:RED} flags:{key:false value:"no"} flags:{key:true value:"yes"} opt:"" a:"x"`},
		{"n,i,0,o,x", "times=2020-01-01T00:00:00Z&times=1970-01-01T00:00:01Z",
			`name:"n" inner:{id:"i"} times:{seconds:1577836800} times:{seconds:1} opt:"o" a:"x"`},
	} {
		got := dynDecode(t, b, md.Input(), &translate.Request{PathValues: strings.Split(tt.values, ","), Query: tt.query})
		if got != tt.want {
			t.Errorf("%s ? %s:\n got %s\nwant %s", tt.values, tt.query, got, tt.want)
		}
	}
	for _, tt := range []struct{ query, field string }{
		{"colors[x]=RED", "colors[x]"},
		{"colors[1]=GREEN", "colors[1]"},
		{"flags[maybe]=x", "flags[maybe]"},
		{"inners[k]=v", "inners[k]"},
		{"u32=-1", "u32"},
		{"u64=1e3", "u64"},
		{"f=1e40", "f"},
		{"s32=2147483648", "s32"},
		{"any=x", "any"},
		{"items=x", "items"},
		{"b=1", "b"}, // the other member of the oneof the path sets through "a"
	} {
		checkBadRequest(t, b, &translate.Request{PathValues: []string{"n", "i", "RED", "o", "x"}, Query: tt.query}, tt.field)
	}
	// Two members of one oneof in the query: whichever comes second is refused.
	plain, err := compile("/v1/x", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"a=x&b=1", "b=1&a=x"} {
		checkBadRequest(t, plain, &translate.Request{Query: q}, "b")
	}
	if got := dynDecode(t, plain, md.Input(), &translate.Request{Query: "b=1&inner.id=z"}); got != `inner:{id:"z"} b:1` {
		t.Errorf("oneof member alone: %s", got)
	}

	// Wrappers take their value's text form, whatever characters it holds.
	for _, tt := range []struct{ query, want string }{
		{"sv=%01%5C%22%C3%A9", `sv:{value:"\x01\\\"é"}`},
		{"sv=", `sv:{}`},
		{"bv=true", `bv:{value:true}`},
		{"bv=1", `bv:{value:true}`},
		{"bv=false", `bv:{}`},
		{"bytes_v=AQI", `bytes_v:{value:"\x01\x02"}`},
		{"bytesV=-_8", `bytes_v:{value:"\xfb\xff"}`},
		{"u64v=18446744073709551615", `u64v:{value:18446744073709551615}`},
	} {
		if got := dynDecode(t, plain, md.Input(), &translate.Request{Query: tt.query}); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.query, got, tt.want)
		}
	}
	for _, q := range []string{"bv=yes", "u64v=-1", "bytes_v=!"} {
		checkBadRequest(t, plain, &translate.Request{Query: q}, strings.Split(q, "=")[0])
	}

	// An Any of a type only the schema knows, both ways.
	inner := dynamicpb.NewMessage(md.Input().Fields().ByName("inner").Message())
	inner.Set(inner.Descriptor().Fields().ByName("id"), protoreflect.ValueOfString("i1"))
	innerWire, _ := proto.Marshal(inner)
	respMsg := dynamicpb.NewMessage(md.Output())
	respMsg.Set(md.Output().Fields().ByName("any"), protoreflect.ValueOfMessage((&anypb.Any{TypeUrl: "type.googleapis.com/test.dyn.v1.Inner", Value: innerWire}).ProtoReflect()))
	respWire, _ := proto.Marshal(respMsg)
	whole, err := compile("/v1/x", "*", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := whole.EncodeResponse(respWire)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := compactJSON(t, resp.Body), `{"any":{"@type":"type.googleapis.com/test.dyn.v1.Inner","id":"i1"}}`; got != want {
		t.Errorf("Any response = %s, want %s", got, want)
	}
	got := dynDecode(t, whole, md.Input(), &translate.Request{Body: []byte(`{"any":{"@type":"type.googleapis.com/test.dyn.v1.Inner","id":"i1"}}`)})
	if !strings.Contains(got, `type_url:"type.googleapis.com/test.dyn.v1.Inner"`) {
		t.Errorf("Any request = %s", got)
	}
	global, _ := translate.NewBinding(md, "POST", "/v1/x", "*", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
	if _, err := global.EncodeResponse(respWire); err == nil {
		t.Error("the global registry resolved a type of the dynamic schema")
	}

	// response_body on fields with presence.
	for _, tt := range []struct {
		field string
		set   func(m *dynamicpb.Message)
		want  string
	}{
		{"opt", func(m *dynamicpb.Message) {}, "null"},
		{"opt", func(m *dynamicpb.Message) { m.Set(md.Output().Fields().ByName("opt"), protoreflect.ValueOfString("")) }, `""`},
		{"a", func(m *dynamicpb.Message) {}, "null"},
		{"a", func(m *dynamicpb.Message) { m.Set(md.Output().Fields().ByName("a"), protoreflect.ValueOfString("x")) }, `"x"`},
		{"out", func(m *dynamicpb.Message) {}, `""`},
		{"counts", func(m *dynamicpb.Message) {
			m.Mutable(md.Output().Fields().ByName("counts")).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfInt64(5))
		}, `{"k":"5"}`},
		{"inner", func(m *dynamicpb.Message) {}, `{}`},
	} {
		rb, err := compile("/v1/x", "", tt.field)
		if err != nil {
			t.Fatal(err)
		}
		m := dynamicpb.NewMessage(md.Output())
		tt.set(m)
		wire, _ := proto.Marshal(m)
		resp, err := rb.EncodeResponse(wire)
		if err != nil {
			t.Fatalf("response_body %s: %v", tt.field, err)
		}
		if got := compactJSON(t, resp.Body); got != tt.want {
			t.Errorf("response_body %s = %s, want %s", tt.field, got, tt.want)
		}
	}
}

// TestBindingConcurrentUse runs one binding from many goroutines; run it
// with -race.
func TestBindingConcurrentUse(t *testing.T) {
	b := libBinding(t, "CreateBook")
	body := []byte(`{"title":"T","tags":["a","b"],"attributes":{"k":"v"}}`)
	want := &libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: "x", Book: &libraryv1.Book{Title: "T", Tags: []string{"a", "b"}, Attributes: map[string]string{"k": "v"}}}
	wire, _ := proto.Marshal(want.Book)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				out, err := b.DecodeRequest(&translate.Request{PathValues: []string{"shelves/1"}, Query: "book_id=x", Body: body})
				if err == nil {
					got := &libraryv1.CreateBookRequest{}
					if err = proto.Unmarshal(out, got); err == nil && !proto.Equal(got, want) {
						err = errors.New("decoded " + prototext.Format(got))
					}
				}
				if err == nil {
					_, err = b.EncodeResponse(wire)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
