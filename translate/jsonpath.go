package translate

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonFrame is one open object or array while scanning a JSON document.
type jsonFrame struct {
	array bool
	inKey bool   // object: the next string is a member key
	key   string // object: the current member's key
	index int    // array: the current element's index
}

// jsonPathAt names the JSON member whose key or value starts at byte offset
// off of data, as "author.name" or "reviews[1].stars" (keys as the client
// wrote them). With off < 0 it names the first object or array nested more
// than maxDepth deep instead. It tolerates malformed input and is used only
// to explain errors, so it favours simplicity over speed.
func jsonPathAt(data []byte, off, maxDepth int) string {
	var stack []jsonFrame
	for i := 0; i < len(data); {
		c := data[i]
		switch c {
		case ' ', '\t', '\r', '\n':
			i++
			continue
		}
		if off >= 0 && i >= off {
			if n := len(stack); c == '"' && n > 0 && !stack[n-1].array && stack[n-1].inKey {
				stack[n-1].key, _ = readJSONString(data, i)
				stack[n-1].inKey = false
			}
			return renderJSONPath(stack)
		}
		top := len(stack) - 1
		switch c {
		case '{', '[':
			stack = append(stack, jsonFrame{array: c == '[', inKey: c == '{'})
			if off < 0 && len(stack) > maxDepth {
				return renderJSONPath(stack[:len(stack)-1]) // the container itself
			}
			i++
		case '}', ']':
			if top >= 0 {
				stack = stack[:top]
			}
			i++
		case ',':
			if top >= 0 {
				if stack[top].array {
					stack[top].index++
				} else {
					stack[top].inKey, stack[top].key = true, ""
				}
			}
			i++
		case ':':
			i++
		case '"':
			s, next := readJSONString(data, i)
			if top >= 0 && !stack[top].array && stack[top].inKey {
				stack[top].key, stack[top].inKey = s, false
			}
			i = next
		default: // a number, true, false, null or garbage
			for i < len(data) && !strings.ContainsRune(",:[]{}\" \t\r\n", rune(data[i])) {
				i++
			}
		}
	}
	return renderJSONPath(stack)
}

// readJSONString reads the string literal starting at data[i] == '"' and
// returns its value and the offset just past it.
func readJSONString(data []byte, i int) (string, int) {
	j := i + 1
	for j < len(data) && data[j] != '"' {
		if data[j] == '\\' {
			j++
		}
		j++
	}
	end := min(j+1, len(data))
	var s string
	if json.Unmarshal(data[i:end], &s) != nil {
		s = strings.Trim(string(data[i:end]), `"`)
	}
	return s, end
}

func renderJSONPath(stack []jsonFrame) string {
	var b strings.Builder
	for _, f := range stack {
		switch {
		case f.array:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
		case f.key != "":
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
	}
	return b.String()
}

// jsonErrorOffset finds the "(line L:C)" position protojson puts in its
// errors and turns it into a byte offset of data; -1 when there is none.
func jsonErrorOffset(data []byte, msg string) int {
	i := strings.Index(msg, "(line ")
	if i < 0 {
		return -1
	}
	rest := msg[i+len("(line "):]
	j := strings.IndexByte(rest, ')')
	if j < 0 {
		return -1
	}
	lineStr, colStr, ok := strings.Cut(rest[:j], ":")
	if !ok {
		return -1
	}
	line, err1 := strconv.Atoi(lineStr)
	col, err2 := strconv.Atoi(colStr)
	if err1 != nil || err2 != nil || line < 1 || col < 1 {
		return -1
	}
	off := 0
	for ; line > 1; line-- {
		k := bytes.IndexByte(data[off:], '\n')
		if k < 0 {
			return -1
		}
		off += k + 1
	}
	for ; col > 1 && off < len(data); col-- {
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	return off
}
