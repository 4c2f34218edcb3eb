package stream

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"

	"github.com/audittrail/audittrail/internal/event"
)

// Masked replaces each masked value. A fixed string, rather than a partial
// mask like "j***@example.com", so nothing of the value leaks.
const Masked = "***"

// piiSubstrings mark a data key as PII wherever they appear in its name
// (lower-cased, separators removed): "userEmail", "phone_number",
// "display_name", "externalId".
var piiSubstrings = []string{"mail", "phone", "name", "externalid", "loginid"}

// piiWords mark a key only as a whole word of its name (split on
// separators and camelCase), because as substrings they would hit unrelated
// keys such as "hotel", "telemetry" or "broadcast".
var piiWords = []string{"tel", "first", "last", "given", "family", "display", "middle", "surname", "nick", "fullname", "mobile"}

// isPIIKey reports whether a data key's value must be masked.
func isPIIKey(key string) bool {
	lower := strings.ToLower(key)
	compact := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, lower)
	for _, s := range piiSubstrings {
		if strings.Contains(compact, s) {
			return true
		}
	}
	for _, w := range keyWords(key) {
		for _, p := range piiWords {
			if w == p {
				return true
			}
		}
	}
	return false
}

// keyWords splits a key on separators and camelCase boundaries, lower-cased:
// "givenName" → [given name], "last-login_at" → [last login at].
func keyWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	runes := []rune(key)
	for i, r := range runes {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(runes[i-1]) || (i+1 < len(runes) && unicode.IsLower(runes[i+1]) && unicode.IsUpper(runes[i-1]))):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

// maskPII returns a copy of e with login IDs and every PII-named data value
// (however nested) masked. IDs, timestamps, action, IP, geo and device stay,
// so the masked trail still answers who-did-what-when by id.
func maskPII(e event.Event) event.Event {
	if len(e.LoginIDs) > 0 {
		ids := make([]string, len(e.LoginIDs))
		for i := range ids {
			ids[i] = Masked
		}
		e.LoginIDs = ids
	}
	if d := bytes.TrimSpace(e.Data); len(d) > 0 && d[0] == '{' {
		var v any
		dec := json.NewDecoder(bytes.NewReader(d))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			// Stored data is validated JSON; if it ever is not, dropping it
			// is the only way not to leak it.
			e.Data = json.RawMessage(`{}`)
			return e
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(maskValue(v, false)); err != nil {
			e.Data = json.RawMessage(`{}`)
			return e
		}
		e.Data = json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n"))
	}
	return e
}

// maskValue masks every scalar under a PII key but keeps the structure, so
// consumers that parse e.g. data.Change.display_name.{old,new} still can.
func maskValue(v any, masked bool) any {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			t[k] = maskValue(child, masked || isPIIKey(k))
		}
		return t
	case []any:
		for i, child := range t {
			t[i] = maskValue(child, masked)
		}
		return t
	case nil, bool:
		return t
	default: // string, json.Number
		if masked {
			return Masked
		}
		return t
	}
}
