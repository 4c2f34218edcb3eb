package embedded_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// TestHotPostingsHoldEveryFewValuedField: after searches for every action,
// geo, device and method of a day partition as dense as a 10M-event
// month's, each of those postings is kept in memory; none was refused for
// want of budget (which made every devices+methods query read its
// postings from the file again once the partitions grew).
func TestHotPostingsHoldEveryFewValuedField(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200k events")
	}
	const rows = 200_000
	o := embedded.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	o.NoBackgroundMerge()
	e, err := embedded.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	g, err := bench.NewGenerator(bench.GenOptions{Events: rows, Seed: 1, End: benchEnd, Span: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]map[string]bool{"action": {}, "geo": {}, "device": {}, "method": {}}
	batch := make([]event.Event, 1000)
	for n := 0; n < rows; n += len(batch) {
		evs := g.Fill(batch)
		for i := range evs {
			values["action"][evs[i].Action] = true
			values["geo"][evs[i].Geo] = true
			values["device"][evs[i].Device] = true
			values["method"][evs[i].Method] = true
		}
		if err := e.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	search := func(q query.Query) {
		t.Helper()
		q.CompanyID, q.IncludeCompany, q.Size = g.CompanyID(), true, 10
		if _, err := e.Search(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	for field, vals := range values {
		for v := range vals {
			switch field {
			case "action":
				search(query.Query{Actions: []string{v}})
			case "geo":
				search(query.Query{Geos: []string{v}})
			case "device":
				search(query.Query{Devices: []string{v}})
			case "method":
				search(query.Query{Methods: []string{v}})
			}
		}
	}
	refused, segs := embedded.HotPostingsRefused(e)
	if segs == 0 {
		t.Fatal("no segment after Compact")
	}
	if refused > 0 {
		t.Fatalf("%d postings of few-valued fields were not kept (over %d segments)", refused, segs)
	}
}
