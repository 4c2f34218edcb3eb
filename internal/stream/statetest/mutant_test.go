package statetest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// mutant is the memory store with one bug planted, chosen by kind.
type mutant struct {
	*stream.MemState
	kind string
}

func (m mutant) Update(ctx context.Context, id string, change func(*stream.Record) error) (stream.Record, error) {
	if m.kind != "update-not-atomic" {
		return m.MemState.Update(ctx, id, change)
	}
	// The bug: read, change, then write the whole record back, with
	// nothing held in between.
	r, err := m.Get(ctx, id)
	if err != nil {
		return r, err
	}
	if err := change(&r); err != nil {
		return stream.Record{}, err
	}
	time.Sleep(time.Millisecond)
	return m.MemState.Update(ctx, id, func(cur *stream.Record) error { *cur = r; return nil })
}

func (m mutant) SaveProgress(ctx context.Context, id string, p stream.Progress) error {
	switch m.kind {
	case "progress-writes-whole-record":
		// The bug: the deliverer writes its whole (possibly old) copy.
		r, err := m.Get(ctx, id)
		if err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
		r.Cursor, r.Counters = p.Cursor, p.Counters
		_, err = m.MemState.Update(ctx, id, func(cur *stream.Record) error { *cur = r; return nil })
		return err
	case "no-fence":
		_, err := m.MemState.Update(ctx, id, func(cur *stream.Record) error {
			cur.Cursor, cur.Counters = p.Cursor, p.Counters
			return nil
		})
		return err
	case "progress-upserts":
		if _, err := m.Get(ctx, id); err != nil {
			return m.Create(ctx, stream.Record{Spec: stream.Spec{ID: id}, Cursor: p.Cursor, Epoch: p.Epoch})
		}
	}
	return m.MemState.SaveProgress(ctx, id, p)
}

func (m mutant) Create(ctx context.Context, r stream.Record) error {
	if m.kind == "create-replaces" {
		if _, err := m.MemState.Update(ctx, r.Spec.ID, func(cur *stream.Record) error { *cur = r; return nil }); err == nil {
			return nil
		}
	}
	return m.MemState.Create(ctx, r)
}

// TestSuiteCatchesBugs runs the suite against stores with one planted bug
// each, in a child process, and requires the named case to fail: a suite
// that passes everything proves nothing.
func TestSuiteCatchesBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per planted bug")
	}
	for kind, subtest := range map[string]string{
		"update-not-atomic":            "ConcurrentUpdates",
		"progress-writes-whole-record": "SplitWriters",
		"no-fence":                     "Fencing",
		"progress-upserts":             "Delete",
		"create-replaces":              "RoundTrip",
	} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$/^"+subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "STATETEST_MUTANT="+kind)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed a store with bug %q", kind)
			}
			if !strings.Contains(string(out), "--- FAIL: TestMutant/"+subtest+" ") {
				t.Fatalf("bug %q: case %s did not fail:\n%s", kind, subtest, out)
			}
		})
	}
}

// TestMutant is the child of TestSuiteCatchesBugs.
func TestMutant(t *testing.T) {
	kind := os.Getenv("STATETEST_MUTANT")
	if kind == "" {
		t.Skip("only run by TestSuiteCatchesBugs")
	}
	Run(t, Harness{New: func(*testing.T) stream.StateStore { return mutant{stream.NewMemState(), kind} }})
}

// TestMemState: the reference implementation passes.
func TestMemState(t *testing.T) {
	Run(t, Harness{New: func(*testing.T) stream.StateStore { return stream.NewMemState() }})
}
