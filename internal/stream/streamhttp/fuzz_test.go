package streamhttp

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseFrom: the replay body's "from" is refused or read as a time
// that reads back the same when sent again in either accepted form.
func FuzzParseFrom(f *testing.F) {
	for _, s := range []string{`"2026-01-02T03:04:05Z"`, `"2026-01-02T03:04:05.123+02:00"`, `1700000000000`, `"1700000000000"`, `-1`, `null`, `""`, `1e3`, `"\u0031"`, `99999999999999999999`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tm, err := ParseFrom(json.RawMessage(raw))
		if err != nil {
			return
		}
		if raw[0] != '"' && tm.Before(time.UnixMilli(0)) {
			t.Fatalf("ParseFrom(%q) = %v: negative epoch milliseconds accepted", raw, tm)
		}
		again, err := ParseFrom(json.RawMessage(`"` + tm.Format(time.RFC3339Nano) + `"`))
		if err != nil || !again.Equal(tm) {
			// RFC 3339 cannot carry years beyond 9999: those came from
			// epoch milliseconds and must read back that way.
			ms, _ := json.Marshal(tm.UnixMilli())
			if back, err2 := ParseFrom(ms); err2 != nil || !back.Equal(tm) {
				t.Fatalf("ParseFrom(%q) = %v, which does not read back (%v, %v)", raw, tm, err, err2)
			}
		}
	})
}
