package translate_test

import (
	"testing"

	"github.com/rosettagw/rosetta/translate"
)

// FuzzParseTemplate parses any path template: never a panic, and a
// template that parses renders (String) as a template that parses to the
// same rendering.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"/v1/{name=shelves/*/books/*}", "/v1/{parent=shelves/*}/books:batchGet", "/v1/assets/{path=**}",
		"/v1/{a}/{b.c=x/*}/**:verb", "/{x=**}", "/a/*/b", "/v1/{name=shelves/*}:move", "/", "//", "/{", "/{a=}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := translate.ParseTemplate(s)
		if err != nil {
			return
		}
		again, err := translate.ParseTemplate(tmpl.String())
		if err != nil {
			t.Fatalf("%q renders as %q, which does not parse: %v", s, tmpl.String(), err)
		}
		if again.String() != tmpl.String() {
			t.Errorf("%q renders as %q, then as %q", s, tmpl.String(), again.String())
		}
	})
}
