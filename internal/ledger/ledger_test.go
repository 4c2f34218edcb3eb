package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgertest"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

type env struct {
	st     store.Store
	trees  ledger.TreeStore
	l      *ledger.Ledger
	signer note.Signer
	vkey   string
}

func ledgertestMem() *ledgertest.Mem { return ledgertest.NewMem() }

func newEnv(t *testing.T, st store.Store, trees ledger.TreeStore, mod ...func(*ledger.Options)) *env {
	t.Helper()
	signer, vkey, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "ledger.key"), "test-log")
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWithKey(t, st, trees, signer, vkey, mod...)
}

func newEnvWithKey(t *testing.T, st store.Store, trees ledger.TreeStore, signer note.Signer, vkey string, mod ...func(*ledger.Options)) *env {
	t.Helper()
	o := ledger.Options{Store: st, Trees: trees, Signer: signer, VerifierKey: vkey, CheckpointInterval: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond, ReadLimit: 97}
	for _, m := range mod {
		m(&o)
	}
	l, err := ledger.New(o)
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	t.Cleanup(func() { l.Close() })
	return &env{st: st, trees: trees, l: l, signer: signer, vkey: vkey}
}

func (e *env) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func appendEvents(t *testing.T, st store.Store, evs []event.Event) {
	t.Helper()
	for i := 0; i < len(evs); i += 50 {
		if err := st.Append(context.Background(), evs[i:min(len(evs), i+50)]); err != nil {
			t.Fatal(err)
		}
	}
}

// byTree reads the whole store in Seq order and groups the wire JSON of
// the events by tree: what a verifier holding complete exports has.
func byTree(t *testing.T, st store.Store) map[ledger.TreeID][][]byte {
	t.Helper()
	out := map[ledger.TreeID][][]byte{}
	var after uint64
	for {
		evs, err := st.ReadFrom(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for i := range evs {
			wire, err := json.Marshal(evs[i])
			if err != nil {
				t.Fatal(err)
			}
			tr := ledger.TreeOf(&evs[i])
			out[tr] = append(out[tr], wire)
		}
		after = evs[len(evs)-1].Seq
	}
}

func leavesOf(t *testing.T, lines [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(lines))
	for i, l := range lines {
		h, err := ledger.LeafHashFromJSON(l)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}

func TestAppendCheckpointAndProve(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewMemStore()
	trees, err := ledger.OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer trees.Close()
	e := newEnv(t, st, trees)

	first := storetest.Generate(1, 700, storetest.GenOptions{})
	appendEvents(t, st, first)
	e.l.Notify()
	e.sync(t)

	exports := byTree(t, st)
	if len(exports) < 4 {
		t.Fatalf("only %d trees; the generator should spread events over projects and companies", len(exports))
	}
	old := map[ledger.TreeID]ledger.Checkpoint{}
	for tr, lines := range exports {
		cp, err := e.l.CheckpointNow(ctx, tr)
		if err != nil {
			t.Fatalf("CheckpointNow(%s): %v", tr, err)
		}
		cp, err = ledger.VerifyCheckpoint(cp.Note, e.vkey, e.l.Origin(tr))
		if err != nil {
			t.Fatalf("VerifyCheckpoint(%s): %v", tr, err)
		}
		if cp.Tree != tr || cp.Size != uint64(len(lines)) {
			t.Fatalf("checkpoint of %s: tree %s size %d, want %d events", tr, cp.Tree, cp.Size, len(lines))
		}
		// The whole export recomputes the signed root: nothing missing,
		// nothing extra, nothing reordered.
		if root := ledger.RootFromLeaves(leavesOf(t, lines)); !bytes.Equal(root, cp.Root) {
			t.Fatalf("%s: root of the export %x, checkpoint says %x", tr, root, cp.Root)
		}
		// Every event: locate it by id, prove it against the checkpoint
		// from its own wire JSON.
		for i, line := range lines {
			leaf, err := e.l.Locate(ctx, tr.CompanyID, ledger.EventIDOf(line))
			if err != nil || leaf.Index != uint64(i) || leaf.Tree != tr {
				t.Fatalf("Locate(%s) = %+v, %v; want index %d in %s", ledger.EventIDOf(line), leaf, err, i, tr)
			}
			p, err := e.l.InclusionProof(ctx, tr, leaf.Index, cp.Size)
			if err != nil {
				t.Fatalf("InclusionProof: %v", err)
			}
			if err := p.VerifyEvent(line, cp); err != nil {
				t.Fatalf("event %d of %s: %v", i, tr, err)
			}
		}
		old[tr] = cp
	}

	// The trail grows; each new checkpoint is consistent with the old one.
	appendEvents(t, st, storetest.Generate(2, 300, storetest.GenOptions{}))
	e.l.Notify()
	e.sync(t)
	for tr, was := range old {
		now, err := e.l.CheckpointNow(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.l.ConsistencyProof(ctx, tr, was.Size, now.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(was, now); err != nil {
			t.Fatalf("%s: consistency %d→%d: %v", tr, was.Size, now.Size, err)
		}
		// History keeps the old checkpoint.
		if back, err := e.l.CheckpointAt(ctx, tr, was.Size); err != nil || !bytes.Equal(back.Note, was.Note) {
			t.Fatalf("CheckpointAt(%s, %d): %v", tr, was.Size, err)
		}
	}
	// Beyond the tree: refused.
	for tr, was := range old {
		if _, err := e.l.InclusionProof(ctx, tr, 0, was.Size+100000); !errors.Is(err, ledger.ErrBadSize) {
			t.Fatalf("proof beyond the tree: %v, want ErrBadSize", err)
		}
		break
	}
}

func TestPeriodicCheckpointsOnlyWhenGrown(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewMemStore()
	e := newEnv(t, st, ledgertestMem())
	evs := storetest.Generate(3, 50, storetest.GenOptions{Companies: []string{"c1"}, Projects: []string{"P1"}, CompanyLevel: -1})
	appendEvents(t, st, evs)
	e.l.Notify()
	e.sync(t)
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	var cp ledger.Checkpoint
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		cp, err = e.l.LatestCheckpoint(ctx, tr)
		if err == nil && cp.Size == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic checkpoint of size 50: %+v, %v", cp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond) // several intervals without growth
	list, err := e.l.Checkpoints(ctx, tr, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Size != 50 {
		sizes := []uint64{}
		for _, c := range list {
			sizes = append(sizes, c.Size)
		}
		t.Fatalf("checkpoint history %v; want one of size 50 (no signing without growth)", sizes)
	}
}

// tamperStore returns altered copies of stored events, like a database
// edited behind the service's back.
type tamperStore struct {
	store.Store
	alter func(*event.Event)
}

func (s tamperStore) Get(ctx context.Context, c, id string) (event.Event, error) {
	e, err := s.Store.Get(ctx, c, id)
	if err == nil {
		s.alter(&e)
	}
	return e, err
}

func TestTamperingIsDetected(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewMemStore()
	trees := ledgertestMem()
	e := newEnv(t, st, trees)
	appendEvents(t, st, storetest.Generate(4, 400, storetest.GenOptions{}))
	e.l.Notify()
	e.sync(t)
	exports := byTree(t, st)
	var tr ledger.TreeID
	for k, v := range exports {
		if len(v) > len(exports[tr]) {
			tr = k
		}
	}
	lines := exports[tr]
	cp, err := e.l.CheckpointNow(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err = ledger.VerifyCheckpoint(cp.Note, e.vkey, e.l.Origin(tr))
	if err != nil {
		t.Fatal(err)
	}
	proofOf := func(i int) ledger.InclusionProof {
		p, err := e.l.InclusionProof(ctx, tr, uint64(i), cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	altered := func(line []byte, field string, v any) []byte {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = v
		b, _ := json.Marshal(m)
		return b
	}

	t.Run("altered event", func(t *testing.T) {
		for _, f := range []struct {
			field string
			v     any
		}{{"action", "LoginSucceed-not"}, {"userId", "someone-else"}, {"occurred", "1"}, {"tenants", []string{"t-x"}}, {"data", map[string]any{"x": 1}}} {
			bad := altered(lines[7], f.field, f.v)
			if err := proofOf(7).VerifyEvent(bad, cp); !errors.Is(err, ledger.ErrVerify) {
				t.Fatalf("event with %s altered: %v, want ErrVerify", f.field, err)
			}
		}
		// Formatting is not tampering: the canonical form ignores it.
		var m map[string]any
		_ = json.Unmarshal(lines[7], &m)
		pretty, _ := json.MarshalIndent(m, "", "   ")
		if err := proofOf(7).VerifyEvent(pretty, cp); err != nil {
			t.Fatalf("re-indented event refused: %v", err)
		}
	})
	t.Run("altered in the store", func(t *testing.T) {
		l2, err := ledger.New(ledger.Options{Store: tamperStore{st, func(e *event.Event) { e.Action += "!" }}, Trees: trees, VerifierKey: e.vkey})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l2.Locate(ctx, tr.CompanyID, ledger.EventIDOf(lines[3])); !errors.Is(err, ledger.ErrVerify) {
			t.Fatalf("Locate of an event altered at rest: %v, want ErrVerify", err)
		}
	})
	t.Run("deleted event", func(t *testing.T) {
		gone := slices.Delete(slices.Clone(lines), 5, 6)
		if root := ledger.RootFromLeaves(leavesOf(t, gone)); bytes.Equal(root, cp.Root) {
			t.Fatal("export without an event still gives the signed root")
		}
		// The next event's proof, shown with the event before it, fails.
		if err := proofOf(5).VerifyEvent(lines[6], cp); !errors.Is(err, ledger.ErrVerify) {
			t.Fatalf("event shown at a deleted event's index: %v", err)
		}
	})
	t.Run("reordered events", func(t *testing.T) {
		swapped := slices.Clone(lines)
		swapped[10], swapped[11] = swapped[11], swapped[10]
		if root := ledger.RootFromLeaves(leavesOf(t, swapped)); bytes.Equal(root, cp.Root) {
			t.Fatal("export with two events swapped still gives the signed root")
		}
		p := proofOf(10)
		if err := p.VerifyEvent(lines[11], cp); !errors.Is(err, ledger.ErrVerify) {
			t.Fatalf("event 11 at index 10: %v", err)
		}
		p.LeafHash, _ = ledger.LeafHashFromJSON(lines[11])
		if err := p.Verify(cp); !errors.Is(err, ledger.ErrVerify) {
			t.Fatalf("event 11's leaf with index 10's path: %v", err)
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		// A server restored from an older backup, or one that rewrote its
		// history, serves checkpoints a client who saved cp refuses.
		small := storetest.NewMemStore()
		evs := storetest.Generate(4, 400, storetest.GenOptions{})
		appendEvents(t, small, evs[:200])
		rolled := newEnvWithKey(t, small, ledgertestMem(), e.signer, e.vkey)
		rolled.sync(t)
		rcp, err := rolled.l.CheckpointNow(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		if rcp.Size >= cp.Size {
			t.Fatalf("rolled-back tree has size %d, saved %d", rcp.Size, cp.Size)
		}
		// No proof can link the saved checkpoint to a smaller tree.
		if _, err := rolled.l.ConsistencyProof(ctx, tr, cp.Size, rcp.Size); err == nil {
			t.Fatal("served a consistency proof to a smaller tree")
		}
		if err := ledger.VerifyConsistency(cp.Size, rcp.Size, nil, cp.Root, rcp.Root); !errors.Is(err, ledger.ErrVerify) {
			t.Fatalf("shrunk tree accepted: %v", err)
		}
		// Rolled back then regrown to beyond the old size with other
		// events: its proofs do not match the saved root.
		appendEvents(t, small, storetest.Generate(9, 600, storetest.GenOptions{}))
		rolled.l.Notify()
		rolled.sync(t)
		rcp, err = rolled.l.CheckpointNow(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		if rcp.Size <= cp.Size {
			t.Fatalf("regrown tree has size %d, want above %d", rcp.Size, cp.Size)
		}
		p, err := rolled.l.ConsistencyProof(ctx, tr, cp.Size, rcp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(cp, rcp); !errors.Is(err, ledger.ErrVerify) {
			t.Fatalf("rewritten history passed consistency: %v", err)
		}
	})
}
