package postgres

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// Benchmarks need AUDITTRAIL_INTEGRATION=1, like every test here:
//
//	AUDITTRAIL_INTEGRATION=1 go test -run '^$' -bench . -benchtime 20x ./internal/store/postgres/

const benchEvents = 100_000

// loadedDB holds benchEvents generated events over 20 days in one company
// (two projects), loaded in batches of 1000. AUDITTRAIL_BENCH_POSTGRES_URL
// names a database to keep (and reuse) the load in; by default a fresh one
// is made and dropped.
func loadedDB(b *testing.B) *DB {
	opts := Options{PartitionsBehind: 21}
	var db *DB
	if url := os.Getenv("AUDITTRAIL_BENCH_POSTGRES_URL"); url != "" {
		pgtest.SkipUnlessEnabled(b)
		opts.URL = url
		var err error
		if db, err = Open(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(db.Close)
	} else {
		db = openTest(b, opts)
	}
	var have int
	if err := db.pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have >= benchEvents {
		return db
	}
	evs := storetest.Generate(42, benchEvents, storetest.GenOptions{Companies: []string{"c1"}, Projects: []string{"P1", "P2"}})
	start := time.Now()
	for i := 0; i < len(evs); i += 1000 {
		if err := db.Store().Append(context.Background(), evs[i:min(i+1000, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	b.Logf("loaded %d events in batches of 1000 in %v: %.0f events/s", benchEvents, took, benchEvents/took.Seconds())
	if _, err := db.pool.Exec(context.Background(), "VACUUM ANALYZE events"); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkAppend1000 appends batches of 1000 new events to a fresh database.
func BenchmarkAppend1000(b *testing.B) {
	db := openTest(b, Options{})
	evs := storetest.Generate(7, 1000*b.N, storetest.GenOptions{Companies: []string{"c1"}, Span: 24 * time.Hour})
	b.ResetTimer()
	for i := range b.N {
		if err := db.Store().Append(context.Background(), evs[i*1000:(i+1)*1000]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend1000x4 appends batches of 1000 from four writers at once.
func BenchmarkAppend1000x4(b *testing.B) {
	db := openTest(b, Options{MaxConns: 8})
	const writers = 4
	evs := storetest.Generate(8, 1000*b.N*writers, storetest.GenOptions{Companies: []string{"c1"}, Span: 24 * time.Hour})
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range b.N {
				k := (i*writers + w) * 1000
				if err := db.Store().Append(context.Background(), evs[k:k+1000]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(1000*b.N*writers)/b.Elapsed().Seconds(), "events/s")
}

func benchQueries() map[string]query.Query {
	base := query.Query{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: true, Size: 1000}
	with := func(f func(q *query.Query)) query.Query { q := base; f(&q); return q }
	now := time.Now().UnixMilli()
	return map[string]query.Query{
		"all":          base,
		"size100":      with(func(q *query.Query) { q.Size = 100 }),
		"page50":       with(func(q *query.Query) { q.Size = 100; q.Page = 50 }),
		"action":       with(func(q *query.Query) { q.Actions = []string{"LoginFailed"} }),
		"tenant":       with(func(q *query.Query) { q.Tenants = []string{"t1"} }),
		"text1":        with(func(q *query.Query) { q.TextTokens = query.TextTokens("chrome") }),
		"text2rare":    with(func(q *query.Query) { q.TextTokens = query.TextTokens("quetzal person") }),
		"last24h":      with(func(q *query.Query) { q.From = now - 24*3600*1000 }),
		"failedTextDE": with(func(q *query.Query) { q.Actions = []string{"LoginFailed"}; q.TextTokens = query.TextTokens("zugriff") }),
	}
}

func BenchmarkSearch(b *testing.B) {
	db := loadedDB(b)
	for name, q := range benchQueries() {
		b.Run(name, func(b *testing.B) {
			var total int
			for range b.N {
				res, err := db.Store().Search(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				total = res.Total
			}
			b.ReportMetric(float64(total), "matches")
		})
	}
	benchSearchCount(b, db)
}

// benchSearchCount compares ways of getting the exact total with the
// page: the window on a narrow row joined back (what Search does), the
// window on full rows, and a separate count sent in the same round trip.
func benchSearchCount(b *testing.B, db *DB) {
	ctx := context.Background()
	for _, name := range []string{"all", "text1", "action"} {
		q := benchQueries()[name]
		cond, args, _ := where(&q)
		n := len(args)
		pageArgs := append(args[:n:n], q.Size, q.Offset())
		full := fmt.Sprintf(`SELECT %s, count(*) OVER () FROM events e WHERE %s
			ORDER BY occurred DESC, seq DESC LIMIT $%d OFFSET $%d`, eventColumnsSQL, cond, n+1, n+2)
		page := fmt.Sprintf(`SELECT %s FROM events e WHERE %s
			ORDER BY occurred DESC, seq DESC LIMIT $%d OFFSET $%d`, eventColumnsSQL, cond, n+1, n+2)
		count := "SELECT count(*) FROM events WHERE " + cond
		b.Run("count/"+name+"/narrow-window-join", func(b *testing.B) {
			for range b.N {
				if _, err := db.Store().Search(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("count/"+name+"/full-window", func(b *testing.B) {
			for range b.N {
				rows, err := db.pool.Query(ctx, full, pageArgs...)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
					var total int64
					if _, err := scanEvent(rows, &total); err != nil {
						b.Fatal(err)
					}
				}
				if rows.Err() != nil {
					b.Fatal(rows.Err())
				}
			}
		})
		b.Run("count/"+name+"/count-then-page", func(b *testing.B) {
			for range b.N {
				var total int64
				if err := db.pool.QueryRow(ctx, count, args...).Scan(&total); err != nil {
					b.Fatal(err)
				}
				rows, err := db.pool.Query(ctx, page, pageArgs...)
				if err != nil {
					b.Fatal(err)
				}
				var got []event.Event
				for rows.Next() {
					e, err := scanEvent(rows)
					if err != nil {
						b.Fatal(err)
					}
					got = append(got, e)
				}
				if rows.Err() != nil {
					b.Fatal(rows.Err())
				}
			}
		})
	}
}
