package ingress

import "testing"

func TestOriginAllowed(t *testing.T) {
	allowed := []string{"https://app.example", "https://*.example.org"}
	for _, tc := range []struct {
		origin, host string
		want         bool
	}{
		{"http://gw:8080", "gw:8080", true}, // same origin
		{"https://app.example", "gw:8080", true},
		{"https://APP.example", "gw:8080", true},
		{"http://app.example", "gw:8080", false}, // another scheme
		{"https://a.example.org", "gw:8080", true},
		{"https://evil.example", "gw:8080", false},
		{"null", "gw:8080", false},
	} {
		if got := OriginAllowed(tc.origin, tc.host, allowed); got != tc.want {
			t.Errorf("OriginAllowed(%q, %q) = %v, want %v", tc.origin, tc.host, got, tc.want)
		}
	}
}
