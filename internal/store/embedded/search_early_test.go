package embedded

import (
	"context"
	"fmt"
	"testing"

	"github.com/audittrail/audittrail/internal/query"
)

// TestEarlyPageMatchesFullMerge: a newest-first page decoded as soon as the
// sources matched so far settle it (the rest only counted) is the page of
// the k-way merge over every source: day partitions, rows of equal
// Occurred on both sides of a partition boundary, late events in a
// segment and the memtable older than most partitions, offsets and page
// sizes.
func TestEarlyPageMatchesFullMerge(t *testing.T) {
	e := openT(t, t.TempDir(), func(o *Options) { o.MemtableEvents = 400; o.noBackgroundMerge = true })
	defer e.Close()
	g := newGen(31)
	const day = 24 * 60 * 60 * 1000
	base := int64(1_700_000_000_000) - 1_700_000_000_000%day
	for d := range 12 {
		b := g.batch(300)
		for i := range b {
			b[i].Occurred = base + int64(d)*day + int64(g.r.IntN(24))*60*60*1000
			if i%50 == 0 { // the first instant of the next day, and this day's last
				b[i].Occurred = base + int64(d+1)*day
			}
			if i%50 == 1 {
				b[i].Occurred = base + int64(d+1)*day - 1
			}
		}
		appendT(t, e, b)
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Late events: a flushed segment spanning every day (it overlaps
	// all the partitions), then more in the memtable.
	for pass := range 2 {
		late := g.batch(150)
		for i := range late {
			late[i].Occurred = base + int64(g.r.IntN(12))*day + int64(i%3)*day/2
		}
		appendT(t, e, late)
		if pass == 0 {
			if err := e.flushNow(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.mu.RLock()
	nsegs := len(e.ix.segs)
	e.mu.RUnlock()
	if nsegs < 8 {
		t.Fatalf("%d segments, want day partitions", nsegs)
	}

	page := func(q query.Query, early bool) string {
		was := earlyPages
		earlyPages = early
		defer func() { earlyPages = was }()
		res, err := e.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprint(res.Total, ":")
		for _, ev := range res.Events {
			out += " " + ev.ID
		}
		return out
	}
	loads := earlyPageLoads.Load()
	for _, c := range []string{"c1", "c2"} {
		for _, qf := range []func(*query.Query){
			func(q *query.Query) { q.UserIDs = []string{"u1"} },
			func(q *query.Query) { q.UserIDs = []string{"u2", "u3"}; q.Actions = []string{"Logout"} },
			func(q *query.Query) { q.RemoteAddresses = []string{"10.0.0.2"} },
			func(q *query.Query) { q.LoginIDs = []string{"john@x.io"} },
			func(q *query.Query) {},
		} {
			for _, size := range []int{1, 7, 100} {
				for _, pg := range []int{0, 1, 9} {
					q := query.Query{CompanyID: c, ProjectID: "P1", IncludeProject: true, IncludeCompany: true, Size: size, Page: pg}
					qf(&q)
					if got, want := page(q, true), page(q, false); got != want {
						t.Fatalf("%+v:\nearly %s\nwant  %s", q, got, want)
					}
				}
			}
		}
	}
	if earlyPageLoads.Load() == loads {
		t.Fatal("no page was decoded early")
	}
}
