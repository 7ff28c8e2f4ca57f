package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Element is one forwarded-element of a Forwarded header (RFC 7239): the
// parameters one proxy added, by lower-cased name ("for", "by", "host",
// "proto"), values unquoted.
type Element map[string]string

// maxElements bounds the elements ParseForwarded accepts, so that a header
// of many empty elements cannot cost more than its bytes.
const maxElements = 64

// ParseForwarded parses the value of a Forwarded header (several header
// lines joined with ","). It is strict: parameter names and unquoted values
// must be tokens, quoted strings must be closed, a parameter may appear once
// per element, and only optional whitespace may surround "," and ";".
func ParseForwarded(v string) ([]Element, error) {
	p := &parser{s: v}
	var out []Element
	for {
		p.skipOWS()
		el, err := p.element()
		if err != nil {
			return nil, err
		}
		if len(el) > 0 {
			if len(out) == maxElements {
				return nil, fmt.Errorf("more than %d forwarded elements", maxElements)
			}
			out = append(out, el)
		}
		p.skipOWS()
		if p.done() {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i], p.i)
		}
		p.i++
	}
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) skipOWS() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// element parses pairs separated by ";" up to a "," or the end.
func (p *parser) element() (Element, error) {
	var el Element
	for {
		p.skipOWS()
		if p.done() || p.s[p.i] == ',' {
			return el, nil
		}
		if p.s[p.i] != ';' {
			name, value, err := p.pair()
			if err != nil {
				return nil, err
			}
			if el == nil {
				el = Element{}
			}
			if _, dup := el[name]; dup {
				return nil, fmt.Errorf("parameter %q repeated in one element", name)
			}
			el[name] = value
			p.skipOWS()
			if p.done() || p.s[p.i] == ',' {
				return el, nil
			}
			if p.s[p.i] != ';' {
				return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i], p.i)
			}
		}
		p.i++ // ';'
	}
}

func (p *parser) pair() (string, string, error) {
	name := p.token()
	if name == "" {
		return "", "", fmt.Errorf("expected a parameter name at offset %d", p.i)
	}
	if p.done() || p.s[p.i] != '=' {
		return "", "", fmt.Errorf("parameter %q has no value", name)
	}
	p.i++
	if !p.done() && p.s[p.i] == '"' {
		v, err := p.quoted()
		return strings.ToLower(name), v, err
	}
	v := p.token()
	if v == "" {
		return "", "", fmt.Errorf("parameter %q has an empty or invalid value", name)
	}
	return strings.ToLower(name), v, nil
}

func (p *parser) token() string {
	start := p.i
	for !p.done() && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted parses a quoted-string (RFC 9110 5.6.4) starting at its '"'.
func (p *parser) quoted() (string, error) {
	start := p.i
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) || !isQuotedPairChar(p.s[p.i+1]) {
				return "", fmt.Errorf("invalid escape in quoted string at offset %d", p.i)
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case isQdtext(c):
			b.WriteByte(c)
			p.i++
		default:
			return "", fmt.Errorf("invalid byte %#x in quoted string at offset %d", c, p.i)
		}
	}
	return "", fmt.Errorf("quoted string at offset %d is not closed", start)
}

// isTchar reports whether c may appear in an RFC 9110 token.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (0x23 <= c && c <= 0x5B) || (0x5D <= c && c <= 0x7E) || c >= 0x80
}

func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (0x21 <= c && c <= 0x7E) || c >= 0x80
}

// errObfuscated is returned for "unknown" and obfuscated ("_abc") nodes.
var errObfuscated = errors.New("node is unknown or obfuscated")

// ParseNode parses a node of a Forwarded "for" or "by" parameter: an IPv4
// address or a bracketed IPv6 address, each with an optional port. Unknown
// and obfuscated nodes ("unknown", "_hidden") are errors, since they name no
// address.
func ParseNode(v string) (netip.Addr, error) {
	if v == "unknown" || strings.HasPrefix(v, "_") {
		return netip.Addr{}, errObfuscated
	}
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return netip.Addr{}, fmt.Errorf("node %q: unclosed '['", v)
		}
		host, port = v[1:end], v[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("node %q: not an IPv6 address", v)
		}
		return a, checkPort(v, port)
	}
	if i := strings.IndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i:]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("node %q: not an IPv4 address or a bracketed IPv6 address", v)
	}
	return a, checkPort(v, port)
}

// checkPort accepts "", ":1234" and an obfuscated ":_abc".
func checkPort(node, port string) error {
	if port == "" {
		return nil
	}
	p, ok := strings.CutPrefix(port, ":")
	if !ok {
		return fmt.Errorf("node %q: junk after the address", node)
	}
	if strings.HasPrefix(p, "_") && len(p) > 1 {
		for i := 1; i < len(p); i++ {
			if c := p[i]; !(isAlnum(c) || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("node %q: invalid obfuscated port", node)
			}
		}
		return nil
	}
	if _, err := strconv.ParseUint(p, 10, 16); err != nil || len(p) > 5 {
		return fmt.Errorf("node %q: invalid port", node)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
