package router

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rosettagw/rosetta/translate"
)

// maxSegments bounds the number of path segments a request may have; longer
// paths never match (the HTTP ingress answers 404).
const maxSegments = 64

// Table is the compiled HTTP route table: a trie over path segments with the
// HTTP methods and custom verbs at its leaves. Lookups do not lock and do not
// allocate, except to merge the Allow list of a 405 answer from templates
// that accept different methods; a Table is built once per generation and
// then only read.
type Table struct {
	root   node
	routes []*Route
}

type node struct {
	literals map[string]*node
	wildcard *node // "*"
	deep     *node // "**", always a leaf
	ends     []*endpoint
}

// endpoint holds the routes of one template (and verb), by HTTP method.
type endpoint struct {
	verb    string
	methods map[string]*Route
	allow   string // the Allow header value for 405 answers
}

// Add inserts r. Two routes with the same HTTP method and the same template
// shape (variable names aside) conflict, and a template of more than 64
// segments is refused.
func (t *Table) Add(r *Route) error {
	if len(r.Template.Segments) > maxSegments {
		return fmt.Errorf("route %s has %d path segments, more than the %d a request may have", r, len(r.Template.Segments), maxSegments)
	}
	n := &t.root
	for _, seg := range r.Template.Segments {
		n = n.child(seg)
	}
	var e *endpoint
	for _, x := range n.ends {
		if x.verb == r.Template.Verb {
			e = x
		}
	}
	if e == nil {
		e = &endpoint{verb: r.Template.Verb, methods: map[string]*Route{}}
		n.ends = append(n.ends, e)
	}
	if old, ok := e.methods[r.HTTPMethod]; ok {
		return fmt.Errorf("route %s conflicts with %s: both match %s %s", r, old, r.HTTPMethod, shape(r.Template))
	}
	e.methods[r.HTTPMethod] = r
	methods := make([]string, 0, len(e.methods))
	for m := range e.methods {
		methods = append(methods, m)
	}
	if _, ok := e.methods["GET"]; ok {
		if _, ok := e.methods["HEAD"]; !ok {
			methods = append(methods, "HEAD")
		}
	}
	sort.Strings(methods)
	e.allow = strings.Join(methods, ", ")
	t.routes = append(t.routes, r)
	return nil
}

// shape renders a template with its variables erased, the form in which two
// templates match the same paths.
func shape(t *translate.Template) string {
	var b strings.Builder
	for _, s := range t.Segments {
		b.WriteByte('/')
		switch s.Kind {
		case translate.Wildcard:
			b.WriteByte('*')
		case translate.DeepWildcard:
			b.WriteString("**")
		default:
			b.WriteString(s.Text)
		}
	}
	if t.Verb != "" {
		b.WriteString(":" + t.Verb)
	}
	return b.String()
}

func (n *node) child(seg translate.Segment) *node {
	switch seg.Kind {
	case translate.Wildcard:
		if n.wildcard == nil {
			n.wildcard = &node{}
		}
		return n.wildcard
	case translate.DeepWildcard:
		if n.deep == nil {
			n.deep = &node{}
		}
		return n.deep
	}
	if n.literals == nil {
		n.literals = map[string]*node{}
	}
	c := n.literals[seg.Text]
	if c == nil {
		c = &node{}
		n.literals[seg.Text] = c
	}
	return c
}

func (n *node) endpoint(verb string) *endpoint {
	for _, e := range n.ends {
		if e.verb == verb {
			return e
		}
	}
	return nil
}

// Routes returns every route in the order they were added.
func (t *Table) Routes() []*Route { return t.routes }

// Match is the outcome of a lookup.
type Match struct {
	// Route is the matched route; nil when the path or the method did not match.
	Route *Route
	// Allow lists the methods the path accepts when only the method was
	// wrong (answer 405); empty when the path matched nothing (answer 404).
	Allow string
	// PathValues are the raw values of the route template's variables.
	PathValues []string
}

// Lookup finds the route for an HTTP method and an escaped request path.
// Literal segments win over "*", which wins over "**", among the routes that
// take method (HEAD falls back to GET); a final ":verb" is tried as a custom
// verb first and as part of the last segment second. When no route takes
// method but some take the path, Match.Allow lists their methods (answer
// 405); a path of more than 64 segments never matches. The path values are
// appended to vals, so a caller can pass a reused buffer; a lookup that
// matches, or answers 404, then allocates nothing.
func (t *Table) Lookup(method, path string, vals []string) Match {
	if path == "" || path[0] != '/' || strings.Count(path, "/") > maxSegments {
		return Match{}
	}
	var starts [maxSegments + 2]int
	verbAt := -1
	if i := strings.LastIndexByte(path, ':'); i > strings.LastIndexByte(path, '/') {
		verbAt = i
		if r := t.root.match(path[:i], 0, 0, &starts, path[i+1:], method); r != nil {
			return pick(r, path[:i], &starts, vals)
		}
	}
	if r := t.root.match(path, 0, 0, &starts, "", method); r != nil {
		return pick(r, path, &starts, vals)
	}
	var acc allowSet
	if verbAt >= 0 {
		t.root.collect(path[:verbAt], 0, 0, path[verbAt+1:], &acc)
	}
	t.root.collect(path, 0, 0, "", &acc)
	return Match{Allow: acc.String()}
}

// route returns the route of n's endpoint for verb that takes method.
func (n *node) route(verb, method string) *Route {
	if e := n.endpoint(verb); e != nil {
		if r := e.methods[method]; r != nil {
			return r
		}
		if method == "HEAD" {
			return e.methods["GET"]
		}
	}
	return nil
}

// match walks the trie from n over p[pos:] for a route that takes method,
// recording where each segment starts in starts. A "**" that matches no
// segment, like the end of the path, starts at len(p)+1.
func (n *node) match(p string, pos, depth int, starts *[maxSegments + 2]int, verb, method string) *Route {
	if pos == len(p) {
		if r := n.route(verb, method); r != nil {
			starts[depth] = pos + 1
			return r
		}
		if n.deep != nil { // "**" matching no segment
			if r := n.deep.route(verb, method); r != nil {
				starts[depth] = pos + 1
				starts[depth+1] = pos + 1
				return r
			}
		}
		return nil
	}
	if depth >= maxSegments || p[pos] != '/' {
		return nil
	}
	end := strings.IndexByte(p[pos+1:], '/')
	if end < 0 {
		end = len(p)
	} else {
		end += pos + 1
	}
	seg := p[pos+1 : end]
	if c := n.literals[seg]; c != nil {
		starts[depth] = pos + 1
		if r := c.match(p, end, depth+1, starts, verb, method); r != nil {
			return r
		}
	}
	if n.wildcard != nil && seg != "" {
		starts[depth] = pos + 1
		if r := n.wildcard.match(p, end, depth+1, starts, verb, method); r != nil {
			return r
		}
	}
	if n.deep != nil {
		if r := n.deep.route(verb, method); r != nil {
			starts[depth] = pos + 1
			starts[depth+1] = len(p) + 1
			return r
		}
	}
	return nil
}

// collect adds to acc every endpoint that matches p[pos:], whatever its
// methods, the way match walks.
func (n *node) collect(p string, pos, depth int, verb string, acc *allowSet) {
	if pos == len(p) {
		if e := n.endpoint(verb); e != nil {
			acc.add(e)
		}
		if n.deep != nil {
			if e := n.deep.endpoint(verb); e != nil {
				acc.add(e)
			}
		}
		return
	}
	if depth >= maxSegments || p[pos] != '/' {
		return
	}
	end := strings.IndexByte(p[pos+1:], '/')
	if end < 0 {
		end = len(p)
	} else {
		end += pos + 1
	}
	seg := p[pos+1 : end]
	if c := n.literals[seg]; c != nil {
		c.collect(p, end, depth+1, verb, acc)
	}
	if n.wildcard != nil && seg != "" {
		n.wildcard.collect(p, end, depth+1, verb, acc)
	}
	if n.deep != nil {
		if e := n.deep.endpoint(verb); e != nil {
			acc.add(e)
		}
	}
}

// allowSet gathers the endpoints a path matches, for the Allow header; it
// allocates only when they accept different methods.
type allowSet struct {
	first *endpoint
	more  []*endpoint
}

func (a *allowSet) add(e *endpoint) {
	switch {
	case a.first == nil:
		a.first = e
	case e.allow != a.first.allow:
		a.more = append(a.more, e)
	}
}

// String is the Allow header value: every method of every endpoint, sorted.
func (a *allowSet) String() string {
	if a.first == nil {
		return ""
	}
	if len(a.more) == 0 {
		return a.first.allow
	}
	set := map[string]bool{}
	for _, e := range append(a.more, a.first) {
		for _, m := range strings.Split(e.allow, ", ") {
			set[m] = true
		}
	}
	methods := make([]string, 0, len(set))
	for m := range set {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	return strings.Join(methods, ", ")
}

// pick cuts the values of r's template variables out of p.
func pick(r *Route, p string, starts *[maxSegments + 2]int, vals []string) Match {
	for _, v := range r.Template.Variables {
		from := min(starts[v.Start], len(p))
		to := max(min(starts[v.End]-1, len(p)), from)
		vals = append(vals, p[from:to])
	}
	return Match{Route: r, PathValues: vals}
}
