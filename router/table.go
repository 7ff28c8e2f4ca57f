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
// HTTP methods and custom verbs at its leaves. Lookups neither lock nor
// allocate; a Table is built once per generation and then only read.
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

// Add inserts r. Two routes with the same
// HTTP method and the same template shape (variable names aside) conflict.
func (t *Table) Add(r *Route) error {
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
// Literal segments win over "*", which wins over "**"; a final ":verb" is
// tried as a custom verb first and as part of the last segment second. The
// path values are appended to vals, so a caller can pass a reused buffer.
func (t *Table) Lookup(method, path string, vals []string) Match {
	var starts [maxSegments + 1]int
	if path == "" || path[0] != '/' {
		return Match{}
	}
	if i := strings.LastIndexByte(path, ':'); i > strings.LastIndexByte(path, '/') {
		if e := t.root.match(path[:i], 0, 0, &starts, path[i+1:]); e != nil {
			return e.pick(method, path[:i], &starts, vals)
		}
	}
	if e := t.root.match(path, 0, 0, &starts, ""); e != nil {
		return e.pick(method, path, &starts, vals)
	}
	return Match{}
}

// match walks the trie from n over p[pos:], recording where each segment
// starts in starts.
func (n *node) match(p string, pos, depth int, starts *[maxSegments + 1]int, verb string) *endpoint {
	if pos == len(p) {
		if e := n.endpoint(verb); e != nil {
			starts[depth] = pos + 1
			return e
		}
		if n.deep != nil { // "**" matching no segment
			starts[depth] = pos
			starts[depth+1] = pos + 1
			return n.deep.endpoint(verb)
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
	starts[depth] = pos + 1
	if c := n.literals[seg]; c != nil {
		if e := c.match(p, end, depth+1, starts, verb); e != nil {
			return e
		}
	}
	if n.wildcard != nil && seg != "" {
		starts[depth] = pos + 1
		if e := n.wildcard.match(p, end, depth+1, starts, verb); e != nil {
			return e
		}
	}
	if n.deep != nil {
		if e := n.deep.endpoint(verb); e != nil {
			starts[depth] = pos + 1
			starts[depth+1] = len(p) + 1
			return e
		}
	}
	return nil
}

// pick chooses the route for method and cuts the variable values out of p.
func (e *endpoint) pick(method, p string, starts *[maxSegments + 1]int, vals []string) Match {
	r := e.methods[method]
	if r == nil && method == "HEAD" {
		r = e.methods["GET"]
	}
	if r == nil {
		return Match{Allow: e.allow}
	}
	for _, v := range r.Template.Variables {
		from, to := starts[v.Start], starts[v.End]-1
		if from > to {
			to = from
		}
		vals = append(vals, p[from:min(to, len(p))])
	}
	return Match{Route: r, PathValues: vals}
}
