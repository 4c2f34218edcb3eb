package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

// TestTermAndBothWays checks that a term applied row by row (few
// candidates) and as bitmap ANDs (many) give cand ∩ (∪ parts), and the
// same for andNotAny, on random bitmaps of every container kind.
func TestTermAndBothWays(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randBitmap := func(n, span int) *roaring.Bitmap {
		bm := roaring.New()
		for range n {
			bm.Add(uint32(r.IntN(span)))
		}
		if r.IntN(2) == 0 {
			bm.AddRange(uint64(r.IntN(span)), uint64(span)) // a run
		}
		bm.RunOptimize()
		return bm
	}
	for i := range 200 {
		span := 1 + r.IntN(300_000)
		cand := randBitmap([]int{3, rowFilterMax, rowFilterMax + 1, 5000}[i%4], span)
		parts := make([]*roaring.Bitmap, 1+r.IntN(3))
		for j := range parts {
			parts[j] = randBitmap(r.IntN(20_000), span)
		}
		before := cand.Clone()
		want := roaring.And(cand, roaring.FastOr(parts...))
		tm := term{parts: parts}
		if got := tm.and(cand); !got.Equals(want) {
			t.Fatalf("case %d: and: %d rows, want %d", i, got.GetCardinality(), want.GetCardinality())
		}
		wantNot := roaring.AndNot(cand, roaring.FastOr(parts...))
		if got := andNotAny(cand, parts); !got.Equals(wantNot) {
			t.Fatalf("case %d: andNot: %d rows, want %d", i, got.GetCardinality(), wantNot.GetCardinality())
		}
		if !cand.Equals(before) {
			t.Fatalf("case %d: the candidates were modified", i)
		}
	}
}

// TestResidencyReleasesSegments: with a budget every process exceeds,
// searches release the segments' mappings, and searches after the release
// answer exactly as before it; with no budget nothing is released.
func TestResidencyReleasesSegments(t *testing.T) {
	dir := t.TempDir()
	mut := func(budget int64) func(*Options) {
		return func(o *Options) { o.MemtableEvents = 1000; o.ResidentSegmentBytes = budget }
	}
	e := openT(t, dir, mut(-1))
	g := newGen(5)
	for range 8 {
		appendT(t, e, g.batch(1000))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	queries := []query.Query{
		{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: true, UserIDs: []string{"u2"}, Size: 100},
		{CompanyID: "c1", ProjectID: "P2", IncludeProject: true, Size: 50, Page: 3},
		{CompanyID: "c2", IncludeCompany: true, IncludeProject: true, ProjectID: "P1", TextTokens: []string{"chrome"}, Size: 100, OldestFirst: true},
	}
	run := func(e *Engine) [][]string {
		var out [][]string
		for _, q := range queries {
			res, err := e.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{strconv.Itoa(res.Total)}
			for _, ev := range res.Events {
				ids = append(ids, ev.ID)
			}
			out = append(out, ids)
		}
		return out
	}

	e = openT(t, dir, mut(-1))
	want := run(e)
	for range residencyCheckTouches {
		run(e)
	}
	if n := e.res.releases.Load(); n != 0 {
		t.Fatalf("%d releases with no budget", n)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = openT(t, dir, mut(1))
	defer e.Close()
	if len(e.ix.segs) < 2 {
		t.Fatalf("%d segments, want several", len(e.ix.segs))
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.res.releases.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d releases after many searches over a budget of 1 byte", e.res.releases.Load())
		}
		if got := run(e); !reflect.DeepEqual(got, want) {
			t.Fatalf("answers changed after a release:\n%v\nwant\n%v", got, want)
		}
	}
	if got := run(e); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("answers changed after a release")
	}
}

// TestHotPostingsSmallAndAbsent: small postings of fields with few values,
// and their absence, are kept per segment; answers stay exact across
// segments that hold the value and segments that do not, and queries for
// values that exist nowhere cannot grow what is kept beyond its bound.
func TestHotPostingsSmallAndAbsent(t *testing.T) {
	e := openT(t, t.TempDir(), func(o *Options) { o.MemtableEvents = 1000; o.noBackgroundMerge = true })
	defer e.Close()
	g := newGen(3)
	var all []event.Event
	for i := range 5 {
		b := g.batch(1000)
		if i == 2 {
			for j := range 7 { // a rare action in one segment only
				b[j*100].Action = "RareAction"
			}
		}
		appendT(t, e, b)
		all = append(all, b...)
		if err := e.flushNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.ix.segs); n < 4 {
		t.Fatalf("%d segments, want several", n)
	}
	for _, q := range []query.Query{
		{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: true, Actions: []string{"RareAction"}, Size: 100},
		{CompanyID: "c1", IncludeCompany: true, Size: 100},
		{CompanyID: "c2", ProjectID: "P2", IncludeProject: true, Devices: []string{"Mobile"}, Geos: []string{"IL"}, Size: 10},
	} {
		want := 0
		for i := range all {
			if q.Match(&all[i]) {
				want++
			}
		}
		for round := range 3 { // the first reads the dictionary, later ones the kept copies
			res, err := e.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != want {
				t.Fatalf("round %d: %+v: total %d, want %d", round, q, res.Total, want)
			}
		}
	}
	e.mu.RLock()
	absent := 0
	for _, s := range e.ix.segs {
		if hp, ok := s.hotPostings().m[pkey(keyAction, "RareAction")]; ok && hp.bm == nil {
			absent++
		}
	}
	e.mu.RUnlock()
	if absent == 0 || absent == len(e.ix.segs) {
		t.Fatalf("RareAction recorded absent in %d of %d segments", absent, len(e.ix.segs))
	}
	for i := range 20_000 {
		q := query.Query{CompanyID: "c1", IncludeCompany: true, Actions: []string{fmt.Sprintf("NoSuchAction%d", i)}, Size: 1}
		if res, err := e.Search(context.Background(), q); err != nil || res.Total != 0 {
			t.Fatalf("%v, %d rows for an action that does not exist", err, res.Total)
		}
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, s := range e.ix.segs {
		if h := s.hotPostings(); h.usedSmall > hotSmallBytes {
			t.Fatalf("%d bytes of small postings kept, bound %d", h.usedSmall, hotSmallBytes)
		}
	}
}

// TestDictFindMatchesFullSearch: the lookup through the in-memory prefixes
// of the blocks' first keys picks the same dictionary block as a binary
// search over every block's first key, for every stored key, for strings
// between them, around their 8-byte prefixes (blocks whose first keys
// share one) and beyond both ends, and so does its fallback for first keys
// out of order; and every stored key is then found.
func TestDictFindMatchesFullSearch(t *testing.T) {
	e := openT(t, t.TempDir(), func(o *Options) { o.MemtableEvents = 1000; o.noBackgroundMerge = true })
	defer e.Close()
	g := newGen(21)
	for range 4 {
		b := g.batch(1000)
		for i := range b {
			b[i].UserID = fmt.Sprintf("user-%d", g.r.IntN(5000)) // many keys
		}
		appendT(t, e, b)
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, s := range e.ix.segs {
		nb := s.dictBlocks()
		if nb < 48 {
			t.Fatalf("%d dictionary blocks, want many", nb)
		}
		// Built when the segment was opened, not at the first lookup.
		if len(s.dictPrefix.pre) != nb || !s.dictPrefix.ok {
			t.Fatalf("after open: %d prefixes (ok %v), want %d", len(s.dictPrefix.pre), s.dictPrefix.ok, nb)
		}
		var keys []string
		if err := s.scanDict("", func(_ int, k []byte) bool { keys = append(keys, string(k)); return true }); err != nil {
			t.Fatal(err)
		}
		probes := []string{"", "\x00", "\xff\xff", strings.Repeat("\xff", 8), strings.Repeat("\xff", 9), keys[len(keys)-1] + "\x00"}
		for _, k := range keys {
			probes = append(probes, k, k+"\x00", k[:len(k)-1])
			for n := 1; n <= 9 && n < len(k); n++ {
				probes = append(probes, k[:n], k[:n]+"\x00", k[:n]+"\xff")
			}
		}
		ties := 0
		for b := 1; b < nb; b++ {
			if keyPrefix(s.blockFirstKey(b)) == keyPrefix(s.blockFirstKey(b-1)) {
				ties++
			}
		}
		if ties == 0 {
			t.Fatalf("no two blocks' first keys share their 8-byte prefix")
		}
		for _, fallback := range []bool{false, true} {
			s.dictFind("", nb) // builds the prefixes
			s.dictPrefix.ok = !fallback
			for _, p := range probes {
				want := max(sort.Search(nb, func(b int) bool { return string(s.blockFirstKey(b)) > p })-1, 0)
				if got := s.dictFind(p, nb); got != want {
					t.Fatalf("dictFind(%q) = block %d, want %d (fallback %v)", p, got, want, fallback)
				}
			}
		}
		s.dictPrefix.ok = true
		for i, k := range keys {
			found := -1
			if err := s.scanDict(k, func(j int, key []byte) bool {
				if string(key) == k {
					found = j
				}
				return false
			}); err != nil {
				t.Fatal(err)
			}
			if found != i {
				t.Fatalf("key %d %q found at %d", i, k, found)
			}
		}
	}
}

// TestFewCandidatesMatch: a query whose smallest term holds few rows (a
// user) is matched row by row (matchFew: the other terms, the excluded
// actions, the time range, the deleted rows) and must give exactly
// q.Match's rows, in partitions inside the query's window, cut by it and
// outside it, in the memtable, with one company in the store (its
// posting then holds every row and its term is skipped) and with two.
func TestFewCandidatesMatch(t *testing.T) {
	const start, minute = int64(1_700_000_000_000), int64(60_000)
	for _, companies := range []int{1, 2} {
		t.Run(strconv.Itoa(companies), func(t *testing.T) {
			e := openT(t, t.TempDir(), func(o *Options) { o.MemtableEvents = 500; o.noBackgroundMerge = true })
			defer e.Close()
			g := newGen(uint64(30 + companies))
			var all []event.Event
			batch := func(n int) []event.Event {
				b := g.batch(n)
				for i := range b {
					if companies == 1 {
						b[i].CompanyID = "c1"
					}
					b[i].UserID = fmt.Sprintf("u%d", g.r.IntN(200))
					b[i].Occurred = start + int64(g.r.IntN(5*24*60))*minute // five UTC days
				}
				all = append(all, b...)
				return b
			}
			for range 6 {
				appendT(t, e, batch(500))
			}
			if err := e.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
			cut := start + 30*60*minute
			if _, err := e.DeleteBefore(context.Background(), "c1", cut); err != nil {
				t.Fatal(err)
			}
			var live []event.Event
			for _, ev := range all {
				if ev.CompanyID != "c1" || ev.Occurred >= cut {
					live = append(live, ev)
				}
			}
			// In the memtable, some older than the cut: the rule covers
			// only what was stored when it was made.
			later := batch(300)
			appendT(t, e, later)
			live = append(live, later...)
			r := rand.New(rand.NewPCG(uint64(companies), 9))
			few := 0
			for i := range 400 {
				q := query.Query{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: r.IntN(2) == 0,
					UserIDs: []string{fmt.Sprintf("u%d", r.IntN(210))}, Size: 1000}
				if i%4 == 1 {
					q.CompanyID = "c2"
				}
				if r.IntN(2) == 0 {
					q.From = start + int64(r.IntN(5*24*60))*minute
				}
				if r.IntN(2) == 0 {
					q.To = start + int64(r.IntN(5*24*60))*minute
				}
				if r.IntN(3) == 0 {
					q.ExcludedActions = []string{"LoginFailed", "Logout"}[:1+r.IntN(2)]
				}
				var want []string
				for j := range live {
					if q.Match(&live[j]) {
						want = append(want, live[j].ID)
					}
				}
				res, err := e.Search(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, ev := range res.Events {
					got = append(got, ev.ID)
				}
				slices.Sort(want)
				slices.Sort(got)
				if res.Total != len(want) || !slices.Equal(got, want) {
					t.Fatalf("%+v: total %d, %v; want %d, %v", q, res.Total, got, len(want), want)
				}
				if len(want) > 0 {
					few++
				}
			}
			if few < 100 {
				t.Fatalf("only %d queries matched anything", few)
			}
		})
	}
}
