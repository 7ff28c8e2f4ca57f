package translate

import "testing"

func TestNDJSON(t *testing.T) {
	if got, want := string(NDJSONResult([]byte(`{"a":1}`))), "{\"result\":{\"a\":1}}\n"; got != want {
		t.Errorf("NDJSONResult = %q, want %q", got, want)
	}
	if got, want := string(NDJSONError([]byte(`{"code":5}`))), "{\"error\":{\"code\":5}}\n"; got != want {
		t.Errorf("NDJSONError = %q, want %q", got, want)
	}
}

func TestSSEEvent(t *testing.T) {
	for _, tc := range []struct {
		event string
		id    uint64
		data  string
		want  string
	}{
		{"", 1, `{"a":1}`, "id: 1\ndata: {\"a\":1}\n\n"},
		{"status", 0, `{"code":0}`, "event: status\ndata: {\"code\":0}\n\n"},
		{"", 7, "two\r\nlines\n", "id: 7\ndata: two\ndata: lines\ndata: \n\n"},
	} {
		if got := string(SSEEvent(tc.event, tc.id, []byte(tc.data))); got != tc.want {
			t.Errorf("SSEEvent(%q, %d, %q) = %q, want %q", tc.event, tc.id, tc.data, got, tc.want)
		}
	}
}
