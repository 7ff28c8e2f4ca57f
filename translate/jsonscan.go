package translate

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, strict RFC 8259 scanner over []byte for the transcoder. It
// accepts exactly what protobuf-go's JSON tokenizer accepts (whitespace is
// space, tab, CR and LF; literals and numbers end at a delimiter), so that
// the transcoder and protojson agree on every document.

// errJSON is the transcoder's answer to a document it rejects. The binding
// then runs the protojson path, which explains the mistake to the client.
var errJSON = errors.New("transcoder: invalid JSON for the message")

// scanner reads one JSON document.
type scanner struct {
	data []byte
	pos  int
	str  []byte // scratch for unescaped strings
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// consume skips whitespace and then the byte c, which must come next.
func (s *scanner) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.pos++
	return true
}

// isNotDelim reports whether c continues a literal or number.
func isNotDelim(c byte) bool {
	return c == '-' || c == '+' || c == '.' || c == '_' ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// literal consumes lit (true, false or null) if it comes next.
func (s *scanner) literal(lit string) bool {
	s.skipSpace()
	end := s.pos + len(lit)
	if end > len(s.data) || string(s.data[s.pos:end]) != lit || end < len(s.data) && isNotDelim(s.data[end]) {
		return false
	}
	s.pos = end
	return true
}

// number consumes a JSON number and returns its text.
func (s *scanner) number() ([]byte, bool) {
	s.skipSpace()
	n, ok := parseNumber(s.data[s.pos:])
	if !ok {
		return nil, false
	}
	raw := s.data[s.pos : s.pos+n]
	s.pos += n
	return raw, true
}

// parseNumber returns the length of the JSON number at the start of in. Like
// protobuf-go's, it takes "1e" before a delimiter as a number.
func parseNumber(in []byte) (int, bool) {
	s, n := in, 0
	if len(s) == 0 {
		return 0, false
	}
	if s[0] == '-' {
		s, n = s[1:], n+1
		if len(s) == 0 {
			return 0, false
		}
	}
	switch {
	case s[0] == '0':
		s, n = s[1:], n+1
	case '1' <= s[0] && s[0] <= '9':
		s, n = s[1:], n+1
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s, n = s[1:], n+1
		}
	default:
		return 0, false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s, n = s[2:], n+2
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s, n = s[1:], n+1
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s, n = s[1:], n+1
		if s[0] == '+' || s[0] == '-' {
			s, n = s[1:], n+1
			if len(s) == 0 {
				return 0, false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s, n = s[1:], n+1
		}
	}
	if n < len(in) && isNotDelim(in[n]) {
		return 0, false
	}
	return n, true
}

// readString consumes a string and returns its unescaped bytes, which alias the
// document or the scratch buffer (valid until the next call).
func (s *scanner) readString() ([]byte, bool) {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	i := start
	for i < len(s.data) {
		c := s.data[i]
		if c == '"' {
			s.pos = i + 1
			return s.data[start:i], true
		}
		if c < ' ' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
		i++
	}
	out := append(s.str[:0], s.data[start:i]...)
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			s.str = out
			return out, true
		case c < ' ':
			return nil, false
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(s.data[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			out = append(out, s.data[i:i+n]...)
			i += n
		case c == '\\':
			if i+1 >= len(s.data) {
				return nil, false
			}
			switch e := s.data[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(s.data, i+2)
				if !ok {
					return nil, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2, ok := hex4(s.data, i+2)
					if !ok || s.data[i] != '\\' || s.data[i+1] != 'u' {
						return nil, false
					}
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return nil, false
					}
					i += 6
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return nil, false
			}
			i += 2
		default:
			out = append(out, c)
			i++
		}
	}
	return nil, false
}

// hex4 reads the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[i:i+4]), 16, 16)
	return rune(v), err == nil
}

// skipValue consumes one JSON value of any kind, checking it as strictly as
// the rest; objects and arrays may nest at most limit deep.
func (s *scanner) skipValue(limit int) bool {
	switch s.peek() {
	case '{':
		if limit <= 0 {
			return false
		}
		s.pos++
		if s.consume('}') {
			return true
		}
		for {
			if _, ok := s.readString(); !ok || !s.consume(':') || !s.skipValue(limit-1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
	case '[':
		if limit <= 0 {
			return false
		}
		s.pos++
		if s.consume(']') {
			return true
		}
		for {
			if !s.skipValue(limit - 1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case '"':
		_, ok := s.readString()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}

// isIntText reports whether raw is a JSON integer without fraction,
// exponent or "-0", the common case that strconv parses as it is.
func isIntText(raw []byte) bool {
	if len(raw) > 0 && raw[0] == '-' {
		if len(raw) == 2 && raw[1] == '0' {
			return false
		}
		raw = raw[1:]
	}
	if len(raw) == 0 || raw[0] == '0' && len(raw) > 1 {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// intText turns a JSON number into the decimal text of the integer it
// denotes ("1.5e1" → "15"), as protobuf-go does, or fails when it is not an
// integer.
func intText(raw []byte) (string, bool) {
	neg := false
	s := raw
	if s[0] == '-' {
		neg, s = true, s[1:]
	}
	var intp, frac, exp []byte
	if s[0] == '0' {
		s = s[1:]
	} else {
		n := 0
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		intp, s = s[:n], s[n:]
	}
	if len(s) >= 2 && s[0] == '.' {
		n := 1
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		frac, s = s[1:n], s[n:]
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
	}
	if len(s) >= 1 && (s[0] == 'e' || s[0] == 'E') {
		exp = s[1:]
	}
	if len(intp) == 0 && len(frac) == 0 {
		return "0", true
	}
	e := 0
	if len(exp) > 0 {
		i, err := strconv.ParseInt(string(exp), 10, 32)
		if err != nil {
			return "", false
		}
		e = int(i)
	}
	var num []byte
	if e >= 0 {
		if len(frac) > e || len(intp)+e > 20 {
			return "", false
		}
		num = append(num, intp...)
		num = append(num, frac...)
		for i := 0; i < e-len(frac); i++ {
			num = append(num, '0')
		}
	} else {
		if len(frac) > 0 {
			return "", false
		}
		index := len(intp) + e
		if index < 0 {
			return "", false
		}
		for _, c := range intp[index:] {
			if c != '0' {
				return "", false
			}
		}
		num = intp[:index]
	}
	if neg {
		return "-" + string(num), true
	}
	return string(num), true
}

// parseJSONInt reads a JSON number (or the text of one) as an integer of
// bitSize bits.
func parseJSONInt(raw []byte, bitSize int) (int64, bool) {
	if isIntText(raw) {
		n, err := strconv.ParseInt(string(raw), 10, bitSize)
		return n, err == nil
	}
	s, ok := intText(raw)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, bitSize)
	return n, err == nil
}

// parseJSONUint is parseJSONInt for unsigned integers.
func parseJSONUint(raw []byte, bitSize int) (uint64, bool) {
	if isIntText(raw) {
		n, err := strconv.ParseUint(string(raw), 10, bitSize)
		return n, err == nil
	}
	s, ok := intText(raw)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, bitSize)
	return n, err == nil
}
