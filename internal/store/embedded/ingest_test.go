package embedded

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
)

func TestIndexEventsAgreesWithIndexEvent(t *testing.T) {
	evs := make([]event.Event, 3000)
	for i := range evs {
		evs[i] = memEvent(i)
		evs[i].Tenants = []string{fmt.Sprintf("tenant %d", i%5), "Größe"}
		evs[i].LoginIDs = []string{fmt.Sprintf("user%d@example.com", i)}
		// Data of growing size, so that events outgrow the shared buffers.
		evs[i].Data = fmt.Appendf(nil, `{"change":{"field%d":1},"text":"%0*d"}`, i%3, i*11, i)
	}
	keys := make([]eventKeys, len(evs))
	indexEvents(evs, keys, nil)
	for i := range evs {
		want := indexEvent(&evs[i])
		got := keys[i]
		if got.len() != want.len() || !slices.Equal(got.hashes, want.hashes) {
			t.Fatalf("event %d: %d keys, want %d", i, got.len(), want.len())
		}
		for j := range want.len() {
			if string(got.key(j)) != string(want.key(j)) {
				t.Fatalf("event %d key %d = %q, want %q", i, j, got.key(j), want.key(j))
			}
		}
	}
	// Keys of one event never run into the next one's (capacity is cut).
	k0 := keys[0]
	_ = append(k0.buf, 'x')
	want1 := indexEvent(&evs[1])
	if string(keys[1].key(0)) != string(want1.key(0)) {
		t.Fatal("appending to one event's keys overwrote the next event's")
	}
}

// TestAppendKeysReusesMemory: an Append's posting keys are carved from
// memory that the next Append reuses (the writer is done with them when
// Append returns), on one goroutine or several, and are right each time.
func TestAppendKeysReusesMemory(t *testing.T) {
	evs := make([]event.Event, 3000)
	for i := range evs {
		evs[i] = memEvent(i)
		evs[i].Data = fmt.Appendf(nil, `{"text":"%0*d w%d"}`, i%700, i, i)
	}
	check := func(batch []event.Event, keys []eventKeys) {
		t.Helper()
		for i := range batch {
			want := indexEvent(&batch[i])
			if got := keys[i]; got.len() != want.len() || string(got.buf) != string(want.buf) || !slices.Equal(got.hashes, want.hashes) {
				t.Fatalf("event %d: keys %q, want %q", i, got.buf, want.buf)
			}
		}
	}
	for _, n := range []int{parallelKeysMin - 1, 1000} {
		a := new(appendKeys)
		check(evs[:n], a.index(evs[:n]))
		first := &a.parts[0].bufs[0][:1][0]
		check(evs[1000:1000+n], a.index(evs[1000:1000+n]))
		if &a.parts[0].bufs[0][:1][0] != first {
			t.Fatalf("%d events: the second batch did not reuse the first one's memory", n)
		}
		batch := evs[2000 : 2000+n]
		if allocs := testing.AllocsPerRun(5, func() { a.index(batch) }); allocs > 10 {
			t.Fatalf("%d events: %.0f allocations per batch once warm", n, allocs)
		}
		check(batch, a.index(batch))
	}
}

// memEvent is an event for memtable tests: every one shares the company
// key, a frequent key whose posting becomes a bitmap.
func memEvent(i int) event.Event {
	return event.Event{ID: fmt.Sprintf("id%d", i), CompanyID: "c1", Occurred: int64(1000 + i), Seq: uint64(i + 1),
		Action: "a", UserID: fmt.Sprintf("u%d", i%7)}
}

func TestMemtableTailsBeforeAndAfterSettle(t *testing.T) {
	m := newMemtable()
	const n = 3*postingBitmapAt + 17
	for i := range n {
		ev := memEvent(i)
		m.add(&ev, appendEvent(nil, &ev), indexEvent(&ev))
		if i == 2*postingBitmapAt {
			m.settle()
		}
	}
	check := func(when string) {
		t.Helper()
		p := m.lookup(string([]byte{keyCompany}) + "c1")
		if p == nil || p.bm == nil {
			t.Fatalf("%s: company posting %v is not a bitmap", when, p)
		}
		if got := p.bitmap().GetCardinality(); got != n {
			t.Fatalf("%s: bitmap has %d rows, want %d", when, got, n)
		}
		rows := p.appendRows(nil)
		if len(rows) != n || !slices.IsSorted(rows) || rows[n-1] != n-1 {
			t.Fatalf("%s: appendRows gives %d rows, last %d", when, len(rows), rows[len(rows)-1])
		}
		u := m.lookup(string([]byte{keyUser}) + "u3")
		var want []uint32
		for i := 3; i < n; i += 7 {
			want = append(want, uint32(i))
		}
		if got := u.appendRows(nil); !slices.Equal(got, want) {
			t.Fatalf("%s: user posting rows %v, want %v", when, got, want)
		}
	}
	if len(m.unsettled) == 0 {
		t.Fatal("rows added since settle left no tail: the test tests nothing")
	}
	check("unsettled")
	m.settle()
	if p := m.lookup(string([]byte{keyCompany}) + "c1"); len(p.rows) != 0 {
		t.Fatalf("settle left %d rows in the tail", len(p.rows))
	}
	check("settled")
}

func TestMemtableIDTable(t *testing.T) {
	t.Run("growing", func(t *testing.T) { testMemtableIDTable(t, newMemtable()) })
	t.Run("presized", func(t *testing.T) {
		m := newMemtable()
		m.presize(30000, 5000)
		testMemtableIDTable(t, m)
	})
}

func testMemtableIDTable(t *testing.T, m *memtable) {
	const n = 5000 // several growths of the table
	for i := range n {
		ev := memEvent(i)
		m.add(&ev, appendEvent(nil, &ev), indexEvent(&ev))
	}
	for i := range n {
		if row, ok := m.get("c1", fmt.Sprintf("id%d", i)); !ok || row != uint32(i) {
			t.Fatalf("get(id%d) = %d, %v", i, row, ok)
		}
	}
	for _, k := range [][2]string{{"c1", "id"}, {"c2", "id1"}, {"c1", "id5000"}, {"", ""}, {"c1id", "1"}} {
		if m.has(k[0], k[1]) {
			t.Fatalf("has(%q, %q) for a key never added", k[0], k[1])
		}
	}
	// A deleted row is no longer found, and its ID may be stored again.
	if got := m.deleteWhere(&deleteRule{CompanyID: "c1", Before: 1000 + 10, MaxSeq: n}); got != 10 {
		t.Fatalf("deleted %d rows, want 10", got)
	}
	if m.has("c1", "id3") {
		t.Fatal("a deleted row is still found")
	}
	ev := memEvent(3)
	ev.Seq = n + 1
	m.add(&ev, appendEvent(nil, &ev), indexEvent(&ev))
	if row, ok := m.get("c1", "id3"); !ok || row != n {
		t.Fatalf("get(id3) after re-adding = %d, %v, want row %d", row, ok, n)
	}
	if row, ok := m.get("c1", "id11"); !ok || row != 11 {
		t.Fatalf("get(id11) = %d, %v", row, ok)
	}
}

// TestSegmentPostingsOfShuffledRows: the segment writer orders each
// posting's rows into segment order, big postings through a bitset and
// small ones by sorting; every logical key must read back exactly the rows
// of the events that have it, whatever the order their Occurred came in.
func TestSegmentPostingsOfShuffledRows(t *testing.T) {
	for _, n := range []int{70, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			evs := keyTestEvents(n, uint64(n))
			rng := rand.New(rand.NewPCG(uint64(n), 9))
			for i := range evs {
				evs[i].Seq = uint64(i + 1)
				evs[i].Occurred = 1_700_000_000_000 + int64(rng.IntN(n/3+1))*1000
			}
			m := newMemtable()
			for i := range evs {
				m.add(&evs[i], appendEvent(nil, &evs[i]), indexEvent(&evs[i]))
			}
			m.settle()
			m.gen = 1
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			path, err := writeSegment(t.TempDir(), m, enc)
			if err != nil {
				t.Fatal(err)
			}
			s, err := openSegment(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			// Segment row of each event, by Seq.
			rowOf := map[uint64]uint32{}
			for r := range s.n {
				rowOf[s.seq(r)] = uint32(r)
			}
			want := map[string]*roaring.Bitmap{}
			for i := range evs {
				for _, k := range indexKeys(&evs[i]) {
					if want[k] == nil {
						want[k] = roaring.New()
					}
					want[k].Add(rowOf[evs[i].Seq])
				}
			}
			big := 0
			for k, w := range want {
				got, err := s.posting(k)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || !got.Equals(w) {
					t.Fatalf("key %q: rows %v, want %v", k, got, w)
				}
				if w.GetCardinality() >= rowsByMarkMin {
					big++
				}
			}
			if n > 1000 && big == 0 {
				t.Fatal("no posting big enough for the bitset")
			}
		})
	}
}
