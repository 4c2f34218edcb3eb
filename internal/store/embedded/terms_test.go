package embedded

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// FuzzDataKeys holds the keys of an event's data (walkData's one pass, or
// its fallback) to the reference definitions.
func FuzzDataKeys(f *testing.F) {
	for _, s := range []string{`{"a":"b","c":[1,"d",{"e":null}]}`, `{"x":"\u00e9\"q"}`, `{"a":`, `[]`, `"s"`,
		`{"k":"v\xff"}`, `{"Change":{"email":1}}`, ` {"a" : "b c" } `, `{"Change":{"a":1},"change":null,"CHANGE":{"b":[{"c":1}]}}`,
		`{"Change":{"a":1},"change":2}`, `[{"Change":{"a":1}}]`, `{"k":"Zoë ab","Change":{"é":{}}}`, `{"a":"b"} {"c":"d"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := event.Event{ID: "i", CompanyID: "c", Data: json.RawMessage(b)}
		got := indexKeys(&e)
		slices.Sort(got)
		if want := referenceKeys(&e); !slices.Equal(got, want) {
			t.Fatalf("data %q: keys %q, want %q", b, got, want)
		}
	})
}

func FuzzTokenKeys(f *testing.F) {
	for _, s := range []string{"John.Doe@example.com", "Zoë Größe", "a1_b2-C3", "", "東京 x", "\xff abc",
		"ab cd abé ab", "x-y é x y z", "ABC abc", "a\u00a0b", `a"b\c` + "\x01d", `x"é "x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want []string
		event.Tokenize(s, func(tok string) { want = append(want, pkey(keyToken, tok)) })
		want = distinct(want)
		b := keyBuilders.Get().(*keyBuilder)
		defer keyBuilders.Put(b)
		b.reset()
		b.tokens(s)
		got := make([]string, b.ek.len())
		for i := range got {
			got[i] = string(b.ek.key(i))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tokens(%q) = %q, want %q", s, got, want)
		}
	})
}

// distinct returns the first occurrence of each string of l, in order.
func distinct(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func BenchmarkIndexKeys(b *testing.B) {
	evs := storetest.Generate(1, 4096, storetest.GenOptions{})
	b.ResetTimer()
	for i := range b.N {
		indexKeys(&evs[i%len(evs)])
	}
}

func TestIndexKeysDistinct(t *testing.T) {
	evs := storetest.Generate(7, 300, storetest.GenOptions{})
	// One event with far more keys than the no-allocation set holds.
	big := evs[0]
	var sb strings.Builder
	sb.WriteString(`{"words":"`)
	for i := range 400 {
		fmt.Fprintf(&sb, "w%d w%d ", i, i%50)
	}
	sb.WriteString(`"}`)
	big.Data = json.RawMessage(sb.String())
	evs = append(evs, big)
	for i := range evs {
		got := indexKeys(&evs[i])
		want := slices.Clone(got)
		slices.Sort(want)
		want = slices.Compact(want)
		if len(got) != len(want) {
			t.Fatalf("event %d: %d keys, %d distinct", i, len(got), len(want))
		}
	}
	if n := len(indexKeys(&big)); n < 400 {
		t.Fatalf("big event has %d keys", n)
	}
}

func TestSortedPostings(t *testing.T) {
	m := newMemtable()
	var want []string
	for _, k := range []string{"t", "ta", "tab", "t\x00", "t\x00a", "tabcdefgh", "tabcdefg", "tabcdefgi", "A", "", "u\xff", "tabcdefg\x00"} {
		h := postingHash(k) & 3 // force hash collisions: the table must keep every key
		m.reservePostings(1)
		_, slot := m.find(h, []byte(k))
		m.newPosting([]byte(k), h, slot)
		want = append(want, k)
	}
	slices.Sort(want)
	var got []string
	for _, p := range sortedPostings(m) {
		got = append(got, p.key)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sortedKeys = %q, want %q", got, want)
	}
	// Keys sharing a hash are told apart by the table.
	for _, k := range want {
		if p, _ := m.find(postingHash(k)&3, []byte(k)); p == nil || p.key != k {
			t.Fatalf("find(%q) = %v", k, p)
		}
	}
	if p, _ := m.find(postingHash("absent")&3, []byte("absent")); p != nil {
		t.Fatalf("find(absent) = %q", p.key)
	}
}

func TestPostingTableGrows(t *testing.T) {
	m := newMemtable()
	if m.lookup("tx") != nil {
		t.Fatal("empty memtable finds a key")
	}
	for i := range 5000 {
		k := fmt.Sprintf("t%d", i)
		m.reservePostings(1)
		p, slot := m.find(postingHash(k), []byte(k))
		if p != nil {
			t.Fatalf("%q found before it was added", k)
		}
		m.newPosting([]byte(k), postingHash(k), slot)
	}
	for i := range 5000 {
		k := fmt.Sprintf("t%d", i)
		if p := m.lookup(k); p == nil || p.key != k {
			t.Fatalf("lookup(%q) after growth = %v", k, p)
		}
	}
}

// TestChangedFieldKeys: the key builder decodes data for its Change keys
// only when one of its strings is "change" in some case; the keys must be
// event.ChangedFields' whatever the case, escapes or other strings.
func TestChangedFieldKeys(t *testing.T) {
	for _, d := range []string{`{"Change":{"email":1,"name":2}}`, `{"cHaNgE":{"b":1}}`, `{"x":"change"}`,
		`{"exchange":{"a":1}}`, `{"changes":{"a":1}}`, `{"\u0043hange":{"c":1}}`, `{"Change":{"d":1},"k":"\\"}`,
		`{"Change":{"é":1},"v":"Zürich"}`, `{"Change":{"e":1}`, `{"a":{"Change":{"f":1}}}`, `[{"Change":{"g":1}}]`,
		`{"Change":{}}`, `{"Change":null}`, `{"Change":{"h":1},"Change":{"i":1}}`, `{"CHANGE":{"j":1}}`, ``} {
		checkChangedKeys(t, []byte(d))
	}
}

// checkChangedKeys fails t unless the changed-field keys indexKeys gives
// an event with data d are event.ChangedFields of it.
func checkChangedKeys(t *testing.T, d []byte) {
	t.Helper()
	e := event.Event{ID: "i", CompanyID: "c", Data: json.RawMessage(d)}
	var got []string
	for _, k := range indexKeys(&e) {
		if k[0] == keyChanged {
			got = append(got, k[1:])
		}
	}
	want := e.ChangedFields()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("data %q: changed-field keys %q, want %q", d, got, want)
	}
}

func TestSortedPostingsMany(t *testing.T) {
	// Enough keys, sharing long prefixes and differing in every byte
	// position, to exercise each radix pass and the tie-breaking.
	m := newMemtable()
	var want []string
	for i := range 3000 {
		k := fmt.Sprintf("%c%08x", "tur"[i%3], uint32(i*2654435761))
		if i%7 == 0 {
			k = k[:1+i%9]
		}
		m.reservePostings(1)
		p, slot := m.find(postingHash(k), []byte(k))
		if p != nil {
			continue
		}
		m.newPosting([]byte(k), postingHash(k), slot)
		want = append(want, k)
	}
	slices.Sort(want)
	var got []string
	for _, p := range sortedPostings(m) {
		got = append(got, p.key)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sortedPostings disagrees with slices.Sort on %d keys", len(want))
	}
}

func TestMemtablePrefixPostings(t *testing.T) {
	m := newMemtable()
	keys := []string{"tabcd", "tabce", "tabc", "tabx", "tab", "uabcd", "tzzzz"}
	for i := range 3000 { // enough tokens that buckets hold several prefixes
		keys = append(keys, fmt.Sprintf("t%x", i*7919))
	}
	for row, k := range keys {
		h := postingHash(k)
		m.reservePostings(1)
		p, slot := m.find(h, []byte(k))
		if p == nil {
			p = m.newPosting([]byte(k), h, slot)
		}
		p.add(uint32(row), &m.rowSlab)
	}
	for _, prefix := range []string{"tabc", "tab", "ta", "tzzz", "t1f0", "tqqq"} {
		var want []uint32
		for row, k := range keys {
			if k[0] == keyToken && strings.HasPrefix(k, prefix) {
				want = append(want, uint32(row))
			}
		}
		var got []uint32
		if err := m.prefixPostings(prefix, func(bm *roaring.Bitmap) { got = append(got, bm.ToArray()...) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("prefix %q: rows %v, want %v", prefix, got, want)
		}
	}
}

// TestIndexTokensMixedASCII: tokenKeys hands the tokens before a non-ASCII
// byte to the key builder twice; the event's token keys must still be its
// tokens (event.Tokens), each once, in first-seen order.
func TestIndexTokensMixedASCII(t *testing.T) {
	e := event.Event{ID: "i", CompanyID: "c", Level: event.LevelCompany, UserID: "Ab cd-Été x",
		ActorID: "été", Action: "Zoë.Größe ok", RemoteAddress: "1.2.3.4",
		Data: json.RawMessage(`{"k":"new york Zürich york ab","v":"\u00e9 ab"}`)}
	var got []string
	for _, k := range indexKeys(&e) {
		if k[0] == keyToken {
			got = append(got, k[1:])
		}
	}
	if want := e.Tokens(); !slices.Equal(got, want) {
		t.Fatalf("token keys %q, want %q", got, want)
	}
}

// TestIndexKeysReference holds every key of the test trail, and of events
// whose fields and data take the fallbacks, to the reference definitions.
func TestIndexKeysReference(t *testing.T) {
	evs := storetest.Generate(7, 2000, storetest.GenOptions{})
	for i, d := range []string{`{"a":"Zoë \"x\" y"}`, `{"a":"b` + "\xff" + `"}`, `{"Change":{"k":1}} x`, `{"a":"b","Change":{"ab cd":[1]}}`,
		`{"a":"` + strings.Repeat("w ", 300) + `é"}`, strings.Repeat(`[`, 65) + `"deep"` + strings.Repeat(`]`, 65), ` `, `null`} {
		e := evs[i]
		e.UserID, e.Action = `Ab"cd\ef`+"\x01g", "x\x7fy Ünï"
		e.Data = json.RawMessage(d)
		evs = append(evs, e)
	}
	if err := CheckIndexKeys(evs); err != nil {
		t.Fatal(err)
	}
}
