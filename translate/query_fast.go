package translate

import (
	"errors"
	"net/url"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// errQueryFallback sends a query string to the dynamicpb path, which
// decodes (or rejects) every form of parameter; the fast path below takes
// the common one: scalar fields, possibly nested in singular messages.
var errQueryFallback = errors.New("query left to the dynamicpb path")

// maxQueryDepth bounds the dotted names the fast query path takes.
const maxQueryDepth = 8

// queryParam is one parameter the fast path has written.
type queryParam struct {
	leaf *fieldInfo
	name string
}

// appendQuery appends the fields set by the raw query string to out, with
// the result the dynamicpb path (decodeQuery) would give, or fails with
// errQueryFallback for anything else: map entries, message or oneof fields,
// unknown names, a singular field given twice or one field under two names
// (whose outcome depends on the name order), malformed strings.
func (b *Binding) appendQuery(out []byte, raw string) ([]byte, error) {
	if b.Body == WholeBody || b.queryTable == nil {
		return out, errQueryFallback
	}
	var seenBuf [8]queryParam
	seen := seenBuf[:0]
	var fdsBuf [maxQueryDepth]protoreflect.FieldDescriptor
	for raw != "" {
		var param string
		param, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(param, ";") {
			return out, errQueryFallback
		}
		if param == "" {
			continue
		}
		key, value, _ := strings.Cut(param, "=")
		key, err1 := url.QueryUnescape(key)
		value, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil || strings.HasSuffix(key, "]") {
			return out, errQueryFallback
		}
		fds := fdsBuf[:0]
		t := b.queryTable
		var leaf *fieldInfo
		for part := range strings.SplitSeq(key, ".") {
			if leaf != nil { // the previous part must be a singular message
				if leaf.kind != protoreflect.MessageKind || leaf.list || leaf.isMap || leaf.msg.wkt != wktNone {
					return out, errQueryFallback
				}
				t = leaf.msg
			}
			leaf = t.byQueryName[part]
			if leaf == nil || leaf.oneof >= 0 || len(fds) == maxQueryDepth {
				return out, errQueryFallback
			}
			fds = append(fds, leaf.fd)
		}
		if leaf.kind == protoreflect.MessageKind || leaf.isMap || b.bound(fds) {
			return out, errQueryFallback
		}
		for _, p := range seen {
			if p.leaf == leaf && (p.name != key || !leaf.list) {
				return out, errQueryFallback
			}
		}
		seen = append(seen, queryParam{leaf, key})
		var err error
		if out, err = appendPathField(out, fds, value); err != nil {
			return out, errQueryFallback
		}
	}
	return out, nil
}
