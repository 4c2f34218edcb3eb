package embedded_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// TestBenchShapesDifferential runs the benchmark program's query shapes on
// its realistic trail (large value pools, Descope-like data payloads) and
// checks every page and total against query.Match and query.Less over all
// events, with the data spread over segments, a frozen memtable and the tail.
func TestBenchShapesDifferential(t *testing.T) {
	const n = 6000
	dir := t.TempDir()
	open := func() *embedded.Engine {
		e, err := embedded.Open(embedded.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MemtableEvents: 2500})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	g, err := bench.NewGenerator(bench.GenOptions{Events: n, Seed: 3, End: 1_790_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	sample := bench.NewSample(3, 2048)
	var all []event.Event
	for {
		batch := g.Fill(make([]event.Event, 500))
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			sample.Observe(&batch[i])
		}
		if err := e.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	sets := bench.BuildQueries(sample, bench.QueryOptions{CompanyID: g.CompanyID(), End: 1_790_000_000_000, PerShape: 8, PageSize: 100, Seed: 3})
	if len(sets) < 12 {
		t.Fatalf("only %d shapes", len(sets))
	}
	for round := range 2 {
		for _, set := range sets {
			for _, q := range set.Queries {
				want := reference(all, q)
				got, err := e.Search(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				off := min(q.Offset(), len(want))
				page := want[off:min(off+q.Size, len(want))]
				if got.Total != len(want) || !slices.EqualFunc(got.Events, page, func(a, b event.Event) bool { return a.ID == b.ID && a.Seq == b.Seq }) {
					t.Fatalf("round %d shape %s %+v: total %d want %d (page of %d, want %d)", round, set.Shape, q, got.Total, len(want), len(got.Events), len(page))
				}
			}
		}
		e.Close()
		e = open() // the second round reads everything from segments
	}
	e.Close()
}

func reference(all []event.Event, q query.Query) []event.Event {
	var out []event.Event
	for i := range all {
		if q.Match(&all[i]) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(a, b event.Event) int {
		if q.Less(&a, &b) {
			return -1
		}
		if q.Less(&b, &a) {
			return 1
		}
		return 0
	})
	return out
}
