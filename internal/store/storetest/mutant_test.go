package storetest

import (
	"cmp"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// mutant is the reference store with one bug planted, chosen by kind.
type mutant struct {
	*MemStore
	kind string
}

func (m mutant) Search(ctx context.Context, q query.Query) (store.Result, error) {
	switch m.kind {
	case "total":
		r, err := m.MemStore.Search(ctx, q)
		r.Total = len(r.Events)
		return r, err
	case "ties":
		q.OldestFirst = !q.OldestFirst
		r, err := m.MemStore.Search(ctx, q)
		return r, err
	case "ties-ascending":
		all := q
		all.Page, all.Size = 0, 1<<30
		r, err := m.MemStore.Search(ctx, all)
		slices.SortStableFunc(r.Events, func(a, b event.Event) int {
			if a.Occurred != b.Occurred && q.OldestFirst {
				return cmp.Compare(a.Occurred, b.Occurred)
			}
			if a.Occurred != b.Occurred {
				return cmp.Compare(b.Occurred, a.Occurred)
			}
			return cmp.Compare(a.Seq, b.Seq) // the bug: ties always oldest ingest first
		})
		if off := q.Offset(); off < len(r.Events) {
			r.Events = r.Events[off:min(len(r.Events), off+q.Size)]
		} else {
			r.Events = nil
		}
		return r, err
	case "text":
		q.TextTokens = nil
	case "notenants":
		q.NoTenants = false
	case "excluded":
		q.ExcludedActions = nil
	case "from-exclusive":
		if q.From > 0 {
			q.From++
		}
	case "levels":
		q.IncludeCompany = true
	}
	return m.MemStore.Search(ctx, q)
}

func (m mutant) Get(ctx context.Context, company, id string) (event.Event, error) {
	if m.kind == "get-any-company" {
		for _, c := range []string{"c1", "c2", "c3", ""} {
			if e, err := m.MemStore.Get(ctx, c, id); err == nil {
				return e, nil
			}
		}
	}
	return m.MemStore.Get(ctx, company, id)
}

func (m mutant) ReadFrom(ctx context.Context, after uint64, limit int) ([]event.Event, error) {
	evs, err := m.MemStore.ReadFrom(ctx, after, limit)
	if m.kind == "readfrom-gap" {
		evs = slices.DeleteFunc(evs, func(e event.Event) bool { return e.Seq%37 == 0 })
	}
	return evs, err
}

func (m mutant) Append(ctx context.Context, evs []event.Event) error {
	if m.kind == "half" {
		for i := 0; i < len(evs); i += 10 {
			if err := ctx.Err(); err != nil {
				return err
			}
			_ = m.MemStore.Append(context.Background(), evs[i:min(len(evs), i+10)])
		}
		return nil
	}
	switch m.kind {
	case "seq-per-batch":
		err := m.MemStore.Append(ctx, evs)
		for i := range evs {
			if evs[i].Seq != 0 {
				evs[i].Seq = uint64(i + 1)
			}
		}
		return err
	case "dedupe-batch":
		// Later copies of an ID in the batch are stored under another name.
		seen := map[string]bool{}
		var renamed []int
		for i := range evs {
			k := evs[i].CompanyID + "/" + evs[i].ID
			if seen[k] {
				evs[i].ID += "#dup"
				renamed = append(renamed, i)
			}
			seen[k] = true
		}
		err := m.MemStore.Append(ctx, evs)
		for _, i := range renamed {
			evs[i].ID = strings.TrimSuffix(evs[i].ID, "#dup")
		}
		return err
	}
	return m.MemStore.Append(ctx, evs)
}

func (m mutant) Close() error {
	if m.kind == "close" {
		return nil
	}
	return m.MemStore.Close()
}

func (m mutant) DeleteBefore(ctx context.Context, c string, before int64) (int64, error) {
	if m.kind == "delete" {
		return m.MemStore.DeleteBefore(ctx, c, before+2*day)
	}
	return m.MemStore.DeleteBefore(ctx, c, before)
}

// TestSuiteCatchesBugs runs the suite against stores with one planted bug
// each, in a child process, and requires the named subtest to fail: a
// suite that passes everything proves nothing.
func TestSuiteCatchesBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per planted bug")
	}
	for kind, subtest := range map[string]string{
		"total":           "Paging",
		"ties":            "Ordering",
		"ties-ascending":  "Ordering",
		"text":            "Filters",
		"notenants":       "Filters",
		"excluded":        "Filters",
		"from-exclusive":  "Filters",
		"levels":          "Isolation",
		"get-any-company": "GetNotFound",
		"readfrom-gap":    "ReadFromConcurrent",
		"seq-per-batch":   "SeqIncreasing",
		"dedupe-batch":    "Dedupe",
		"reopen-empty":    "RoundTrip",
		"half":            "CancelledAppend",
		"close":           "Closed",
		"delete":          "DeleteBefore",
	} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$/^"+subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "STORETEST_MUTANT="+kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed a store with bug %q", kind)
			}
			if !strings.Contains(string(out), "--- FAIL: TestMutant/"+subtest+" ") {
				t.Fatalf("bug %q: subtest %s did not fail:\n%s", kind, subtest, out)
			}
		})
	}
}

// TestMutant is the child of TestSuiteCatchesBugs.
func TestMutant(t *testing.T) {
	kind := os.Getenv("STORETEST_MUTANT")
	if kind == "" {
		t.Skip("only run by TestSuiteCatchesBugs")
	}
	Run(t, func(t *testing.T) *Harness {
		m := NewMemStore()
		return &Harness{Store: mutant{m, kind}, Reopen: func(*testing.T) store.Store {
			if kind == "reopen-empty" {
				return NewMemStore()
			}
			return mutant{m.Reopen(), kind}
		}}
	})
}
