package scim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax is returned for a SCIM path or filter that does not parse.
var ErrSyntax = errors.New("scim: invalid path or filter")

// Limits that keep a hostile filter cheap to parse and evaluate.
const (
	maxFilterLen   = 4096
	maxFilterDepth = 32
)

// Path is a parsed PATCH path (RFC 7644 §3.5.2):
// [URI ":"] attr ["[" filter "]"] ["." subAttr], or attr "." subAttr.
type Path struct {
	URI     string // schema URN of an extension attribute, "" for core
	Attr    string
	Filter  *Filter // selects entries of a multi-valued attribute
	SubAttr string
}

func (p Path) String() string {
	var b strings.Builder
	if p.URI != "" {
		b.WriteString(p.URI + ":")
	}
	b.WriteString(p.Attr)
	if p.Filter != nil {
		b.WriteString("[" + p.Filter.String() + "]")
	}
	if p.SubAttr != "" {
		b.WriteString("." + p.SubAttr)
	}
	return b.String()
}

// FilterOp is a filter node's operator.
type FilterOp string

// Operators of RFC 7644 §3.4.2.2, lower-cased.
const (
	OpEq  FilterOp = "eq"
	OpNe  FilterOp = "ne"
	OpCo  FilterOp = "co"
	OpSw  FilterOp = "sw"
	OpEw  FilterOp = "ew"
	OpGt  FilterOp = "gt"
	OpLt  FilterOp = "lt"
	OpGe  FilterOp = "ge"
	OpLe  FilterOp = "le"
	OpPr  FilterOp = "pr"
	OpAnd FilterOp = "and"
	OpOr  FilterOp = "or"
	OpNot FilterOp = "not"
	// OpValuePath is attr[filter] inside a filter: Left holds the filter on
	// the entries of Attr.
	OpValuePath FilterOp = "[]"
)

// Filter is a node of a parsed filter expression.
type Filter struct {
	Op FilterOp
	// Attr is the attribute path of a comparison, pr or value path
	// ("emails.type", "urn:…:User:department").
	Attr string
	// Value is the compared value: string, float64, bool or nil.
	Value       any
	Left, Right *Filter
}

func (f *Filter) String() string {
	switch f.Op {
	case OpAnd, OpOr:
		return "(" + f.Left.String() + " " + string(f.Op) + " " + f.Right.String() + ")"
	case OpNot:
		return "not (" + f.Left.String() + ")"
	case OpPr:
		return f.Attr + " pr"
	case OpValuePath:
		return f.Attr + "[" + f.Left.String() + "]"
	}
	return f.Attr + " " + string(f.Op) + " " + formatValue(f.Value)
}

func formatValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprint(v)
}

// ParsePath parses a PATCH operation's path. A path whose printed form
// (values quoted and escaped) would exceed the length limit is refused, so
// that whatever is accepted prints as something accepted again (found by
// FuzzParsePath: 1,500 raw bytes escape to 6,000).
func ParsePath(s string) (Path, error) {
	p, err := parsePath(s)
	if err == nil && len(p.String()) > maxFilterLen {
		return Path{}, fmt.Errorf("%w: path longer than %d bytes once escaped", ErrSyntax, maxFilterLen)
	}
	return p, err
}

func parsePath(s string) (Path, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxFilterLen {
		return Path{}, fmt.Errorf("%w: empty or too long path", ErrSyntax)
	}
	var p Path
	head := s
	if i := strings.IndexByte(s, '['); i >= 0 {
		head = s[:i]
	}
	// A URN holds dots ("2.0") and colons: the attribute starts after the
	// last colon before any filter.
	if strings.HasPrefix(strings.ToLower(head), "urn:") {
		i := strings.LastIndexByte(head, ':')
		p.URI, s = s[:i], s[i+1:]
		if p.URI == "" {
			return Path{}, fmt.Errorf("%w: %q", ErrSyntax, s)
		}
	}
	name, rest := splitName(s)
	if name == "" {
		return Path{}, fmt.Errorf("%w: no attribute name in %q", ErrSyntax, s)
	}
	p.Attr = name
	if strings.HasPrefix(rest, "[") {
		end := matchingBracket(rest)
		if end < 0 {
			return Path{}, fmt.Errorf("%w: unclosed [ in %q", ErrSyntax, s)
		}
		f, err := ParseFilter(rest[1:end])
		if err != nil {
			return Path{}, err
		}
		p.Filter, rest = f, rest[end+1:]
	}
	if strings.HasPrefix(rest, ".") {
		sub, r := splitName(rest[1:])
		if sub == "" {
			return Path{}, fmt.Errorf("%w: empty sub-attribute in %q", ErrSyntax, s)
		}
		p.SubAttr, rest = sub, r
	}
	if rest != "" {
		return Path{}, fmt.Errorf("%w: unexpected %q", ErrSyntax, rest)
	}
	return p, nil
}

// splitName reads ATTRNAME = ALPHA *(nameChar) where nameChar allows "-",
// "_", "$" and digits.
func splitName(s string) (string, string) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$' || (i > 0 && (c >= '0' && c <= '9' || c == '-')) {
			i++
			continue
		}
		break
	}
	return s[:i], s[i:]
}

// matchingBracket finds the "]" closing s[0]=="[", skipping quoted strings.
func matchingBracket(s string) int {
	depth, inStr := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '\'':
			if j := strings.IndexByte(s[i+1:], '\''); j >= 0 {
				i += j + 1
			}
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// ParseFilter parses a filter expression (RFC 7644 §3.4.2.2) as used in
// GET ?filter= and inside PATCH paths. "and" binds tighter than "or";
// operators and keywords are case-insensitive. As for paths, a filter
// whose printed form exceeds the length limit is refused.
func ParseFilter(s string) (*Filter, error) {
	f, err := parseFilter(s)
	if err == nil && len(f.String()) > maxFilterLen {
		return nil, fmt.Errorf("%w: filter longer than %d bytes once escaped", ErrSyntax, maxFilterLen)
	}
	return f, err
}

func parseFilter(s string) (*Filter, error) {
	if len(s) > maxFilterLen {
		return nil, fmt.Errorf("%w: filter longer than %d bytes", ErrSyntax, maxFilterLen)
	}
	p := &filterParser{s: s}
	f, err := p.or(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%w: unexpected %q at %d", ErrSyntax, p.s[p.i:], p.i)
	}
	return f, nil
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *filterParser) errf(format string, a ...any) error {
	return fmt.Errorf("%w: %s at %d", ErrSyntax, fmt.Sprintf(format, a...), p.i)
}

// keyword consumes word (case-insensitive) when it stands alone.
func (p *filterParser) keyword(word string) bool {
	p.space()
	end := p.i + len(word)
	if end > len(p.s) || !strings.EqualFold(p.s[p.i:end], word) {
		return false
	}
	if end < len(p.s) && p.s[end] != ' ' && p.s[end] != '(' && p.s[end] != '\t' {
		return false
	}
	p.i = end
	return true
}

func (p *filterParser) or(depth int) (*Filter, error) {
	left, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		right, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		left = &Filter{Op: OpOr, Left: left, Right: right}
	}
	return left, nil
}

func (p *filterParser) and(depth int) (*Filter, error) {
	left, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		right, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		left = &Filter{Op: OpAnd, Left: left, Right: right}
	}
	return left, nil
}

func (p *filterParser) unary(depth int) (*Filter, error) {
	if depth > maxFilterDepth {
		return nil, p.errf("nested deeper than %d", maxFilterDepth)
	}
	p.space()
	if p.keyword("not") {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '(' {
			return nil, p.errf("want ( after not")
		}
		inner, err := p.group(depth)
		if err != nil {
			return nil, err
		}
		return &Filter{Op: OpNot, Left: inner}, nil
	}
	if p.i < len(p.s) && p.s[p.i] == '(' {
		return p.group(depth)
	}
	return p.comparison(depth)
}

func (p *filterParser) group(depth int) (*Filter, error) {
	p.i++ // (
	f, err := p.or(depth + 1)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != ')' {
		return nil, p.errf("want )")
	}
	p.i++
	return f, nil
}

func (p *filterParser) attrPath() (string, error) {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == ' ' || c == '\t' || c == '[' || c == ']' || c == '(' || c == ')' || c == '"' {
			break
		}
		p.i++
	}
	a := p.s[start:p.i]
	if a == "" {
		return "", p.errf("want an attribute")
	}
	// Check the shape: optional URN, then name(.name)?.
	check := a
	if strings.HasPrefix(strings.ToLower(a), "urn:") {
		check = a[strings.LastIndexByte(a, ':')+1:]
	}
	name, rest := splitName(check)
	if name == "" {
		return "", p.errf("invalid attribute %q", a)
	}
	if rest != "" {
		if rest[0] != '.' {
			return "", p.errf("invalid attribute %q", a)
		}
		if sub, r := splitName(rest[1:]); sub == "" || r != "" {
			return "", p.errf("invalid attribute %q", a)
		}
	}
	return a, nil
}

func (p *filterParser) comparison(depth int) (*Filter, error) {
	attr, err := p.attrPath()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.s) && p.s[p.i] == '[' {
		p.i++
		inner, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ']' {
			return nil, p.errf("want ]")
		}
		p.i++
		return &Filter{Op: OpValuePath, Attr: attr, Left: inner}, nil
	}
	p.space()
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z') {
		p.i++
	}
	op := FilterOp(strings.ToLower(p.s[start:p.i]))
	switch op {
	case OpPr:
		return &Filter{Op: OpPr, Attr: attr}, nil
	case OpEq, OpNe, OpCo, OpSw, OpEw, OpGt, OpLt, OpGe, OpLe:
	default:
		return nil, p.errf("unknown operator %q", op)
	}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	return &Filter{Op: op, Attr: attr, Value: v}, nil
}

func (p *filterParser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, p.errf("want a value")
	}
	if p.s[p.i] == '\'' {
		// Not RFC 7644, but some clients quote with apostrophes:
		// emails[type eq 'work'].value.
		end := strings.IndexByte(p.s[p.i+1:], '\'')
		if end < 0 {
			return nil, p.errf("unterminated string")
		}
		v := p.s[p.i+1 : p.i+1+end]
		p.i += end + 2
		return v, nil
	}
	if p.s[p.i] == '"' {
		end := p.i + 1
		for end < len(p.s) && p.s[end] != '"' {
			if p.s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(p.s) {
			return nil, p.errf("unterminated string")
		}
		s, err := strconv.Unquote(p.s[p.i : end+1])
		if err != nil {
			// JSON escapes that Go's unquote refuses (\/) are rare; keep the raw text.
			s = p.s[p.i+1 : end]
		}
		p.i = end + 1
		return s, nil
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != ')' && p.s[p.i] != ']' && p.s[p.i] != '\t' {
		p.i++
	}
	word := p.s[start:p.i]
	switch strings.ToLower(word) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	n, err := strconv.ParseFloat(word, 64)
	if err != nil || n != n {
		return nil, p.errf("invalid value %q", word)
	}
	return n, nil
}

// Match evaluates f against one JSON object (a resource or an entry of a
// multi-valued attribute). Attribute names compare case-insensitively, as
// SCIM requires; strings compare case-insensitively too (caseExact is
// false for the attributes IdPs filter on).
func (f *Filter) Match(obj map[string]any) bool {
	switch f.Op {
	case OpAnd:
		return f.Left.Match(obj) && f.Right.Match(obj)
	case OpOr:
		return f.Left.Match(obj) || f.Right.Match(obj)
	case OpNot:
		return !f.Left.Match(obj)
	case OpValuePath:
		for _, entry := range asList(lookup(obj, f.Attr)) {
			if m, ok := entry.(map[string]any); ok && f.Left.Match(m) {
				return true
			}
		}
		return false
	}
	v := lookup(obj, f.Attr)
	if f.Op == OpPr {
		return v != nil && v != "" && !(isList(v) && len(asList(v)) == 0)
	}
	if list, ok := v.([]any); ok { // a multi-valued attribute matches when any value does
		for _, x := range list {
			if compare(f.Op, x, f.Value) {
				return true
			}
		}
		return false
	}
	return compare(f.Op, v, f.Value)
}

func compare(op FilterOp, have, want any) bool {
	switch w := want.(type) {
	case nil:
		return (op == OpEq) == (have == nil)
	case bool:
		h, ok := have.(bool)
		return ok && ((op == OpEq) == (h == w)) && (op == OpEq || op == OpNe)
	case float64:
		h, ok := have.(float64)
		if !ok {
			return false
		}
		switch op {
		case OpEq:
			return h == w
		case OpNe:
			return h != w
		case OpGt:
			return h > w
		case OpLt:
			return h < w
		case OpGe:
			return h >= w
		case OpLe:
			return h <= w
		}
		return false
	case string:
		h, ok := have.(string)
		if !ok {
			return op == OpNe
		}
		h, w = strings.ToLower(h), strings.ToLower(w)
		switch op {
		case OpEq:
			return h == w
		case OpNe:
			return h != w
		case OpCo:
			return strings.Contains(h, w)
		case OpSw:
			return strings.HasPrefix(h, w)
		case OpEw:
			return strings.HasSuffix(h, w)
		case OpGt:
			return h > w
		case OpLt:
			return h < w
		case OpGe:
			return h >= w
		case OpLe:
			return h <= w
		}
	}
	return false
}

// lookup finds an attribute path ("name.givenName", "urn:…:User:department")
// in obj, case-insensitively.
func lookup(obj map[string]any, path string) any {
	if strings.HasPrefix(strings.ToLower(path), "urn:") {
		i := strings.LastIndexByte(path, ':')
		ext, _ := getFold(obj, path[:i]).(map[string]any)
		if ext == nil {
			return nil
		}
		return lookup(ext, path[i+1:])
	}
	head, rest, dotted := strings.Cut(path, ".")
	v := getFold(obj, head)
	if !dotted {
		return v
	}
	switch v := v.(type) {
	case map[string]any:
		return getFold(v, rest)
	case []any: // emails.type: the values of every entry
		var out []any
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				if x := getFold(m, rest); x != nil {
					out = append(out, x)
				}
			}
		}
		if out == nil {
			return nil
		}
		return out
	}
	return nil
}

func getFold(obj map[string]any, key string) any {
	if v, ok := obj[key]; ok {
		return v
	}
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func isList(v any) bool { _, ok := v.([]any); return ok }

func asList(v any) []any {
	switch v := v.(type) {
	case []any:
		return v
	case nil:
		return nil
	}
	return []any{v}
}
