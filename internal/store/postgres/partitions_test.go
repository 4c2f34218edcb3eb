package postgres

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

// TestConcurrentOpen: instances starting together on a new database apply
// each migration once and all come up.
func TestConcurrentOpen(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	errs := make([]error, 4)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(context.Background(), Options{URL: url, MaxConns: 2})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dbs[0].pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(all) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(all))
	}
	parts, err := partitions(context.Background(), dbs[0].pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 5 {
		t.Fatalf("%d partitions after open, want 5 (today-1 … today+3): %v", len(parts), parts)
	}
}

func day(y int, m time.Month, d, h int) int64 {
	return time.Date(y, m, d, h, 0, 0, 0, time.UTC).UnixMilli()
}

func partitionOf(t *testing.T, db *DB, company, id string) string {
	t.Helper()
	var name string
	if err := db.pool.QueryRow(context.Background(),
		"SELECT tableoid::regclass::text FROM events WHERE company_id = $1 AND id = $2", company, id).Scan(&name); err != nil {
		t.Fatalf("partition of %s: %v", id, err)
	}
	return name
}

// TestPartitionMaintenance: an event whose day had no partition lands in
// the default one, and moves into its own when maintenance creates it.
func TestPartitionMaintenance(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	db := openTest(t, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	mk := func(id string, occurred int64) event.Event {
		return event.Event{ID: id, CompanyID: "c", ProjectID: "p", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: occurred}
	}
	evs := []event.Event{mk("old", day(2025, 6, 1, 3)), mk("today", day(2026, 1, 10, 3)), mk("later", day(2026, 1, 15, 3)),
		mk("backfill", day(2026, 1, 1, 3))}
	if err := db.Store().Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"old": "events_default", "today": "events_p20260110", "later": "events_default", "backfill": "events_default"} {
		if got := partitionOf(t, db, "c", id); got != want {
			t.Errorf("%s in %s, want %s", id, got, want)
		}
	}
	now = now.Add(4 * 24 * time.Hour)
	if err := db.MaintainPartitions(ctx); err != nil {
		t.Fatal(err)
	}
	// Within BackfillDays (90) a day gets a partition of its own; older
	// events stay in the default partition.
	for id, want := range map[string]string{"old": "events_default", "later": "events_p20260115", "backfill": "events_p20260101"} {
		if got := partitionOf(t, db, "c", id); got != want {
			t.Errorf("after maintenance %s is in %s, want %s", id, got, want)
		}
	}
	res, err := db.Store().Search(ctx, query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 10})
	if err != nil || res.Total != 4 {
		t.Fatalf("search after maintenance: %d events, %v", res.Total, err)
	}
	if e, err := db.Store().Get(ctx, "c", "later"); err != nil || e.Seq != evs[2].Seq {
		t.Fatalf("get moved event: %+v, %v", e, err)
	}
}

// TestDeleteBeforeDropsPartitions: a past day holding only the company's
// events is dropped whole, a day shared with another company loses only
// the company's rows, and the day of the cutoff is cut exactly.
func TestDeleteBeforeDropsPartitions(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	db := openTest(t, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	mk := func(company, id string, occurred int64) event.Event {
		return event.Event{ID: id, CompanyID: company, ProjectID: "p", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: occurred}
	}
	evs := []event.Event{
		mk("c1", "a9", day(2026, 1, 9, 3)), mk("c1", "b9", day(2026, 1, 9, 20)),
		mk("c1", "a10", day(2026, 1, 10, 3)), mk("c2", "x10", day(2026, 1, 10, 4)),
		mk("c1", "a11", day(2026, 1, 11, 3)), mk("c1", "b11", day(2026, 1, 11, 20)),
		mk("c1", "old", day(2025, 1, 1, 0)),
	}
	if err := db.Store().Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	now = time.Date(2026, 1, 20, 12, 0, 0, 0, time.UTC)
	n, err := db.Store().DeleteBefore(ctx, "c1", day(2026, 1, 11, 12))
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("deleted %d, want 5 (a9, b9, a10, a11, old)", n)
	}
	parts, err := partitions(ctx, db.pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.name)
	}
	if slices.Contains(names, "events_p20260109") || !slices.Contains(names, "events_p20260110") || !slices.Contains(names, "events_p20260111") {
		t.Fatalf("partitions after retention: %v; want 0109 dropped, 0110 (shared) and 0111 (cutoff day) kept", names)
	}
	for _, id := range []string{"a9", "b9", "a10", "a11", "old"} {
		if _, err := db.Store().Get(ctx, "c1", id); err == nil {
			t.Errorf("%s survived retention", id)
		}
	}
	for _, k := range [][2]string{{"c1", "b11"}, {"c2", "x10"}} {
		if _, err := db.Store().Get(ctx, k[0], k[1]); err != nil {
			t.Errorf("%s/%s lost: %v", k[0], k[1], err)
		}
	}
	// A deleted id may be stored again (its dedupe entry went with it).
	again := []event.Event{mk("c1", "a9", day(2026, 1, 19, 3))}
	if err := db.Store().Append(ctx, again); err != nil || again[0].Seq == 0 {
		t.Fatalf("re-append of a deleted id: seq %d, %v", again[0].Seq, err)
	}
}

// TestSchema: with Options.Schema everything lives in that schema, beside
// an application's own tables of the same names.
func TestSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	plain, err := Open(ctx, Options{URL: url, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	db, err := Open(ctx, Options{URL: url, Schema: "Audit Trail", MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs := []event.Event{{ID: "x", CompanyID: "c", ProjectID: "p", Level: event.LevelProject, Action: "A",
		Type: event.TypeInfo, Occurred: time.Now().UnixMilli()}}
	if err := db.Store().Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := db.Store().ReadFrom(ctx, 0, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("read from the schema: %d events, %v", len(got), err)
	}
	var inSchema, inPublic int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM "Audit Trail".events`).Scan(&inSchema); err != nil {
		t.Fatal(err)
	}
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM public.events`).Scan(&inPublic); err != nil {
		t.Fatal(err)
	}
	if inSchema != 1 || inPublic != 0 {
		t.Fatalf("events in schema %d, in public %d", inSchema, inPublic)
	}
	if res, err := plain.Store().Search(ctx, query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 10}); err != nil || res.Total != 0 {
		t.Fatalf("public store sees %d events, %v", res.Total, err)
	}
}
