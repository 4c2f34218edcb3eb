package embedded

import (
	"bytes"
	"encoding/json"
)

// validJSON is json.Valid for the indexer's fast path, which only sees
// data without backslashes: such JSON is checked here in one pass without
// the per-byte state functions of encoding/json (about 1 µs per event of
// the benchmark trail). Anything this does not settle goes to json.Valid.
func validJSON(b []byte) bool {
	if valid, sure := scanJSON(b); sure {
		return valid
	}
	return json.Valid(b)
}

// scanJSON reports whether b is one valid JSON value. sure is false when
// it cannot tell: a backslash (escapes are not handled) or nesting deeper
// than its stack.
func scanJSON(b []byte) (valid, sure bool) {
	if bytes.IndexByte(b, '\\') >= 0 {
		return false, false
	}
	var stack [64]byte // open containers: '{' or '['
	n := 0
	i := 0
	afterValue := false
	for {
		i = skipJSONSpace(b, i)
		if afterValue {
			if n == 0 {
				return i == len(b), true
			}
			if i >= len(b) {
				return false, true
			}
			top := stack[n-1]
			switch {
			case b[i] == ',':
				i++
				if top == '{' {
					if i = scanJSONKey(b, i); i < 0 {
						return false, true
					}
				}
				afterValue = false
			case top == '{' && b[i] == '}' || top == '[' && b[i] == ']':
				n--
				i++
			default:
				return false, true
			}
			continue
		}
		if i >= len(b) {
			return false, true
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if n == len(stack) {
				return false, false
			}
			stack[n] = c
			n++
			i = skipJSONSpace(b, i+1)
			if i < len(b) && (c == '{' && b[i] == '}' || c == '[' && b[i] == ']') {
				n--
				i++
				afterValue = true
				continue
			}
			if c == '{' {
				if i = scanJSONKey(b, i); i < 0 {
					return false, true
				}
			}
			continue // a value follows
		case c == '"':
			i = scanJSONString(b, i)
		case c == '-' || '0' <= c && c <= '9':
			i = scanJSONNumber(b, i)
		case c == 't':
			i = scanJSONLiteral(b, i, "true")
		case c == 'f':
			i = scanJSONLiteral(b, i, "false")
		case c == 'n':
			i = scanJSONLiteral(b, i, "null")
		default:
			return false, true
		}
		if i < 0 {
			return false, true
		}
		afterValue = true
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanJSONKey scans `"key" :` from i (space before allowed) and returns
// the index after the colon, or -1.
func scanJSONKey(b []byte, i int) int {
	i = skipJSONSpace(b, i)
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = scanJSONString(b, i); i < 0 {
		return -1
	}
	i = skipJSONSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return i + 1
}

// scanJSONString scans a string without escapes starting at the quote at
// i and returns the index after its closing quote, or -1.
func scanJSONString(b []byte, i int) int {
	j := bytes.IndexByte(b[i+1:], '"')
	if j < 0 {
		return -1
	}
	for _, c := range b[i+1 : i+1+j] {
		if c < 0x20 || c == '\\' {
			return -1
		}
	}
	return i + 2 + j
}

// scanJSONNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i.
func scanJSONNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func scanJSONLiteral(b []byte, i int, lit string) int {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return -1
	}
	return i + len(lit)
}
