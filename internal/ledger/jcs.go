package ledger

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxCanonicalDepth bounds nesting so that hostile input to the offline
// verifier cannot exhaust the stack; stored events are limited far below it
// (event.MaxDataDepth).
const maxCanonicalDepth = 1000

// ErrCanonical wraps every reason a text is not JSON that can be canonicalised.
var ErrCanonical = errors.New("ledger: not canonicalisable JSON")

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// one JSON value: no insignificant whitespace, object members sorted by the
// UTF-16 code units of their names, numbers in ECMAScript's shortest
// round-trip form, strings with the minimal escaping of RFC 8785 §3.2.2.2.
//
// Where RFC 8785 requires refusing input, stored events must still get a
// leaf, so the rule is made total the way ECMAScript's JSON.parse followed
// by JSON.stringify (RFC 8785's reference) behaves, and documented in
// docs/tamper-evidence.md: a repeated member name keeps its last value; a
// number beyond the double range becomes null; a lone surrogate escape and
// invalid UTF-8 become U+FFFD (what encoding/json does too).
func Canonicalize(src []byte) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(src)), src)
}

// AppendCanonical appends the canonical form of src to dst.
func AppendCanonical(dst, src []byte) ([]byte, error) {
	p := parserPool.Get().(*canonParser)
	defer func() {
		p.src, p.members = nil, p.members[:0]
		parserPool.Put(p)
	}()
	p.src, p.pos = src, 0
	p.skipSpace()
	out, err := p.value(dst, 0)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return dst, p.errorf("unexpected data after the value")
	}
	return out, nil
}

// parserPool keeps parsers with their grown buffers: the appender
// canonicalises every event's data.
var parserPool = sync.Pool{New: func() any { return new(canonParser) }}

type canonParser struct {
	src []byte
	pos int
	// An object at depth d canonicalises its members' values into
	// vals[d], then writes them out in sorted order; members (a stack
	// shared by nested objects) says where each value lies. A nested
	// value only ever writes into deeper buffers, so none aliases the
	// buffer its caller writes into. Reused across the objects of one
	// call, so most objects allocate nothing.
	members []member
	vals    [][]byte
}

type member struct {
	name       string
	start, end int // the value is vals[depth][start:end]
}

func (p *canonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrCanonical, p.pos, fmt.Sprintf(format, args...))
}

func (p *canonParser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *canonParser) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxCanonicalDepth {
		return dst, p.errorf("nested deeper than %d", maxCanonicalDepth)
	}
	if p.pos >= len(p.src) {
		return dst, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(dst, depth)
	case c == '[':
		return p.array(dst, depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return dst, err
		}
		return appendCanonicalString(dst, s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(p.src)-p.pos >= len(lit) && string(p.src[p.pos:p.pos+len(lit)]) == lit {
				p.pos += len(lit)
				return append(dst, lit...), nil
			}
		}
		return dst, p.errorf("invalid character %q", c)
	}
}

func (p *canonParser) object(dst []byte, depth int) ([]byte, error) {
	p.pos++ // {
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return append(dst, '{', '}'), nil
	}
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	for len(p.vals) <= depth {
		p.vals = append(p.vals, nil)
	}
	vals := p.vals[depth][:0]
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return dst, p.errorf("expected a member name")
		}
		name, err := p.str()
		if err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return dst, p.errorf("expected ':'")
		}
		p.pos++
		p.skipSpace()
		start := len(vals)
		if vals, err = p.value(vals, depth+1); err != nil {
			return dst, err
		}
		p.members = append(p.members, member{name: name, start: start, end: len(vals)})
		p.skipSpace()
		if p.pos >= len(p.src) {
			return dst, p.errorf("unexpected end of object")
		}
		if p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.src[p.pos] == '}' {
			p.pos++
			break
		}
		return dst, p.errorf("expected ',' or '}'")
	}
	ms := p.members[base:]
	// Stable, so that among repeated names the last one stays last.
	slices.SortStableFunc(ms, func(a, b member) int { return compareUTF16(a.name, b.name) })
	p.vals[depth] = vals // keep the grown buffer for the next object
	dst = append(dst, '{')
	first := true
	for i := range ms {
		if i+1 < len(ms) && ms[i+1].name == ms[i].name {
			continue // a later member of the same name wins
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendCanonicalString(dst, ms[i].name)
		dst = append(dst, ':')
		dst = append(dst, vals[ms[i].start:ms[i].end]...)
	}
	return append(dst, '}'), nil
}

func (p *canonParser) array(dst []byte, depth int) ([]byte, error) {
	p.pos++ // [
	dst = append(dst, '[')
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return append(dst, ']'), nil
	}
	for {
		p.skipSpace()
		var err error
		if dst, err = p.value(dst, depth+1); err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.pos >= len(p.src) {
			return dst, p.errorf("unexpected end of array")
		}
		if p.src[p.pos] == ',' {
			p.pos++
			dst = append(dst, ',')
			continue
		}
		if p.src[p.pos] == ']' {
			p.pos++
			return append(dst, ']'), nil
		}
		return dst, p.errorf("expected ',' or ']'")
	}
}

// number checks the RFC 8259 number grammar, then writes the double it
// denotes the way ECMAScript's Number.prototype.toString does.
func (p *canonParser) number(dst []byte) ([]byte, error) {
	start := p.pos
	s := p.src
	i := p.pos
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		p.pos = i
		return dst, p.errorf("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			p.pos = i
			return dst, p.errorf("invalid number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return dst, p.errorf("invalid number")
		}
	}
	p.pos = i
	f, err := strconv.ParseFloat(string(s[start:i]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return dst, p.errorf("invalid number: %v", err)
	}
	return AppendES6Number(dst, f), nil
}

// AppendES6Number writes f as ECMAScript's Number.prototype.toString
// (ECMA-262 §7.1.12.1) does, which RFC 8785 §3.2.2.3 adopts. Infinities and
// NaN, which JSON cannot express, are written as null like JSON.stringify.
func AppendES6Number(dst []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // also -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// The shortest digits that round-trip, and the decimal exponent.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	mant, exp, _ := cutByte(e, 'e')
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	x, _ := strconv.Atoi(string(exp))
	k := len(digits)
	n := x + 1 // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// str reads a JSON string at p.pos and returns its value.
func (p *canonParser) str() (string, error) {
	p.pos++ // opening quote
	s := p.src
	start := p.pos
	// Fast path: no escapes, valid UTF-8.
	for i := start; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			if utf8.Valid(s[start:i]) {
				p.pos = i + 1
				if i == start {
					return "", nil
				}
				// No copy: the string is used only while src is being
				// canonicalised, and src is not written meanwhile.
				return unsafe.String(&s[start], i-start), nil
			}
			break
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	out := make([]byte, 0, 16)
	for {
		if p.pos >= len(s) {
			return "", p.errorf("unterminated string")
		}
		c := s[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(out), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c == '\\':
			if p.pos+1 >= len(s) {
				return "", p.errorf("unterminated escape")
			}
			esc := s[p.pos+1]
			p.pos += 2
			switch esc {
			case '"', '\\', '/':
				out = append(out, esc)
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
				r, ok := p.hex4()
				if !ok {
					return "", p.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A pair is two escapes; anything else is a lone surrogate.
					r2 := rune(-1)
					if p.pos+1 < len(s) && s[p.pos] == '\\' && s[p.pos+1] == 'u' {
						save := p.pos
						p.pos += 2
						var ok2 bool
						if r2, ok2 = p.hex4(); !ok2 {
							return "", p.errorf("invalid \\u escape")
						}
						if utf16.DecodeRune(r, r2) == utf8.RuneError {
							p.pos = save // not a pair: the second escape stands alone
							r2 = -1
						}
					}
					if r2 < 0 {
						r = utf8.RuneError
					} else {
						r = utf16.DecodeRune(r, r2)
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", p.errorf("invalid escape \\%c", esc)
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			p.pos++
		default:
			r, size := utf8.DecodeRune(s[p.pos:])
			out = utf8.AppendRune(out, r) // invalid bytes become U+FFFD
			p.pos += size
		}
	}
}

func (p *canonParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.src) {
		return 0, false
	}
	var r rune
	for _, c := range p.src[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendCanonicalString writes s with RFC 8785's escaping: only '"', '\\'
// and control characters are escaped (the five with short forms short,
// the rest as \u00xx); everything else is written as UTF-8. Invalid UTF-8
// becomes U+FFFD, as encoding/json writes it.
func appendCanonicalString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// compareUTF16 orders strings by their UTF-16 code units (RFC 8785
// §3.2.3). It differs from byte order only where a character above U+FFFF
// meets one in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, sa := utf8.DecodeRuneInString(a)
		rb, sb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := firstUnit(ra), firstUnit(rb)
			if ua != ub {
				if ua < ub {
					return -1
				}
				return 1
			}
			// Same high surrogate: the low ones decide.
			if lowUnit(ra) < lowUnit(rb) {
				return -1
			}
			return 1
		}
		a, b = a[sa:], b[sb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	default:
		return 1
	}
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

func lowUnit(r rune) rune {
	if r >= 0x10000 {
		_, lo := utf16.EncodeRune(r)
		return lo
	}
	return 0
}
