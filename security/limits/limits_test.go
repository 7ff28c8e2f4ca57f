package limits_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rosettagw/rosetta/security/limits"
)

func TestHandler(t *testing.T) {
	h := limits.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }), limits.Config{MaxURLBytes: 100, MaxHeaderBytes: 200})
	tests := []struct {
		path   string
		header string
		want   int
	}{
		{"/ok", "", 299},
		{"/" + strings.Repeat("a", 100), "", 414},
		{"/?" + strings.Repeat("q", 99), "", 414},
		{"/" + strings.Repeat("a", 99), "", 299},
		{"/" + strings.Repeat("a", 98), "", 299},
		{"/ok", strings.Repeat("h", 150), 299},
		{"/ok", strings.Repeat("h", 200), 431},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.path, nil)
		if tt.header != "" {
			r.Header.Set("X-Big", tt.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%d-byte URL, %d-byte header: status %d, want %d", len(tt.path), len(tt.header), w.Code, tt.want)
		}
		if w.Code != 299 && !strings.Contains(w.Body.String(), `"code":3`) {
			t.Errorf("refusal body %s, want an INVALID_ARGUMENT status", w.Body)
		}
	}
}
