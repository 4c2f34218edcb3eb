package ledger_test

import (
	"context"
	"encoding/binary"
	"math/bits"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// countingTrees counts the node hashes read through a TreeStore.
type countingTrees struct {
	ledger.TreeStore
	calls, nodes int
}

func (c *countingTrees) Nodes(ctx context.Context, t ledger.TreeID, ids []compact.NodeID) ([][]byte, error) {
	c.calls++
	c.nodes += len(ids)
	return c.TreeStore.Nodes(ctx, t, ids)
}

// growTree appends n synthetic leaves to tree t of s in commits of 4096,
// without keeping the nodes in memory.
func growTree(tb testing.TB, s ledger.TreeStore, t ledger.TreeID, n int) {
	tb.Helper()
	f := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := f.NewEmptyRange(0)
	var seq uint64
	for done := 0; done < n; {
		k := min(4096, n-done)
		ta := ledger.TreeAppend{Tree: t, OldSize: r.End()}
		var b [8]byte
		for range k {
			seq++
			binary.BigEndian.PutUint64(b[:], seq)
			_ = r.Append(rfc6962.DefaultHasher.HashLeaf(b[:]), func(id compact.NodeID, h []byte) {
				ta.Nodes = append(ta.Nodes, ledger.Node{ID: id, Hash: h})
			})
			ta.Seqs = append(ta.Seqs, seq)
		}
		ta.NewSize = r.End()
		ta.Root, _ = r.GetRootHash(nil)
		if err := s.Commit(context.Background(), ledger.Commit{After: seq - uint64(k), Position: seq, Trees: []ledger.TreeAppend{ta}}); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
}

// Proofs read O(log n) node hashes, in one TreeStore call, however large
// the tree: what keeps them cheap at 10M events.
func TestProofsReadLogNodes(t *testing.T) {
	fs, err := ledger.OpenFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	const n = 1<<17 + 12345
	growTree(t, fs, tr, n)
	ct := &countingTrees{TreeStore: fs}
	signer, vkey, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), "scale")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(ledger.Options{Store: storetest.NewMemStore(), Trees: ct, Signer: signer, VerifierKey: vkey})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := l.CheckpointNow(context.Background(), tr)
	if err != nil {
		t.Fatal(err)
	}
	logN := bits.Len64(n)
	for _, idx := range []uint64{0, 1, n / 3, n - 2, n - 1} {
		ct.calls, ct.nodes = 0, 0
		p, err := l.InclusionProof(context.Background(), tr, idx, n)
		if err != nil {
			t.Fatal(err)
		}
		// The path (≤ log n) plus, in a tree that is not perfect, the
		// perfect subtrees that make up its ephemeral right-border node
		// (≤ log n more), plus the leaf itself.
		if ct.calls != 1 || ct.nodes > 2*logN+1 {
			t.Fatalf("inclusion proof of leaf %d in %d: %d calls, %d nodes read; want 1 call, at most %d", idx, n, ct.calls, ct.nodes, 2*logN+1)
		}
		if err := p.Verify(cp); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []uint64{1, 1000, n / 2, n - 1} {
		ct.calls, ct.nodes = 0, 0
		if _, err := l.ConsistencyProof(context.Background(), tr, from, n); err != nil {
			t.Fatal(err)
		}
		if ct.calls != 1 || ct.nodes > 2*logN {
			t.Fatalf("consistency proof %d→%d: %d calls, %d nodes; want 1 call, at most %d", from, n, ct.calls, ct.nodes, 2*logN)
		}
	}
}

// BenchmarkInclusionProof1M: one inclusion proof from a FileStore tree of
// 2^20 leaves (read the path, rehash), warm page cache.
func BenchmarkInclusionProof1M(b *testing.B) {
	fs, err := ledger.OpenFileStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	const n = 1 << 20
	growTree(b, fs, tr, n)
	l, err := ledger.New(ledger.Options{Store: storetest.NewMemStore(), Trees: fs})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		if _, err := l.InclusionProof(context.Background(), tr, (i*7919)%n, n); err != nil {
			b.Fatal(err)
		}
	}
}
