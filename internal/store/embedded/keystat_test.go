package embedded

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

// TestKeyStats breaks the dictionary and postings of the segment named by
// AUDITTRAIL_SEGSTAT down by field (the key's first byte) and by posting
// size class: which keys the index bytes go to (a diagnostic; skipped
// without it). Dictionary bytes per key are its front-coded entry scaled by
// the section's overall compression, so they are estimates; posting bytes
// are exact.
func TestKeyStats(t *testing.T) {
	path := os.Getenv("AUDITTRAIL_SEGSTAT")
	if path == "" {
		t.Skip("set AUDITTRAIL_SEGSTAT to a segment file to print where its index bytes go")
	}
	s, err := openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	type agg struct {
		keys, rows        int
		rawDict, postings int
	}
	byField := map[string]*agg{}
	byClass := map[string]*agg{}
	class := func(n uint64) string {
		switch {
		case n == 1:
			return "1"
		case n <= 4:
			return "2-4"
		case n <= 48:
			return "5-48"
		case n <= 1024:
			return "49-1024"
		case n <= 4096:
			return "1025-4096"
		}
		return ">4096"
	}
	var prev []byte
	totalRaw := 0
	err = s.scanDict("", func(i int, key []byte) bool {
		shared := 0
		for shared < len(prev) && shared < len(key) && prev[shared] == key[shared] {
			shared++
		}
		raw := 2 + len(key) - shared
		if i%dictBlockKeys == 0 {
			raw = 1 + len(key)
		}
		prev = append(prev[:0], key...)
		b, err := s.span(secPostOffs, secPosts, i)
		if err != nil {
			t.Fatal(err)
		}
		bm, err := s.postingAt(i)
		if err != nil {
			t.Fatal(err)
		}
		n := bm.GetCardinality()
		f := string(key[:1])
		if key[0] == keyToken {
			f = tokenClass(key[1:], n)
		}
		for _, a := range []*agg{mapAgg(byField, f), mapAgg(byClass, class(n))} {
			a.keys++
			a.rows += int(n)
			a.rawDict += raw
			a.postings += len(b)
		}
		totalRaw += raw
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	dictBytes := len(s.sec[secDictKeys]) + len(s.sec[secDictOffs])
	scale := float64(dictBytes) / float64(totalRaw)
	perKeyOff := float64(len(s.sec[secPostOffs])+len(s.sec[secPostCRCs])) / float64(s.meta.Keys)
	t.Logf("rows %d, keys %d (%.2f per row); dictionary %.1f B/row (%.2f of raw front-coded), posting offsets+CRCs %.2f B/key",
		s.n, s.meta.Keys, float64(s.meta.Keys)/float64(s.n), float64(dictBytes)/float64(s.n), scale, perKeyOff)
	print := func(title string, m map[string]*agg) {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.SortFunc(names, func(a, b string) int {
			ca := float64(m[a].rawDict)*scale + float64(m[a].postings) + perKeyOff*float64(m[a].keys)
			cb := float64(m[b].rawDict)*scale + float64(m[b].postings) + perKeyOff*float64(m[b].keys)
			return int(cb - ca)
		})
		t.Logf("%-20s %9s %9s %11s %9s %9s %9s", title, "keys", "keys/row", "rows/key", "dict B/r", "post B/r", "all B/r")
		for _, k := range names {
			a := m[k]
			n := float64(s.n)
			d, p := float64(a.rawDict)*scale/n, float64(a.postings)/n
			all := d + p + perKeyOff*float64(a.keys)/n
			t.Logf("%-20s %9d %9.3f %11s %9.2f %9.2f %9.2f", k, a.keys, float64(a.keys)/n,
				fmt.Sprintf("%.1f", float64(a.rows)/float64(a.keys)), d, p, all)
		}
	}
	print("field", byField)
	print("rows per key", byClass)
}

func mapAgg[T any](m map[string]*T, k string) *T {
	if a, ok := m[k]; ok {
		return a
	}
	a := new(T)
	m[k] = a
	return a
}

// tokenClass names the kind of a token for TestKeyStats.
func tokenClass(tok []byte, n uint64) string {
	digits, hex := true, true
	for _, c := range tok {
		digits = digits && '0' <= c && c <= '9'
		hex = hex && ('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}
	one := ""
	if n == 1 {
		one = ",1"
	}
	switch {
	case len(tok) == 29 && tok[1] == '2':
		return "t:" + string(tok[:2]) + "id" + one
	case len(tok) == 20:
		return "t:20ch" + one
	case digits:
		return fmt.Sprintf("t:digits%d%s", min(len(tok), 12), one)
	case hex:
		return "t:hex" + one
	}
	return "t:other" + one
}
