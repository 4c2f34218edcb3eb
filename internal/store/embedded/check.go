package embedded

import (
	"context"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// Report is the outcome of Check.
type Report struct {
	Segments    int
	SegmentRows int // rows in segment files, deleted ones included
	TailEvents  int // rows in memtables, deleted ones included
	LiveEvents  int // events a search can return
	// Problems lists every inconsistency found; empty when all is well.
	Problems []string
}

// maxProblems bounds the report when everything is broken.
const maxProblems = 100

// Check verifies everything the engine holds: every checksum of every
// segment, every stored event against its segment's columns and order,
// every posting against the event's own index keys (so a search can
// neither miss nor invent a row), Seq order, and that each live
// (company, id) is stored once and found by Get. It holds the read lock
// throughout, so writes wait; it is meant for tests and offline checks.
// The error wraps store.ErrCorrupt when Problems is not empty.
func (e *Engine) Check(ctx context.Context) (Report, error) {
	if err := e.checkOpen(); err != nil {
		return Report{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ix.released {
		return Report{}, store.ErrClosed
	}
	var rep Report
	problem := func(format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	live := make(map[dedupeKey]uint64)
	addLive := func(ev *event.Event, where string) {
		k := dedupeKey{ev.CompanyID, ev.ID}
		if seq, dup := live[k]; dup {
			problem("%s: (%s, %s) stored twice (Seq %d and %d)", where, ev.CompanyID, ev.ID, seq, ev.Seq)
		}
		live[k] = ev.Seq
		rep.LiveEvents++
	}
	var prevMax uint64
	for _, s := range e.ix.segs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Segments++
		rep.SegmentRows += s.n
		name := filepath.Base(s.path)
		if s.meta.MinSeq <= prevMax {
			problem("%s: Seq range starts at %d, not after the previous segment's %d", name, s.meta.MinSeq, prevMax)
		}
		prevMax = s.meta.MaxSeq
		e.checkSegment(ctx, s, problem, addLive)
	}
	for _, m := range []*memtable{e.ix.frozen, e.ix.mem} {
		if m == nil {
			continue
		}
		rep.TailEvents += m.len()
		bitmaps := map[*posting]*roaring.Bitmap{}
		for i := range m.len() {
			dec, err := m.event(uint32(i))
			if err != nil {
				problem("%v", err)
				continue
			}
			ev := &dec
			if ev.Seq != m.seqs[i] || ev.Occurred != m.occurred[i] || ev.CompanyID != m.compNames[m.comps[i]] {
				problem("memtable row %d: columns disagree with the event", i)
			}
			if ev.Seq <= prevMax {
				problem("memtable row %d: Seq %d not after %d", i, ev.Seq, prevMax)
			}
			prevMax = ev.Seq
			if m.deleted.Contains(uint32(i)) {
				continue
			}
			if e.ruleCovers(ev) {
				problem("memtable row %d: a deletion rule covers it but it is live", i)
			}
			addLive(ev, "memtable")
			if got, ok := m.get(ev.CompanyID, ev.ID); !ok || got != uint32(i) {
				problem("memtable row %d: not found by its key", i)
			}
			for _, k := range indexKeys(ev) {
				p := m.lookup(k)
				if p == nil {
					problem("memtable row %d: missing from posting %q", i, k)
					continue
				}
				// A posting not yet settled makes a new bitmap each call
				// (a copy of the company's, every row's): once per posting,
				// or a check after a big log replay took minutes.
				bm, ok := bitmaps[p]
				if !ok {
					bm = p.bitmap()
					bitmaps[p] = bm
				}
				if !bm.Contains(uint32(i)) {
					problem("memtable row %d: missing from posting %q", i, k)
				}
			}
		}
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %d problems, first: %s", store.ErrCorrupt, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}

func (e *Engine) checkSegment(ctx context.Context, s *segment, problem func(string, ...any), addLive func(*event.Event, string)) {
	name := filepath.Base(s.path)
	for i := range numSections {
		if crc32.Checksum(s.sec[i], castagnoli) != s.crcs[i] {
			problem("%s: section %d checksum mismatch", name, i)
			return
		}
	}
	// Every row: decodes, agrees with the columns, is in order.
	bc := newBlockCache(nil) // Check reads from disk, not from the cache
	want := make(map[string]*roaring.Bitmap)
	for row := range s.n {
		if row%s.rpb == 0 {
			bc.reset()
			if ctx.Err() != nil {
				return
			}
		}
		ev, err := bc.event(s, row, e.zdec)
		if err != nil {
			problem("%s row %d: %v", name, row, err)
			continue
		}
		if b := row / s.rpb; row%s.rpb == 0 {
			// A block holds its rows and nothing after them (version 8
			// blocks hold meta.RowsPerBlock rows, a reader finds a row by
			// its number alone).
			if got, want := blockEntries(bc.m[blockKey{s.id, b}]), min(s.rpb, s.n-b*s.rpb); got != want {
				problem("%s block %d: %d rows, want %d", name, b, got, want)
			}
		}
		if k, err := s.key(row); err != nil || string(k) != ev.CompanyID+"\x00"+ev.ID {
			problem("%s row %d: key column disagrees with the event", name, row)
		}
		if ev.Seq < s.meta.MinSeq || ev.Seq > s.meta.MaxSeq {
			problem("%s row %d: Seq %d outside [%d, %d]", name, row, ev.Seq, s.meta.MinSeq, s.meta.MaxSeq)
		}
		if row > 0 {
			po, ps := s.occurred(row-1), s.seq(row-1)
			if po < ev.Occurred || (po == ev.Occurred && ps <= ev.Seq) {
				problem("%s row %d: out of order", name, row)
			}
		}
		for _, k := range indexKeys(&ev) {
			bm := want[k]
			if bm == nil {
				bm = roaring.New()
				want[k] = bm
			}
			bm.Add(uint32(row))
		}
		if s.deleted.Contains(uint32(row)) {
			continue
		}
		if e.ruleCovers(&ev) {
			problem("%s row %d: a deletion rule covers it but it is live", name, row)
		}
		addLive(&ev, name)
		if got, r, ok := e.segLookup(ev.CompanyID, ev.ID); !ok || got != s || int(r) != row {
			problem("%s row %d: (%s, %s) not found by the key index", name, row, ev.CompanyID, ev.ID)
		}
	}
	// The Seq permutation: a permutation, in ascending Seq.
	seen := roaring.New()
	var prev uint64
	for i := range s.n {
		row := s.bySeq(i)
		if int(row) >= s.n || seen.Contains(row) {
			problem("%s: Seq order entry %d is not a permutation", name, i)
			break
		}
		seen.Add(row)
		if sq := s.seq(int(row)); sq <= prev {
			problem("%s: Seq order entry %d not ascending", name, i)
			break
		} else {
			prev = sq
		}
	}
	// Postings: exactly the index keys of the rows, nothing more or less.
	if s.ver >= segVersion6 {
		want = storedPostings(want)
	}
	if s.meta.Keys != len(want) {
		problem("%s: %d posting keys, the rows have %d", name, s.meta.Keys, len(want))
	}
	prevKey, count := "", 0
	err := s.scanDict("", func(i int, key []byte) bool {
		k := string(key)
		if i != count || (i > 0 && prevKey >= k) {
			problem("%s: dictionary not sorted at %d", name, i)
		}
		prevKey = k
		count++
		bm, err := s.postingAt(i)
		if err != nil {
			problem("%s: %v", name, err)
			return true
		}
		if w := want[k]; w == nil || !w.Equals(bm) {
			problem("%s: posting %q does not match its rows", name, k)
		}
		return true
	})
	if err != nil {
		problem("%s: %v", name, err)
	} else if count != s.meta.Keys {
		problem("%s: dictionary holds %d keys, meta says %d", name, count, s.meta.Keys)
	}
}
