package translate

import (
	"fmt"
	"strings"
)

// SegmentKind says what one segment of a path template matches.
type SegmentKind uint8

const (
	// Literal matches exactly its text.
	Literal SegmentKind = iota
	// Wildcard ("*") matches exactly one path segment.
	Wildcard
	// DeepWildcard ("**") matches zero or more path segments; it can only be last.
	DeepWildcard
)

// Segment is one compiled segment of a path template.
type Segment struct {
	Kind SegmentKind
	// Text is the literal text, for Literal segments.
	Text string
}

// Variable is a field path bound to a run of template segments.
type Variable struct {
	// FieldPath is the dotted field path, split ("book", "name").
	FieldPath []string
	// Start and End delimit the variable's segments: Segments[Start:End].
	Start, End int
}

// Template is a compiled google.api.http path template such as
// "/v1/{name=shelves/*/books/*}:move".
type Template struct {
	// Source is the template as written.
	Source   string
	Segments []Segment
	// Verb is the custom verb after the last ':' ("" when absent).
	Verb      string
	Variables []Variable
}

// ParseTemplate compiles a path template written in the google.api.http
// grammar:
//
//	Template = "/" Segments [ Verb ] ;
//	Segments = Segment { "/" Segment } ;
//	Segment  = "*" | "**" | LITERAL | Variable ;
//	Variable = "{" FieldPath [ "=" Segments ] "}" ;
//	FieldPath = IDENT { "." IDENT } ;
//	Verb     = ":" LITERAL ;
//
// A variable without a pattern matches one segment ("{x}" is "{x=*}").
// "**" may only be the last segment. Variables may not nest or repeat.
func ParseTemplate(s string) (*Template, error) {
	p := templateParser{src: s}
	t, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("path template %q: %w", s, err)
	}
	return t, nil
}

type templateParser struct {
	src string
	pos int
	t   Template
}

func (p *templateParser) parse() (*Template, error) {
	p.t.Source = p.src
	if !strings.HasPrefix(p.src, "/") {
		return nil, fmt.Errorf("must start with '/'")
	}
	p.pos = 1
	if err := p.segments(false); err != nil {
		return nil, err
	}
	if p.pos < len(p.src) && p.src[p.pos] == ':' {
		verb := p.src[p.pos+1:]
		if verb == "" || strings.ContainsAny(verb, "/{}*:") {
			return nil, fmt.Errorf("invalid verb %q", verb)
		}
		p.t.Verb = verb
		p.pos = len(p.src)
	}
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.src[p.pos:], p.pos)
	}
	for i, seg := range p.t.Segments {
		if seg.Kind == DeepWildcard && i != len(p.t.Segments)-1 {
			return nil, fmt.Errorf("'**' must be the last segment")
		}
	}
	seen := map[string]bool{}
	for _, v := range p.t.Variables {
		name := strings.Join(v.FieldPath, ".")
		if seen[name] {
			return nil, fmt.Errorf("variable %q bound twice", name)
		}
		seen[name] = true
	}
	return &p.t, nil
}

// segments parses Segments; inVar says whether it runs inside a variable.
func (p *templateParser) segments(inVar bool) error {
	for {
		if err := p.segment(inVar); err != nil {
			return err
		}
		if p.pos < len(p.src) && p.src[p.pos] == '/' {
			p.pos++
			continue
		}
		return nil
	}
}

func (p *templateParser) segment(inVar bool) error {
	rest := p.src[p.pos:]
	switch {
	case strings.HasPrefix(rest, "**"):
		p.t.Segments = append(p.t.Segments, Segment{Kind: DeepWildcard})
		p.pos += 2
	case strings.HasPrefix(rest, "*"):
		p.t.Segments = append(p.t.Segments, Segment{Kind: Wildcard})
		p.pos++
	case strings.HasPrefix(rest, "{"):
		if inVar {
			return fmt.Errorf("nested variable at offset %d", p.pos)
		}
		return p.variable()
	default:
		end := strings.IndexAny(rest, "/:{}*=")
		if end < 0 {
			end = len(rest)
		}
		if end == 0 {
			if rest == "" {
				return fmt.Errorf("empty segment at the end")
			}
			return fmt.Errorf("unexpected %q at offset %d", rest[:1], p.pos)
		}
		p.t.Segments = append(p.t.Segments, Segment{Kind: Literal, Text: rest[:end]})
		p.pos += end
	}
	return nil
}

func (p *templateParser) variable() error {
	p.pos++ // '{'
	rest := p.src[p.pos:]
	end := strings.IndexAny(rest, "=}")
	if end < 0 {
		return fmt.Errorf("unterminated variable at offset %d", p.pos-1)
	}
	path := strings.Split(rest[:end], ".")
	for _, ident := range path {
		if !isIdent(ident) {
			return fmt.Errorf("invalid field path %q", rest[:end])
		}
	}
	p.pos += end
	v := Variable{FieldPath: path, Start: len(p.t.Segments)}
	if p.src[p.pos] == '=' {
		p.pos++
		if err := p.segments(true); err != nil {
			return err
		}
	} else {
		p.t.Segments = append(p.t.Segments, Segment{Kind: Wildcard})
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '}' {
		return fmt.Errorf("unterminated variable %q", rest[:end])
	}
	p.pos++
	v.End = len(p.t.Segments)
	p.t.Variables = append(p.t.Variables, v)
	return nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// String renders the template in canonical form, with "{x}" for "{x=*}".
func (t *Template) String() string {
	var b strings.Builder
	vi := 0
	for i := 0; i < len(t.Segments); i++ {
		b.WriteByte('/')
		if vi < len(t.Variables) && t.Variables[vi].Start == i {
			v := t.Variables[vi]
			b.WriteByte('{')
			b.WriteString(strings.Join(v.FieldPath, "."))
			if !(v.End-v.Start == 1 && t.Segments[i].Kind == Wildcard) {
				b.WriteByte('=')
				for j := v.Start; j < v.End; j++ {
					if j > v.Start {
						b.WriteByte('/')
					}
					b.WriteString(t.Segments[j].pattern())
				}
			}
			b.WriteByte('}')
			i = v.End - 1
			vi++
			continue
		}
		b.WriteString(t.Segments[i].pattern())
	}
	if t.Verb != "" {
		b.WriteByte(':')
		b.WriteString(t.Verb)
	}
	return b.String()
}

func (s Segment) pattern() string {
	switch s.Kind {
	case Wildcard:
		return "*"
	case DeepWildcard:
		return "**"
	}
	return s.Text
}
