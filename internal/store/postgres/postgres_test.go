package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// template is a migrated database that each test's database is copied
// from (see TestMain); "" when integration tests are off.
var template string

func TestMain(m *testing.M) {
	if pgtest.Enabled() {
		var err error
		template, err = pgtest.NewTemplate(func(url string) error {
			db, err := Open(context.Background(), Options{URL: url, MaxConns: 2, MaintenanceInterval: -1})
			if err != nil {
				return err
			}
			db.Close()
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "postgres tests:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if template != "" {
		if err := pgtest.DropDatabase(template); err != nil {
			fmt.Fprintln(os.Stderr, "postgres tests:", err)
		}
	}
	os.Exit(code)
}

// newDatabase returns a fresh, migrated database dropped after the test.
func newDatabase(t testing.TB) string {
	t.Helper()
	return pgtest.NewDatabaseFrom(t, template)
}

// openTest opens a DB on a fresh database that is dropped after the test.
func openTest(t testing.TB, opts Options) *DB {
	t.Helper()
	opts.URL = newDatabase(t)
	if opts.MaxConns == 0 {
		opts.MaxConns = 8
	}
	db, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// sameEvents compares what a search returned with the reference, ignoring
// Seq (backends number differently).
func sameEvents(t *testing.T, what string, got, want []event.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		g.Seq, w.Seq = 0, 0
		if string(g.Data) != string(w.Data) {
			t.Fatalf("%s: event %d data %s, want %s", what, i, g.Data, w.Data)
		}
		g.Data, w.Data = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: event %d\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

func TestSearchMatchesReference(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	st := db.Store()
	ref := storetest.NewMemStore()
	evs := storetest.Generate(1, 3000, storetest.GenOptions{})
	for i := 0; i < len(evs); i += 500 {
		pg := slices.Clone(evs[i : i+500])
		mem := slices.Clone(evs[i : i+500])
		if err := st.Append(ctx, pg); err != nil {
			t.Fatal(err)
		}
		if err := ref.Append(ctx, mem); err != nil {
			t.Fatal(err)
		}
	}
	// Seqs differ between backends, but their order must agree for ties.
	all, err := st.ReadFrom(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(evs) {
		t.Fatalf("ReadFrom saw %d of %d events", len(all), len(evs))
	}

	rng := rand.New(rand.NewPCG(7, 7))
	pick := func(field func(e *event.Event) []string) []string {
		var out []string
		for range 1 + rng.IntN(3) {
			if v := field(&evs[rng.IntN(len(evs))]); len(v) > 0 {
				out = append(out, v[rng.IntN(len(v))])
			}
		}
		return out
	}
	one := func(s string) []string { return []string{s} }
	for i := range 200 {
		q := query.Query{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: rng.IntN(3) > 0, Size: 50, Page: rng.IntN(3)}
		if rng.IntN(2) == 0 {
			q.CompanyID = "c2"
		}
		switch rng.IntN(14) {
		case 0:
			q.UserIDs = pick(func(e *event.Event) []string { return one(e.UserID) })
		case 1:
			q.Actions = pick(func(e *event.Event) []string { return one(e.Action) })
		case 2:
			q.ExcludedActions = pick(func(e *event.Event) []string { return one(e.Action) })
		case 3:
			q.Devices = pick(func(e *event.Event) []string { return one(e.Device) })
			q.Methods = pick(func(e *event.Event) []string { return one(e.Method) })
		case 4:
			q.Geos = pick(func(e *event.Event) []string { return one(e.Geo) })
		case 5:
			q.LoginIDs = pick(func(e *event.Event) []string { return e.LoginIDs })
		case 6:
			q.Tenants = pick(func(e *event.Event) []string { return e.Tenants })
			q.NoTenants = rng.IntN(2) == 0
		case 7:
			q.NoTenants = true
		case 8:
			q.ChangedFields = pick(func(e *event.Event) []string { return e.ChangedFields() })
		case 9, 10:
			toks := evs[rng.IntN(len(evs))].Tokens()
			for range 1 + rng.IntN(2) {
				tok := toks[rng.IntN(len(toks))]
				if r := []rune(tok); len(r) > 2 && rng.IntN(2) == 0 {
					tok = string(r[:1+rng.IntN(len(r)-1)])
				}
				q.TextTokens = append(q.TextTokens, tok)
			}
		case 11:
			q.RemoteAddresses = pick(func(e *event.Event) []string { return one(e.RemoteAddress) })
			q.ActorIDs = pick(func(e *event.Event) []string { return one(e.ActorID) })
		case 12:
			q.IncludeProject = false
			q.IncludeCompany = true
		}
		if rng.IntN(3) == 0 {
			q.From = evs[rng.IntN(len(evs))].Occurred
			q.To = q.From + int64(rng.IntN(10*24*3600*1000))
		}
		q.OldestFirst = rng.IntN(4) == 0
		got, err := st.Search(ctx, q)
		if err != nil {
			t.Fatalf("query %d %+v: %v", i, q, err)
		}
		want, err := ref.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != want.Total {
			t.Fatalf("query %d %+v: total %d, want %d", i, q, got.Total, want.Total)
		}
		sameEvents(t, fmt.Sprintf("query %d %+v", i, q), got.Events, want.Events)
	}
}

func TestTextTokensExact(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	st := db.Store()
	long := strings.Repeat("ä", 1500) + "tail" // 3004 bytes: over the lexeme limit
	mk := func(id, user string) event.Event {
		return event.Event{ID: id, CompanyID: "c", ProjectID: "p", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: time.Now().UnixMilli(), UserID: user}
	}
	evs := []event.Event{
		mk("1", "John.Doe@Example.com"),
		mk("2", "東京支社 Ärzte İstanbul"),
		mk("3", "it's a back\\slash & 'quote' :* | !"),
		mk("4", long),
		mk("5", "ΣΊΣΥΦΟΣ straße ǅemal"),
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"john.doe", "JOHN doe@", "東京", "東京支社", "ärz", "İst", "istanbul", "it s", "slash quote",
		"back", "ää", long[:1990], long[:2001], long, long + "x", "σίσυφος", "strasse", "straß", "ǆemal", "ǅ", "doe nobody", ":*", "'"} {
		q := query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 10, TextTokens: query.TextTokens(text)}
		res, err := st.Search(ctx, q)
		if err != nil {
			t.Fatalf("%.20q: %v", text, err)
		}
		var want []string
		for i := range evs {
			if q.Match(&evs[i]) {
				want = append(want, evs[i].ID)
			}
		}
		var got []string
		for _, e := range res.Events {
			got = append(got, e.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || res.Total != len(want) {
			t.Errorf("text %.30q (tokens %.40q): got %v total %d, want %v", text, q.TextTokens, got, res.Total, want)
		}
	}
}

func TestAppendDedupeAndGet(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	st := db.Store()
	now := time.Now().UnixMilli()
	mk := func(company, id string, occurred int64) event.Event {
		return event.Event{ID: id, CompanyID: company, ProjectID: "p", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: occurred, Data: []byte(`{"b": 1,  "a":[true]}`)}
	}
	old := now - 400*dayMs // lands in the default partition
	batch := []event.Event{mk("c", "x", now), mk("c", "x", now), mk("d", "x", old), mk("c", "y", old)}
	if err := st.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if batch[0].Seq == 0 || batch[1].Seq != 0 || batch[2].Seq <= batch[0].Seq || batch[3].Seq <= batch[2].Seq {
		t.Fatalf("seqs %d %d %d %d", batch[0].Seq, batch[1].Seq, batch[2].Seq, batch[3].Seq)
	}
	again := []event.Event{mk("c", "y", now), mk("c", "z", now)}
	if err := st.Append(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again[0].Seq != 0 || again[1].Seq <= batch[3].Seq {
		t.Fatalf("second batch seqs %d %d", again[0].Seq, again[1].Seq)
	}
	got, err := st.Get(ctx, "d", "x")
	if err != nil {
		t.Fatal(err)
	}
	if got.Occurred != old || got.CompanyID != "d" || string(got.Data) != `{"b": 1,  "a":[true]}` || got.Seq != batch[2].Seq {
		t.Fatalf("get: %+v data %s", got, got.Data)
	}
	if _, err := st.Get(ctx, "d", "y"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
}

// TestOverlappingBatches: concurrent batches sharing ids in different
// orders neither fail (no deadlock) nor store an id twice.
func TestOverlappingBatches(t *testing.T) {
	db := openTest(t, Options{MaxConns: 8})
	ctx := context.Background()
	const writers, rounds, shared = 4, 10, 200
	stored := map[string]int{}
	rng := rand.New(rand.NewPCG(1, 1))
	for r := range rounds {
		// Each round's batches are built first and started together, so
		// that their inserts overlap.
		batches := make([][]event.Event, writers)
		for w := range batches {
			for _, i := range rng.Perm(shared) {
				batches[w] = append(batches[w], event.Event{ID: fmt.Sprintf("r%d-s%d", r, i), CompanyID: "c", ProjectID: "p",
					Level: event.LevelProject, Action: "A", Type: event.TypeInfo, Occurred: time.Now().UnixMilli()})
			}
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := db.Store().Append(ctx, batches[w]); err != nil {
					t.Errorf("writer %d round %d: %v", w, r, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, b := range batches {
			for _, e := range b {
				if e.Seq != 0 {
					stored[e.ID]++
				}
			}
		}
	}
	if len(stored) != rounds*shared {
		t.Fatalf("%d ids stored, want %d", len(stored), rounds*shared)
	}
	for id, n := range stored {
		if n != 1 {
			t.Fatalf("%s stored %d times", id, n)
		}
	}
	res, err := db.Store().Search(ctx, query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 1})
	if err != nil || res.Total != rounds*shared {
		t.Fatalf("search total %d, %v", res.Total, err)
	}
}

// TestTwoInstances: an event acknowledged through one instance is found
// at once through another, by Search, Get and ReadFrom.
func TestTwoInstances(t *testing.T) {
	url := newDatabase(t)
	open := func() *DB {
		db, err := Open(context.Background(), Options{URL: url, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	a, b := open(), open()
	ctx := context.Background()
	var after uint64
	for i := range 20 {
		evs := []event.Event{{ID: fmt.Sprint(i), CompanyID: "c", ProjectID: "p", Level: event.LevelProject,
			Action: "A", Type: event.TypeInfo, Occurred: time.Now().UnixMilli()}}
		writer, reader := a, b
		if i%2 == 1 {
			writer, reader = b, a
		}
		if err := writer.Store().Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		res, err := reader.Store().Search(ctx, query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 1})
		if err != nil || res.Total != i+1 || res.Events[0].ID != evs[0].ID {
			t.Fatalf("search through the other instance after %d appends: %+v, %v", i+1, res, err)
		}
		if _, err := reader.Store().Get(ctx, "c", evs[0].ID); err != nil {
			t.Fatalf("get through the other instance: %v", err)
		}
		got, err := reader.Store().ReadFrom(ctx, after, 10)
		if err != nil || len(got) != 1 || got[0].Seq != evs[0].Seq {
			t.Fatalf("read from %d through the other instance: %d events, %v", after, len(got), err)
		}
		after = got[0].Seq
	}
}
