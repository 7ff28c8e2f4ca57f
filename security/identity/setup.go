package identity

import (
	"fmt"
	"sort"
	"strings"
)

// Config maps metadata keys (headers) sent upstream to what they carry:
// "subject", "method", "scopes" (space-separated) or "claim:NAME" (a JWT
// claim; dots walk into objects).
type Config map[string]string

// New returns the policy cfg describes.
func New(cfg Config) (*Headers, error) {
	h := &Headers{}
	for key, src := range cfg {
		key = strings.ToLower(key)
		if key == "" || strings.HasPrefix(key, "grpc-") || strings.HasPrefix(key, ":") {
			return nil, fmt.Errorf("identity header %q: not a header an upstream may receive", key)
		}
		name, isClaim := strings.CutPrefix(src, "claim:")
		switch {
		case isClaim && name != "":
		case src == "subject", src == "method", src == "scopes":
		default:
			return nil, fmt.Errorf("identity header %q: source %q; want subject, method, scopes or claim:NAME", key, src)
		}
		h.headers = append(h.headers, header{key: key, source: src, claim: strings.Split(name, ".")})
	}
	sort.Slice(h.headers, func(i, j int) bool { return h.headers[i].key < h.headers[j].key })
	return h, nil
}
