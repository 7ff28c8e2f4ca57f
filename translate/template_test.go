package translate_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rosettagw/rosetta/translate"
)

func lit(s string) translate.Segment { return translate.Segment{Kind: translate.Literal, Text: s} }

var (
	star = translate.Segment{Kind: translate.Wildcard}
	deep = translate.Segment{Kind: translate.DeepWildcard}
)

func variable(path string, start, end int) translate.Variable {
	return translate.Variable{FieldPath: strings.Split(path, "."), Start: start, End: end}
}

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		src      string
		segments []translate.Segment
		vars     []translate.Variable
		verb     string
		canon    string // String(); "" means src itself
	}{
		{src: "/v1", segments: []translate.Segment{lit("v1")}},
		{src: "/v1/shelves", segments: []translate.Segment{lit("v1"), lit("shelves")}},
		{src: "/v1/*", segments: []translate.Segment{lit("v1"), star}},
		{src: "/v1/**", segments: []translate.Segment{lit("v1"), deep}},
		{src: "/v1/*/x/**", segments: []translate.Segment{lit("v1"), star, lit("x"), deep}},
		{src: "/v1/a.b-c~d_e", segments: []translate.Segment{lit("v1"), lit("a.b-c~d_e")}},
		{
			src:      "/v1/{name}",
			segments: []translate.Segment{lit("v1"), star},
			vars:     []translate.Variable{variable("name", 1, 2)},
		},
		{
			src:      "/v1/{name=*}",
			segments: []translate.Segment{lit("v1"), star},
			vars:     []translate.Variable{variable("name", 1, 2)},
			canon:    "/v1/{name}",
		},
		{
			src:      "/v1/{name=shelves/*}",
			segments: []translate.Segment{lit("v1"), lit("shelves"), star},
			vars:     []translate.Variable{variable("name", 1, 3)},
		},
		{
			src:      "/v1/{name=shelves/*/books/*}",
			segments: []translate.Segment{lit("v1"), lit("shelves"), star, lit("books"), star},
			vars:     []translate.Variable{variable("name", 1, 5)},
		},
		{
			src:      "/v1/{book.name=shelves/*/books/*}",
			segments: []translate.Segment{lit("v1"), lit("shelves"), star, lit("books"), star},
			vars:     []translate.Variable{variable("book.name", 1, 5)},
		},
		{
			src:      "/v1/{a.b.c_d.E9}/x",
			segments: []translate.Segment{lit("v1"), star, lit("x")},
			vars:     []translate.Variable{variable("a.b.c_d.E9", 1, 2)},
		},
		{
			src:      "/v1/assets/{path=**}",
			segments: []translate.Segment{lit("v1"), lit("assets"), deep},
			vars:     []translate.Variable{variable("path", 2, 3)},
		},
		{
			src:      "/v1/{name=pattern/*/with/**}",
			segments: []translate.Segment{lit("v1"), lit("pattern"), star, lit("with"), deep},
			vars:     []translate.Variable{variable("name", 1, 5)},
		},
		{
			src:      "/v1/{parent=shelves/*}/books:batchGet",
			segments: []translate.Segment{lit("v1"), lit("shelves"), star, lit("books")},
			vars:     []translate.Variable{variable("parent", 1, 3)},
			verb:     "batchGet",
		},
		{
			src:      "/v1/{name=shelves/*/books/*}:move",
			segments: []translate.Segment{lit("v1"), lit("shelves"), star, lit("books"), star},
			vars:     []translate.Variable{variable("name", 1, 5)},
			verb:     "move",
		},
		{
			src:      "/v1/{path=**}:download",
			segments: []translate.Segment{lit("v1"), deep},
			vars:     []translate.Variable{variable("path", 1, 2)},
			verb:     "download",
		},
		{src: "/v1/*:verb", segments: []translate.Segment{lit("v1"), star}, verb: "verb"},
		{src: "/v1:verb", segments: []translate.Segment{lit("v1")}, verb: "verb"},
		{
			src:      "/v1/{shelf}/{book=books/*}/{rest=**}",
			segments: []translate.Segment{lit("v1"), star, lit("books"), star, deep},
			vars: []translate.Variable{
				variable("shelf", 1, 2), variable("book", 2, 4), variable("rest", 4, 5),
			},
		},
		{
			// Two variables that share a prefix are different fields.
			src:      "/v1/{book.name}/{book.title}",
			segments: []translate.Segment{lit("v1"), star, star},
			vars:     []translate.Variable{variable("book.name", 1, 2), variable("book.title", 2, 3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tmpl, err := translate.ParseTemplate(tt.src)
			if err != nil {
				t.Fatalf("ParseTemplate: %v", err)
			}
			if tmpl.Source != tt.src {
				t.Errorf("Source = %q, want %q", tmpl.Source, tt.src)
			}
			if !reflect.DeepEqual(tmpl.Segments, tt.segments) {
				t.Errorf("Segments = %+v, want %+v", tmpl.Segments, tt.segments)
			}
			if len(tmpl.Variables) != 0 || len(tt.vars) != 0 {
				if !reflect.DeepEqual(tmpl.Variables, tt.vars) {
					t.Errorf("Variables = %+v, want %+v", tmpl.Variables, tt.vars)
				}
			}
			if tmpl.Verb != tt.verb {
				t.Errorf("Verb = %q, want %q", tmpl.Verb, tt.verb)
			}
			canon := tt.canon
			if canon == "" {
				canon = tt.src
			}
			if got := tmpl.String(); got != canon {
				t.Errorf("String() = %q, want %q", got, canon)
			}
			// The canonical form parses back to the same template.
			again, err := translate.ParseTemplate(tmpl.String())
			if err != nil {
				t.Fatalf("ParseTemplate(String()): %v", err)
			}
			if !reflect.DeepEqual(again.Segments, tmpl.Segments) || !reflect.DeepEqual(again.Variables, tmpl.Variables) || again.Verb != tmpl.Verb {
				t.Errorf("round trip: %+v, want %+v", again, tmpl)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct {
		src  string
		want string // a fragment of the error
	}{
		{"", "must start with '/'"},
		{"v1/shelves", "must start with '/'"},
		{"/", "empty segment"},
		{"/v1/", "empty segment"},
		{"/v1//shelves", "unexpected"},
		{"/v1/**/x", "'**' must be the last segment"},
		{"/v1/{path=**}/x", "'**' must be the last segment"},
		{"/v1/**/**", "'**' must be the last segment"},
		{"/v1/***", "unexpected"},
		{"/v1/a*", "unexpected"},
		{"/v1/{a={b}}", "nested variable"},
		{"/v1/{a=x/{b}}", "nested variable"},
		{"/v1/{name", "unterminated"},
		{"/v1/{name=shelves/*", "unterminated"},
		{"/v1/{name=shelves/*:move", "unterminated"},
		{"/v1/{name=}", "unexpected \"}\""},
		{"/v1/{}", "invalid field path"},
		{"/v1/{1abc}", "invalid field path"},
		{"/v1/{a-b}", "invalid field path"},
		{"/v1/{a..b}", "invalid field path"},
		{"/v1/{a.}", "invalid field path"},
		{"/v1/{.a}", "invalid field path"},
		{"/v1/{a b}", "invalid field path"},
		{"/v1/{a/b}", "invalid field path"},
		{"/v1/{name}/{name}", "bound twice"},
		{"/v1/{book.name}/x/{book.name=*}", "bound twice"},
		{"/v1/shelves:", "invalid verb"},
		{"/v1/{name}:", "invalid verb"},
		{"/v1/x:a/b", "invalid verb"},
		{"/v1/x:a:b", "invalid verb"},
		{"/v1/x:{a}", "invalid verb"},
		{"/v1/x}", "unexpected"},
		{"/v1/x=y", "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tmpl, err := translate.ParseTemplate(tt.src)
			if err == nil {
				t.Fatalf("ParseTemplate(%q) = %+v, want an error", tt.src, tmpl)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.src) {
				t.Errorf("error %q does not quote the template", err)
			}
		})
	}
}
