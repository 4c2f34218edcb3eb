package embedded

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzWalkDataValid: walkData takes data for valid JSON only if it is,
// and takes all valid JSON but what it leaves to the fallback (escapes,
// bytes that are not UTF-8, deep nesting).
func FuzzWalkDataValid(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":1}`, ` {"a" : [1, -2.5e+3, true, false, null, "x", {}]} `, `{"a":}`, `{"a":1,}`,
		`[1,]`, `[01]`, `[-]`, `[1.]`, `[1e]`, `"a` + "\x01" + `"`, `{"a":"b"}x`, `{"a" "b"}`, `{1:2}`, `[tru]`, `nul`, ``, ` `,
		`{"a":[{"b":{"c":[[]]}}]}`, strings.Repeat("[", 70) + strings.Repeat("]", 70), `"\u00e9"`, `[1 2]`, `{"a":1 "b":2}`,
		"[\"\xff\"]", `[-0.0e-0]`, `[1E5]`, `{"a":1}}`, `]`, `[}`, `{]`, `["é` + "\x01" + `"]`, `["é`, `{"Change":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		b := keyBuilders.Get().(*keyBuilder)
		defer keyBuilders.Put(b)
		b.reset()
		got := b.walkData(d)
		b.changed = b.changed[:0]
		want := json.Valid(d)
		if got && !want {
			t.Fatalf("walkData takes %q, which is not valid JSON", d)
		}
		simple := bytes.IndexByte(d, '\\') < 0 && utf8.Valid(d) && bytes.Count(d, []byte("["))+bytes.Count(d, []byte("{")) <= 64
		if want && simple && !got {
			t.Fatalf("walkData leaves %q to the fallback", d)
		}
	})
}
