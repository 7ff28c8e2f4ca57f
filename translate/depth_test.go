package translate

import (
	"strings"
	"testing"
)

// TestMaxDepthOption checks that JSONOptions.MaxDepth bounds the nesting of
// request documents on the transcoder and on the reference codec alike.
func TestMaxDepthOption(t *testing.T) {
	_, _, target := pick(t, 2)
	opts := JSONOptions{MaxDepth: 8}
	fast, ok := newCodec(target.md, opts, target.res).(*transcoder)
	if !ok {
		t.Fatalf("%s: no transcoder", target.md.FullName())
	}
	ref := newReferenceCodec(target.md, opts, target.res)
	for _, depth := range []int{1, 7, 8, 9, 65} {
		doc := strings.Repeat(`{"child":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
		_, gotErr := fast.unmarshalJSON(nil, []byte(doc))
		_, wantErr := ref.unmarshalJSON(nil, []byte(doc))
		if (gotErr == nil) != (depth <= 8) || (wantErr == nil) != (depth <= 8) {
			t.Errorf("depth %d: transcoder %v, protojson %v; want an error only beyond 8", depth, gotErr, wantErr)
		}
	}
}
