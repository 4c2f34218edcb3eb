package embedded

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":1}`, ` {"a" : [1, -2.5e+3, true, false, null, "x", {}]} `, `{"a":}`, `{"a":1,}`,
		`[1,]`, `[01]`, `[-]`, `[1.]`, `[1e]`, `"a` + "\x01" + `"`, `{"a":"b"}x`, `{"a" "b"}`, `{1:2}`, `[tru]`, `nul`, ``, ` `,
		`{"a":[{"b":{"c":[[]]}}]}`, strings.Repeat("[", 70) + strings.Repeat("]", 70), `"\u00e9"`, `[1 2]`, `{"a":1 "b":2}`,
		"[\"\xff\"]", `[-0.0e-0]`, `[1E5]`, `{"a":1}}`, `]`, `[}`, `{]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b)
		if got := validJSON(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
