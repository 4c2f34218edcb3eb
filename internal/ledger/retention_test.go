package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// Retention deletes old events; the trees keep their hashes, so every
// remaining event still proves its inclusion, old checkpoints stay linked
// to new ones, and the trail keeps growing.
func TestRetentionKeepsVerification(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewMemStore()
	e := newEnv(t, st, ledgertestMem())
	end := time.Now().Truncate(time.Hour).UnixMilli()
	opts := storetest.GenOptions{Companies: []string{"c1"}, Projects: []string{"P1"}, CompanyLevel: -1, End: end, Span: 20 * 24 * time.Hour}
	appendEvents(t, st, storetest.Generate(31, 400, opts))
	e.sync(t)
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	before, err := e.l.CheckpointNow(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	linesBefore := byTree(t, st)[tr]
	cutoff := end - 10*24*time.Hour.Milliseconds()
	deleted, err := st.DeleteBefore(ctx, "c1", cutoff)
	if err != nil || deleted == 0 || deleted == 400 {
		t.Fatalf("DeleteBefore removed %d of 400 (%v); want some", deleted, err)
	}
	appendEvents(t, st, storetest.Generate(32, 100, opts))
	e.l.Notify()
	e.sync(t)
	after, err := e.l.CheckpointNow(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size != 500 {
		t.Fatalf("tree size %d after retention and 100 more events, want 500 (deleted leaves stay)", after.Size)
	}
	p, err := e.l.ConsistencyProof(ctx, tr, before.Size, after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(before, after); err != nil {
		t.Fatalf("old checkpoint no longer linked after retention: %v", err)
	}
	// Every remaining event, old and new, proves itself from its JSON.
	remaining := byTree(t, st)[tr]
	if len(remaining) != 500-int(deleted) {
		t.Fatalf("%d events remain, want %d", len(remaining), 500-int(deleted))
	}
	for _, line := range remaining {
		leaf, err := e.l.Locate(ctx, "c1", ledger.EventIDOf(line))
		if err != nil {
			t.Fatal(err)
		}
		ip, err := e.l.InclusionProof(ctx, tr, leaf.Index, after.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := ip.VerifyEvent(line, after); err != nil {
			t.Fatalf("event %s after retention: %v", ledger.EventIDOf(line), err)
		}
	}
	// A deleted event is gone from the store, but a copy exported before
	// (with its leaf index) still proves against today's checkpoint.
	kept := map[string]bool{}
	for _, line := range remaining {
		kept[ledger.EventIDOf(line)] = true
	}
	goneAt := -1
	for i, line := range linesBefore {
		if !kept[ledger.EventIDOf(line)] {
			goneAt = i
			break
		}
	}
	gone := linesBefore[goneAt]
	if _, err := e.l.Locate(ctx, "c1", ledger.EventIDOf(gone)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Locate of a deleted event: %v, want ErrNotFound", err)
	}
	ip, err := e.l.InclusionProof(ctx, tr, uint64(goneAt), after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ip.VerifyEvent(gone, after); err != nil {
		t.Fatalf("exported copy of a deleted event: %v", err)
	}
}
