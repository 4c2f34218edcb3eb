package bench

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// TestPGTableMatchesReference checks the baseline's SQL, free text above
// all (unicode, case, prefixes, several words), against query.Match on
// storetest's deliberately awkward events.
func TestPGTableMatchesReference(t *testing.T) {
	if !integration(t) {
		t.Skip("needs PostgreSQL: set AUDITTRAIL_INTEGRATION=1")
	}
	ctx := context.Background()
	cfg := EngineConfig{PostgresURL: testPostgresURL(), Database: "audittrail_bench_unit", Logger: slog.New(slog.DiscardHandler)}
	eng, err := openPGTable(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = eng.Close()
		_ = eng.(*PGTable).Drop(context.Background())
	})
	ref := storetest.NewMemStore()
	events := storetest.Generate(21, 600, storetest.GenOptions{})
	// The last batch repeats ten stored events: COPY refuses it, and the
	// INSERT that follows must store its 200 new ones and skip the ten.
	for _, r := range [][2]int{{0, 200}, {200, 400}, {390, 600}} {
		batch := events[r[0]:r[1]]
		if err := eng.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := ref.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Append(ctx, events[:10]); err != nil { // a retried batch stores nothing twice
		t.Fatal(err)
	}
	base := query.Query{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: true, Size: 20}
	var qs []query.Query
	for _, text := range []string{"john.doe", "MÜLLER", "zo", "zoë", "quetzal person", "ärzte", "東京支社", "chrome",
		"2001", "t-acme", "wrong password", "added_roles", "nosuchword"} {
		q := base
		q.TextTokens = query.TextTokens(text)
		qs = append(qs, q)
	}
	q := base
	q.Tenants, q.NoTenants = []string{"t1", "T-Acme"}, true
	qs = append(qs, q)
	q = base
	q.NoTenants = true
	qs = append(qs, q)
	q = base
	q.ExcludedActions, q.Page, q.Size = []string{"LoginSucceed"}, 2, 7
	qs = append(qs, q)
	q = base
	q.ChangedFields, q.IncludeCompany = []string{"display_name", "phone"}, false
	qs = append(qs, q)
	q = base
	q.IncludeProject, q.OldestFirst = false, true
	qs = append(qs, q)

	nonEmpty := 0
	for _, q := range qs {
		want, err := ref.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if want.Total > 0 {
			nonEmpty++
		}
		got, err := eng.Search(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", describeQuery(q), err)
		}
		if got.Total != want.Total || !sameIDs(pageIDs(got.Events), pageIDs(want.Events)) {
			t.Errorf("%s: pgtable total %d page %v, reference total %d page %v", describeQuery(q),
				got.Total, pageIDs(got.Events), want.Total, pageIDs(want.Events))
		}
	}
	if nonEmpty < len(qs)-3 {
		t.Fatalf("only %d of %d queries match anything: the comparison proves little", nonEmpty, len(qs))
	}
}

// pageIDs lists the IDs of a page, for comparing engines' answers.
func pageIDs(events []event.Event) []string {
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	return ids
}

func sameIDs(a, b []string) bool { return slices.Equal(a, b) }
