package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Tokenize calls fn with every token of s: a maximal run of Unicode letters
// and digits, lower-cased. This is the one definition of a token; search
// queries are tokenised the same way (shared/docs: "Free text").
func Tokenize(s string, fn func(tok string)) {
	start := -1
	for i, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			fn(strings.ToLower(s[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		fn(strings.ToLower(s[start:]))
	}
}

// Tokens returns the distinct tokens of every searchable string of the
// event, in first-seen order.
func (e *Event) Tokens() []string {
	seen := make(map[string]struct{}, 32)
	out := make([]string, 0, 32)
	add := func(tok string) {
		if _, ok := seen[tok]; !ok {
			seen[tok] = struct{}{}
			out = append(out, tok)
		}
	}
	for _, s := range []string{e.UserID, e.ActorID, e.Action, e.Type, e.Device, e.Method, e.Geo, e.RemoteAddress} {
		Tokenize(s, add)
	}
	for _, s := range e.LoginIDs {
		Tokenize(s, add)
	}
	for _, s := range e.Tenants {
		Tokenize(s, add)
	}
	DataStrings(e.Data, func(s string) { Tokenize(s, add) })
	return out
}

// DataStrings calls fn with every object key and every string value inside
// a JSON document, however nested. Numbers, booleans and nulls are not text.
func DataStrings(data json.RawMessage, fn func(s string)) {
	if len(bytes.TrimSpace(data)) == 0 {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		t, err := dec.Token()
		if err != nil {
			return
		}
		if s, ok := t.(string); ok {
			fn(s)
		}
	}
}

// ChangedFields returns the keys of data.Change, the field-level changes of
// a UserModified or SCIMEvent record.
func (e *Event) ChangedFields() []string {
	if len(e.Data) == 0 {
		return nil
	}
	var d struct {
		Change map[string]json.RawMessage `json:"Change"`
	}
	if json.Unmarshal(e.Data, &d) != nil || len(d.Change) == 0 {
		return nil
	}
	out := make([]string, 0, len(d.Change))
	for k := range d.Change {
		out = append(out, k)
	}
	return out
}
