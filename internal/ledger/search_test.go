package ledger_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// Search results of the embedded engine (tail and segments) carry what
// LocateEvent needs (Seq, company, level, project), so results can be
// given their leaf index without a second lookup.
func TestLocateSearchResults(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "events"), MemtableEvents: 150})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	trees, err := ledger.OpenFileStore(filepath.Join(dir, "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	defer trees.Close()
	e := newEnv(t, st, trees)
	appendEvents(t, st, storetest.Generate(5, 500, storetest.GenOptions{}))
	e.l.Notify()
	e.sync(t)
	res, err := st.Search(ctx, query.Query{CompanyID: "c1", ProjectID: "P2", IncludeProject: true, IncludeCompany: true, Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) < 50 {
		t.Fatalf("only %d results", len(res.Events))
	}
	for i := range res.Events {
		ev := &res.Events[i]
		leaf, err := e.l.LocateEvent(ctx, ev)
		if err != nil {
			t.Fatalf("LocateEvent of search result %s (seq %d): %v", ev.ID, ev.Seq, err)
		}
		byID, err := e.l.Locate(ctx, "c1", ev.ID)
		if err != nil || byID.Index != leaf.Index || byID.Tree != leaf.Tree {
			t.Fatalf("Locate(%s) = %+v, %v; search result gave %+v", ev.ID, byID, err, leaf)
		}
	}
}
