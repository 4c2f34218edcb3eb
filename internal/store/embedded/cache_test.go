package embedded

import (
	"context"
	"fmt"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

// TestBlockCacheAdmissionAndReuse: a block enters the shared cache only on
// its second miss, and events decoded from pooled buffers stay intact once
// the buffers are reused for other blocks.
func TestBlockCacheAdmissionAndReuse(t *testing.T) {
	if newBlockLRU(1 << 20).admit(blockKey{}) {
		t.Fatal("a block never missed before was admitted")
	}
	var nilLRU *blockLRU
	if nilLRU.admit(blockKey{}) {
		t.Fatal("no cache admitted a block")
	}

	e := openT(t, t.TempDir(), func(o *Options) { o.MemtableEvents = 1000; o.noBackgroundMerge = true })
	defer e.Close()
	g := newGen(9)
	for range 3 {
		appendT(t, e, g.batch(1000))
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.ix.segs[0]
	if s.n < 4*s.rpb {
		t.Fatalf("segment of %d rows", s.n)
	}
	want := decodeEveryRow(t, e, s)

	lru := newBlockLRU(16 << 20) // every block of the segment fits, its misses remembered without collisions
	var kept []event.Event
	var keptRows []int
	for pass := range 2 {
		bc := newBlockCache(lru)
		for row := 0; row < s.n; row += s.rpb / 2 {
			ev, err := bc.event(s, row, e.zdec)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%+v", ev); got != want[row] {
				t.Fatalf("pass %d row %d: %s, want %s", pass, row, got, want[row])
			}
			kept, keptRows = append(kept, ev), append(keptRows, row)
			if (row+s.rpb/2)%(4*s.rpb) == 0 {
				bc.reset() // later blocks reuse the buffers of earlier ones
			}
		}
		bc.reset()
		switch n := len(lru.byKey); {
		case pass == 0 && n != 0:
			t.Fatalf("%d blocks cached after one read of each", n)
		case pass == 1 && n != (s.n+s.rpb-1)/s.rpb:
			t.Fatalf("%d blocks cached after two reads of each, want %d", n, (s.n+s.rpb-1)/s.rpb)
		}
	}
	for i, ev := range kept {
		if got := fmt.Sprintf("%+v", ev); got != want[keptRows[i]] {
			t.Fatalf("row %d changed after its buffer was reused: %s, want %s", keptRows[i], got, want[keptRows[i]])
		}
	}
}

// decodeEveryRow decodes each row of s on its own, with nothing shared or
// pooled: what a cached or prefetched read must give back.
func decodeEveryRow(t *testing.T, e *Engine, s *segment) []string {
	t.Helper()
	rows := make([]string, s.n)
	for row := range s.n {
		raw, err := s.block(row/s.rpb, e.zdec, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := rowInBlock(raw, row%s.rpb)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := decodeEvent(enc)
		if err != nil {
			t.Fatal(err)
		}
		rows[row] = fmt.Sprintf("%+v", ev)
	}
	return rows
}
