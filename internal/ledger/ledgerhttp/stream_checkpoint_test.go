package ledgerhttp

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/stream"
)

// fakeCheckpoints is a tree that grows as the test says, with a signer
// that counts its on-demand checkpoints.
type fakeCheckpoints struct {
	mu        sync.Mutex
	committed uint64 // the tree's size
	latest    uint64 // the latest stored checkpoint's size
	signed    int    // SignCurrent calls that signed
	waited    int    // WaitFor calls
}

func (f *fakeCheckpoints) cp(size uint64) ledger.Checkpoint {
	return ledger.Checkpoint{Size: size, Note: fmt.Appendf(nil, "size %d", size)}
}

func (f *fakeCheckpoints) grow(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed += n
}

func (f *fakeCheckpoints) WaitFor(context.Context, uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited++
	return nil
}

func (f *fakeCheckpoints) LatestCheckpoint(context.Context, ledger.TreeID) (ledger.Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.latest == 0 {
		return ledger.Checkpoint{}, ledger.ErrNotFound
	}
	return f.cp(f.latest), nil
}

func (f *fakeCheckpoints) SignCurrent(context.Context, ledger.TreeID) (ledger.Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signed++
	return f.cp(f.committed), nil
}

func (f *fakeCheckpoints) LocateEvents(context.Context, []event.Event, bool) ([]ledger.Leaf, error) {
	return nil, fmt.Errorf("not used")
}

func (f *fakeCheckpoints) InclusionProofs(context.Context, ledger.TreeID, []uint64, uint64) ([]ledger.InclusionProof, error) {
	return nil, fmt.Errorf("not used")
}

// A batch gets a checkpoint covering it without waiting when one exists;
// when none does, batches that arrive together share one signed on demand,
// a live stream signs at most once per signEvery, and the checkpoints
// handed out never go back in size.
func TestStreamCheckpointRule(t *testing.T) {
	ctx := context.Background()
	tree := ledger.TreeID{CompanyID: "c1", ProjectID: "p1"}
	f := &fakeCheckpoints{committed: 100, latest: 50}
	const every = 50 * time.Millisecond
	b := &evidenceBuilder{l: f, signEvery: every, refresh: time.Hour, trees: map[ledger.TreeID]*treeCheckpoint{}}

	// Covered by the stored latest: no signing.
	if cp, err := b.checkpoint(ctx, tree, 40); err != nil || cp.Size != 50 || f.signed != 0 {
		t.Fatalf("covered batch: %+v, %v, %d signed; want the latest (50), none signed", cp, err, f.signed)
	}
	// Twenty batches beyond it at once: one checkpoint signed for them all.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			need := uint64(51 + i*2)
			cp, err := b.checkpoint(ctx, tree, need)
			if err == nil && cp.Size < need {
				err = fmt.Errorf("checkpoint of %d for a batch reaching %d", cp.Size, need)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if f.signed != 1 {
		t.Fatalf("%d checkpoints signed for batches arriving together, want 1", f.signed)
	}

	// A live stream: the tree grows by 10 before each batch, which reaches
	// its end. Signing is paced by signEvery.
	start, last := time.Now(), uint64(0)
	const batches = 40
	for range batches {
		f.grow(10)
		f.mu.Lock()
		need := f.committed
		f.mu.Unlock()
		cp, err := b.checkpoint(ctx, tree, need)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size < need || cp.Size < last {
			t.Fatalf("checkpoint of %d for a batch reaching %d after one of %d", cp.Size, need, last)
		}
		last = cp.Size
	}
	elapsed := time.Since(start)
	if maxSigned := 1 + 1 + int(elapsed/every); f.signed > maxSigned {
		t.Fatalf("%d checkpoints signed in %v, want at most one per %v (%d)", f.signed, elapsed, every, maxSigned)
	}
	if elapsed < (batches-1)*every {
		t.Fatalf("%d uncovered batches took only %v: signing was not paced", batches, elapsed)
	}

	// A batch the cached checkpoint covers signs nothing more, whether or
	// not the store holds one; past refresh, a newer stored one is handed
	// out instead of the cached one.
	signed := f.signed
	if cp, err := b.checkpoint(ctx, tree, last); err != nil || cp.Size != last || f.signed != signed {
		t.Fatalf("covered by the cache: %+v, %v, %d more signed", cp, err, f.signed-signed)
	}
	f.mu.Lock()
	f.latest = 0 // nothing stored at all
	f.mu.Unlock()
	b.refresh = 0
	if cp, err := b.checkpoint(ctx, tree, last); err != nil || cp.Size != last || f.signed != signed {
		t.Fatalf("covered by the cache, none stored: %+v, %v, %d more signed", cp, err, f.signed-signed)
	}
	f.grow(5)
	f.mu.Lock()
	f.latest = f.committed // the periodic loop signed and stored
	f.mu.Unlock()
	if cp, err := b.checkpoint(ctx, tree, 10); err != nil || cp.Size != last+5 || f.signed != signed {
		t.Fatalf("after refresh: %+v, %v; want the newer stored one (%d), none signed", cp, err, last+5)
	}
}

// Only the destinations that send the evidence get it: the others' batches
// neither wait for the ledger nor cost a proof.
func TestStreamEvidenceOnlyForCarriers(t *testing.T) {
	f := &fakeCheckpoints{committed: 10, latest: 10}
	hook := StreamEvidence(f, nil)
	events := []event.Event{{ID: "e1", CompanyID: "c1", Seq: 1}}
	// A type absent from carriesEvidence (every real one carries it, or
	// will).
	for _, typ := range []string{"no-evidence-destination"} {
		if ev := hook(context.Background(), stream.Spec{ID: "x", Type: typ}, events); ev != nil || f.waited != 0 {
			t.Fatalf("%s: evidence %s, %d waits for the ledger; want none", typ, ev, f.waited)
		}
	}
	// A webhook batch asks the ledger (the fake cannot locate events, so
	// the batch goes without evidence, as with a real failure).
	if ev := hook(context.Background(), stream.Spec{ID: "w", Type: stream.WebhookType}, events); ev != nil || f.waited != 1 {
		t.Fatalf("webhook: evidence %s, %d waits; want one wait and no evidence from the fake", ev, f.waited)
	}
}
