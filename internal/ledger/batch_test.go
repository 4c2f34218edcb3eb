package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// LocateEvents and InclusionProofs (the stream evidence's batch reads)
// give exactly what LocateEvent and InclusionProof give one event at a
// time: on the FileStore (its FindSeqs and coalesced node reads) and on a
// TreeStore without FindSeqs (the per-seq fallback). Batches: a run of
// consecutive events of several trees, a sparse one (a filtering
// connector) spanning more leaves than FindSeqs scans in one read, one
// with an altered event.
func TestBatchReadsMatchSingleReads(t *testing.T) {
	for _, kind := range []string{"file", "mem"} {
		t.Run(kind, func(t *testing.T) {
			const window = 256
			defer ledger.SetSeqWindowForTest(window)()
			ctx := context.Background()
			dir := t.TempDir()
			st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "events")})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var trees ledger.TreeStore = ledgertestMem()
			if kind == "file" {
				fs, err := ledger.OpenFileStore(filepath.Join(dir, "ledger"))
				if err != nil {
					t.Fatal(err)
				}
				defer fs.Close()
				trees = fs
			}
			e := newEnv(t, st, trees)
			appendEvents(t, st, storetest.Generate(2, 6000, storetest.GenOptions{}))
			e.l.Notify()
			e.sync(t)
			all, err := st.ReadFrom(ctx, 0, 100_000)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) < 6000 {
				t.Fatalf("store holds %d events", len(all))
			}
			// The sparse batch stays in one tree so that it spans more
			// than one FindSeqs window there.
			bigTree := ledger.TreeOf(&all[0])
			var sparse []event.Event
			for i := range all {
				if ledger.TreeOf(&all[i]) == bigTree && i%3 == 0 {
					sparse = append(sparse, all[i])
				}
			}
			if n := len(sparse); n < 100 || sparse[n-1].Seq-sparse[0].Seq < 3*window {
				t.Fatalf("sparse batch of %d events from seq %d to %d: too small to span two windows", n, sparse[0].Seq, sparse[n-1].Seq)
			}
			batches := map[string][]event.Event{
				"consecutive": all[1234:1534],
				"sparse":      sparse,
				"first":       all[:1],
				"last":        all[len(all)-7:],
			}
			sizes := map[ledger.TreeID]uint64{}
			for name, batch := range batches {
				leaves, err := e.l.LocateEvents(ctx, batch, true)
				if err != nil {
					t.Fatalf("%s: LocateEvents: %v", name, err)
				}
				if span := leaves[len(leaves)-1].Index - leaves[0].Index; name == "sparse" && span <= window {
					t.Fatalf("the sparse batch spans %d leaves, not more than one FindSeqs window", span)
				}
				perTree := map[ledger.TreeID][]uint64{}
				for i := range batch {
					want, err := e.l.LocateEvent(ctx, &batch[i])
					if err != nil {
						t.Fatal(err)
					}
					if got := leaves[i]; got.Tree != want.Tree || got.Index != want.Index || !bytes.Equal(got.Hash, want.Hash) {
						t.Fatalf("%s: event %d: LocateEvents gave %+v, LocateEvent %+v", name, i, got, want)
					}
					perTree[want.Tree] = append(perTree[want.Tree], want.Index)
				}
				for tr, indexes := range perTree {
					if sizes[tr] == 0 {
						ts, err := e.l.Tree(ctx, tr)
						if err != nil {
							t.Fatal(err)
						}
						sizes[tr] = ts.Size
					}
					// Against the whole tree and against a smaller size
					// (not a power of two: proofs with a rehashed node).
					for _, size := range []uint64{sizes[tr], slices.Max(indexes) + 1} {
						proofs, err := e.l.InclusionProofs(ctx, tr, indexes, size)
						if err != nil {
							t.Fatalf("%s: InclusionProofs: %v", name, err)
						}
						for k, idx := range indexes {
							want, err := e.l.InclusionProof(ctx, tr, idx, size)
							if err != nil {
								t.Fatal(err)
							}
							got := proofs[k]
							if got.Index != idx || got.Size != size || !bytes.Equal(got.LeafHash, want.LeafHash) || !slices.EqualFunc(got.Hashes, want.Hashes, bytes.Equal) {
								t.Fatalf("%s: proof of leaf %d in size %d differs from InclusionProof's", name, idx, size)
							}
						}
					}
				}
			}
			if _, err := e.l.InclusionProofs(ctx, bigTree, []uint64{0, sizes[bigTree]}, sizes[bigTree]); !errors.Is(err, ledger.ErrBadSize) {
				t.Fatalf("a leaf beyond the size: %v, want ErrBadSize", err)
			}

			// An altered copy keeps its stored leaf and is named; without
			// the content check (masked copies) only the Seq counts.
			altered := slices.Clone(all[10:20])
			altered[3].Action = "altered"
			leaves, err := e.l.LocateEvents(ctx, altered, true)
			if !errors.Is(err, ledger.ErrVerify) || len(leaves) != len(altered) {
				t.Fatalf("altered batch: %d leaves, %v; want all leaves and ErrVerify", len(leaves), err)
			}
			want, _ := e.l.LocateEvent(ctx, &all[13])
			if !bytes.Equal(leaves[3].Hash, want.Hash) || leaves[3].Index != want.Index {
				t.Fatalf("altered event got leaf %+v, want the stored %+v", leaves[3], want)
			}
			if _, err := e.l.LocateEvents(ctx, altered, false); err != nil {
				t.Fatalf("without the content check: %v", err)
			}

			// An event the ledger does not have.
			unknown := slices.Clone(all[:3])
			unknown[1].Seq = all[len(all)-1].Seq + 1000
			if _, err := e.l.LocateEvents(ctx, unknown, true); !errors.Is(err, ledger.ErrNotYetAppended) && !errors.Is(err, ledger.ErrNotFound) {
				t.Fatalf("unknown seq: %v, want ErrNotYetAppended or ErrNotFound", err)
			}
		})
	}
}

// SignCurrent signs the committed tree (the key's signature, the tree's
// size and root) without adding to the stored history, and a later tree
// proves consistent with it by size.
func TestSignCurrentIsValidAndUnstored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "events")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnv(t, st, ledgertestMem(), func(o *ledger.Options) { o.CheckpointInterval = -1 })
	appendEvents(t, st, storetest.Generate(1, 300, storetest.GenOptions{}))
	e.l.Notify()
	e.sync(t)
	all, err := st.ReadFrom(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	tr := ledger.TreeOf(&all[0])
	ts, err := e.l.Tree(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := e.l.SignCurrent(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.VerifyCheckpoint(cp.Note, e.vkey, e.l.Origin(tr))
	if err != nil || got.Size != ts.Size || !bytes.Equal(got.Root, ts.Root) {
		t.Fatalf("signed checkpoint %+v, %v; want size %d and the tree's root", got, err, ts.Size)
	}
	if _, err := e.l.LatestCheckpoint(ctx, tr); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the history after SignCurrent: %v, want none kept", err)
	}
	more := storetest.Generate(1, 300, storetest.GenOptions{})
	for i := range more {
		more[i].ID += "-more" // not the same events again
	}
	appendEvents(t, st, more)
	e.l.Notify()
	e.sync(t)
	later, err := e.l.CheckpointNow(ctx, tr)
	if err != nil || later.Size <= got.Size {
		t.Fatalf("later checkpoint %+v, %v", later, err)
	}
	p, err := e.l.ConsistencyProof(ctx, tr, got.Size, later.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(got, later); err != nil {
		t.Fatalf("consistency from the unstored checkpoint: %v", err)
	}
}
