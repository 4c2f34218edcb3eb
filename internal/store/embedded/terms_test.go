package embedded

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

func FuzzDataStrings(f *testing.F) {
	for _, s := range []string{`{"a":"b","c":[1,"d",{"e":null}]}`, `{"x":"\u00e9\"q"}`, `{"a":`, `[]`, `"s"`,
		`{"k":"v\xff"}`, `{"Change":{"email":1}}`, ` {"a" : "b c" } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got []string
		event.DataStrings(b, func(s string) { want = append(want, s) })
		dataStrings(b, func(s string) { got = append(got, s) })
		if !slices.Equal(got, want) {
			t.Fatalf("dataStrings(%q) = %q, want %q", b, got, want)
		}
		e := event.Event{Data: json.RawMessage(b)}
		g, w := changedFields(&e), e.ChangedFields()
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Fatalf("changedFields(%q) = %q, want %q", b, g, w)
		}
	})
}
