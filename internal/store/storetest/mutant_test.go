package storetest

import (
	"context"
	"os"
	"os/exec"
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
	case "text":
		q.TextTokens = nil
	case "notenants":
		q.NoTenants = false
	}
	return m.MemStore.Search(ctx, q)
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
		"total":     "Paging",
		"ties":      "Ordering",
		"text":      "Filters",
		"notenants": "Filters",
		"half":      "CancelledAppend",
		"close":     "Closed",
		"delete":    "DeleteBefore",
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
		return &Harness{Store: mutant{m, kind}, Reopen: func(*testing.T) store.Store { return mutant{m.Reopen(), kind} }}
	})
}
