package ledgertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"

	"github.com/audittrail/audittrail/internal/ledger"
)

// mutant is the reference store with one bug planted, chosen by kind.
type mutant struct {
	*Mem
	kind string
}

func (m mutant) Commit(ctx context.Context, c ledger.Commit) error {
	switch m.kind {
	case "position-unchecked":
		pos, _ := m.Mem.Position(ctx)
		c.After = pos
	case "not-atomic":
		// Trees land one commit at a time: a later tree's conflict leaves
		// the earlier ones applied.
		pos, _ := m.Mem.Position(ctx)
		if pos != c.After {
			return m.Mem.Commit(ctx, c)
		}
		for i, ta := range c.Trees {
			after, _ := m.Mem.Position(ctx)
			p := after
			if i == len(c.Trees)-1 {
				p = c.Position
			}
			if err := m.Mem.Commit(ctx, ledger.Commit{After: after, Position: p, Trees: []ledger.TreeAppend{ta}}); err != nil {
				return err
			}
		}
		return nil
	case "stale-root":
		for i := range c.Trees {
			if c.Trees[i].OldSize > 0 {
				ts, _ := m.Mem.Tree(ctx, c.Trees[i].Tree)
				c.Trees[i].Root = ts.Root
			}
		}
	}
	return m.Mem.Commit(ctx, c)
}

func (m mutant) Load(ctx context.Context) (ledger.State, error) {
	st, err := m.Mem.Load(ctx)
	if m.kind == "load-skips-company" {
		var keep []ledger.TreeState
		for _, ts := range st.Trees {
			if ts.Tree.ProjectID != "" {
				keep = append(keep, ts)
			}
		}
		st.Trees = keep
	}
	return st, err
}

func (m mutant) FindSeq(ctx context.Context, t ledger.TreeID, seq uint64) (uint64, error) {
	i, err := m.Mem.FindSeq(ctx, t, seq)
	if m.kind == "findseq-off-by-one" && err == nil && i > 3 {
		i++
	}
	return i, err
}

func (m mutant) Nodes(ctx context.Context, t ledger.TreeID, ids []compact.NodeID) ([][]byte, error) {
	if m.kind == "nodes-unbounded" {
		ts, _ := m.Mem.Tree(ctx, t)
		out := make([][]byte, len(ids))
		for i, id := range ids {
			if _, end := id.Coverage(); end > ts.Size {
				out[i] = make([]byte, 32)
				continue
			}
			h, err := m.Mem.Nodes(ctx, t, []compact.NodeID{id})
			if err != nil {
				return nil, err
			}
			out[i] = h[0]
		}
		return out, nil
	}
	return m.Mem.Nodes(ctx, t, ids)
}

func (m mutant) PutCheckpoint(ctx context.Context, t ledger.TreeID, cp ledger.StoredCheckpoint) error {
	switch m.kind {
	case "checkpoint-overwrite", "checkpoint-backwards":
		m.d.mu.Lock()
		defer m.d.mu.Unlock()
		mt := m.d.trees[t]
		if mt == nil || cp.Size > mt.size || cp.Size == 0 {
			return ledger.ErrBadSize
		}
		for i := range mt.cps {
			if mt.cps[i].Size == cp.Size {
				if m.kind == "checkpoint-overwrite" {
					mt.cps[i] = cp
				}
				return nil
			}
		}
		mt.cps = append(mt.cps, cp) // and never refuses a smaller size
		return nil
	}
	return m.Mem.PutCheckpoint(ctx, t, cp)
}

func (m mutant) Close() error {
	if m.kind == "close-ignored" {
		return nil
	}
	return m.Mem.Close()
}

// TestSuiteCatchesBugs runs the suite against stores with one planted bug
// each, in a child process, and requires the named subtest to fail: a
// suite that passes everything proves nothing.
func TestSuiteCatchesBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per planted bug")
	}
	for kind, subtest := range map[string]string{
		"position-unchecked":   "Conflict",
		"not-atomic":           "Conflict",
		"stale-root":           "CommitAndRead",
		"load-skips-company":   "CommitAndRead",
		"findseq-off-by-one":   "CommitAndRead",
		"nodes-unbounded":      "Bounds",
		"checkpoint-overwrite": "Checkpoints",
		"checkpoint-backwards": "Checkpoints",
		"reopen-empty":         "Durable",
		"close-ignored":        "Closed",
	} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$/^"+subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "LEDGERTEST_MUTANT="+kind)
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
	kind := os.Getenv("LEDGERTEST_MUTANT")
	if kind == "" {
		t.Skip("only run by TestSuiteCatchesBugs")
	}
	Run(t, func(t *testing.T) *Harness {
		m := NewMem()
		h := &Harness{Store: mutant{m, kind}}
		h.Reopen = func(*testing.T) ledger.TreeStore {
			h.Store.Close()
			if kind == "reopen-empty" {
				h.Store = mutant{NewMem(), kind}
			} else {
				h.Store = mutant{m.Reopen(), kind}
			}
			return h.Store
		}
		return h
	})
}
