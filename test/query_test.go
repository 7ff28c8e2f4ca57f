package test

import (
	"net/http"
	"testing"
)

// TestStrictQuery: query parameters that set nothing (an unknown name, a
// field the path binds, any on a body "*" rule) are ignored by default, as
// grpc-gateway ignores them, so the call succeeds; under http.strict_query
// they are refused with 400 INVALID_ARGUMENT naming the parameter.
func TestStrictQuery(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	lenient := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", ""))
	strict := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", "http: {strict_query: true}\n"))
	for _, tt := range []struct {
		name  string
		req   request
		field string
	}{
		{"unknown parameter", request{method: "GET", path: "/v1/shelves/1?utm_source=mail"}, "utm_source"},
		{"unknown nested parameter", request{method: "GET", path: "/v1/shelves/1/books?filter.colour=red"}, "filter.colour"},
		{"field bound by the path", request{method: "GET", path: "/v1/shelves/1/books?parent=shelves/2"}, "parent"},
		{"any parameter on a body:* rule", request{method: "POST", path: "/v1/shelves/1/books/dune:move?other_shelf=shelves/9", body: `{"otherShelf":"shelves/1"}`}, "other_shelf"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := do(t, lenient.base, tt.req); r.status != http.StatusOK {
				t.Errorf("default: %d %s, want 200 (the parameter ignored)", r.status, r.body)
			}
			wantStatus(t, do(t, strict.base, tt.req), http.StatusBadRequest, codeInvalidArgument, tt.field)
		})
	}
}
