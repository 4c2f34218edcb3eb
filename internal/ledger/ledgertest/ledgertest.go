// Package ledgertest is the conformance suite every ledger.TreeStore
// passes, and an in-memory reference TreeStore.
package ledgertest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/audittrail/audittrail/internal/ledger"
)

// Harness is one fresh, empty store. Reopen, when set, closes h.Store,
// opens the same data again, sets h.Store to it and returns it.
type Harness struct {
	Store  ledger.TreeStore
	Reopen func(t *testing.T) ledger.TreeStore
}

// Run runs every case, each against a fresh store from open.
func Run(t *testing.T, open func(t *testing.T) *Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h *Harness)
	}{
		{"Empty", testEmpty},
		{"CommitAndRead", testCommitAndRead},
		{"Conflict", testConflict},
		{"Bounds", testBounds},
		{"Isolation", testIsolation},
		{"Checkpoints", testCheckpoints},
		{"Durable", testDurable},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := open(t)
			t.Cleanup(func() { h.Store.Close() })
			c.fn(t, h)
		})
	}
}

// Builder produces valid commits and remembers every node hash, so reads
// can be checked against it. It is independent of the ledger's appender.
type Builder struct {
	Position uint64
	trees    map[ledger.TreeID]*refTree
	seq      uint64
}

type refTree struct {
	rng   *compact.Range
	nodes map[compact.NodeID][]byte
	seqs  []uint64
}

var factory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

func NewBuilder() *Builder { return &Builder{trees: map[ledger.TreeID]*refTree{}} }

func (b *Builder) tree(t ledger.TreeID) *refTree {
	rt := b.trees[t]
	if rt == nil {
		rt = &refTree{rng: factory.NewEmptyRange(0), nodes: map[compact.NodeID][]byte{}}
		b.trees[t] = rt
	}
	return rt
}

// Next builds a commit of n leaves per tree given, with store Seqs that
// interleave across trees and skip some numbers (other companies' events).
// The builder advances as if the commit succeeded; Clone first to try a
// commit that should fail.
func (b *Builder) Next(n map[ledger.TreeID]int) ledger.Commit {
	c := ledger.Commit{After: b.Position}
	for t, k := range n {
		rt := b.tree(t)
		ta := ledger.TreeAppend{Tree: t, OldSize: rt.rng.End()}
		for range k {
			b.seq += 1 + uint64(b.seq%3)
			leaf := rfc6962.DefaultHasher.HashLeaf(fmt.Appendf(nil, "leaf %s %d", t, b.seq))
			_ = rt.rng.Append(leaf, func(id compact.NodeID, h []byte) {
				ta.Nodes = append(ta.Nodes, ledger.Node{ID: id, Hash: h})
				rt.nodes[id] = h
			})
			ta.Seqs = append(ta.Seqs, b.seq)
			rt.seqs = append(rt.seqs, b.seq)
		}
		ta.NewSize = rt.rng.End()
		ta.Root, _ = rt.rng.GetRootHash(nil)
		c.Trees = append(c.Trees, ta)
	}
	b.seq += 5
	c.Position = b.seq
	b.Position = c.Position
	return c
}

// Clone copies the builder's state.
func (b *Builder) Clone() *Builder {
	c := &Builder{Position: b.Position, seq: b.seq, trees: map[ledger.TreeID]*refTree{}}
	for t, rt := range b.trees {
		n := &refTree{nodes: map[compact.NodeID][]byte{}, seqs: append([]uint64(nil), rt.seqs...)}
		n.rng, _ = factory.NewRange(rt.rng.Begin(), rt.rng.End(), append([][]byte(nil), rt.rng.Hashes()...))
		for id, h := range rt.nodes {
			n.nodes[id] = h
		}
		c.trees[t] = n
	}
	return c
}

// Check compares everything the store serves with the builder.
func (b *Builder) Check(t *testing.T, s ledger.TreeStore) {
	t.Helper()
	ctx := context.Background()
	pos, err := s.Position(ctx)
	if err != nil || pos != b.Position {
		t.Fatalf("Position = %d, %v; want %d", pos, err, b.Position)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if st.Position != b.Position {
		t.Fatalf("Load().Position = %d, want %d", st.Position, b.Position)
	}
	nonEmpty := 0
	for _, rt := range b.trees {
		if rt.rng.End() > 0 {
			nonEmpty++
		}
	}
	if len(st.Trees) != nonEmpty {
		t.Fatalf("Load lists %d trees, want %d", len(st.Trees), nonEmpty)
	}
	for _, ts := range st.Trees {
		rt := b.trees[ts.Tree]
		if rt == nil {
			t.Fatalf("Load lists unknown tree %s", ts.Tree)
		}
		root, _ := rt.rng.GetRootHash(nil)
		if ts.Size != rt.rng.End() || !bytes.Equal(ts.Root, root) {
			t.Fatalf("Load: tree %s size %d root %x, want %d %x", ts.Tree, ts.Size, ts.Root, rt.rng.End(), root)
		}
	}
	rnd := rand.New(rand.NewPCG(b.seq, 7))
	for tid, rt := range b.trees {
		size := rt.rng.End()
		ts, err := s.Tree(ctx, tid)
		root, _ := rt.rng.GetRootHash(nil)
		if err != nil || ts.Size != size || !bytes.Equal(ts.Root, root) {
			t.Fatalf("Tree(%s) = %d %x, %v; want %d %x", tid, ts.Size, ts.Root, err, size, root)
		}
		// Every node when small, a sample when large, asked in one call.
		var ids []compact.NodeID
		for id := range rt.nodes {
			if len(rt.nodes) <= 64 || rnd.IntN(len(rt.nodes)) < 64 {
				ids = append(ids, id)
			}
		}
		got, err := s.Nodes(ctx, tid, ids)
		if err != nil {
			t.Fatalf("Nodes(%s): %v", tid, err)
		}
		for i, id := range ids {
			if !bytes.Equal(got[i], rt.nodes[id]) {
				t.Fatalf("Nodes(%s) node %d/%d = %x, want %x", tid, id.Level, id.Index, got[i], rt.nodes[id])
			}
		}
		for i, seq := range rt.seqs {
			if len(rt.seqs) > 64 && rnd.IntN(len(rt.seqs)) >= 64 && i != 0 && i != len(rt.seqs)-1 {
				continue
			}
			idx, err := s.FindSeq(ctx, tid, seq)
			if err != nil || idx != uint64(i) {
				t.Fatalf("FindSeq(%s, %d) = %d, %v; want %d", tid, seq, idx, err, i)
			}
			// The numbers between leaves' Seqs are other trees' events.
			if _, err := s.FindSeq(ctx, tid, seq+1); !errors.Is(err, ledger.ErrNotFound) && (i+1 >= len(rt.seqs) || rt.seqs[i+1] != seq+1) {
				t.Fatalf("FindSeq(%s, %d) of no leaf: %v, want ErrNotFound", tid, seq+1, err)
			}
		}
	}
}

var (
	tA = ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	tB = ledger.TreeID{CompanyID: "c1"}
	tC = ledger.TreeID{CompanyID: "c2", ProjectID: "P1"}
)

func mustCommit(t *testing.T, s ledger.TreeStore, c ledger.Commit) {
	t.Helper()
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatalf("Commit(after %d → %d): %v", c.After, c.Position, err)
	}
}

func testEmpty(t *testing.T, h *Harness) {
	ctx := context.Background()
	NewBuilder().Check(t, h.Store)
	if _, err := h.Store.FindSeq(ctx, tA, 1); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("FindSeq on an empty store: %v, want ErrNotFound", err)
	}
	if _, err := h.Store.Nodes(ctx, tA, []compact.NodeID{compact.NewNodeID(0, 0)}); !errors.Is(err, ledger.ErrBadSize) {
		t.Fatalf("Nodes on an empty tree: %v, want ErrBadSize", err)
	}
	if _, err := h.Store.LatestCheckpoint(ctx, tA); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("LatestCheckpoint on an empty tree: %v, want ErrNotFound", err)
	}
}

func testCommitAndRead(t *testing.T, h *Harness) {
	b := NewBuilder()
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		n := map[ledger.TreeID]int{tA: 1 + rnd.IntN(20)}
		if i%3 == 0 {
			n[tB] = 1 + rnd.IntN(5)
		}
		mustCommit(t, h.Store, b.Next(n))
		if i%8 == 0 {
			b.Check(t, h.Store)
		}
	}
	// One large commit.
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tA: 1500, tC: 3}))
	b.Check(t, h.Store)
}

func testConflict(t *testing.T, h *Harness) {
	ctx := context.Background()
	b := NewBuilder()
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tA: 3, tB: 2}))
	// A commit that does not start at the committed position.
	stale := b.Clone()
	stale.Position--
	if err := h.Store.Commit(ctx, stale.Next(map[ledger.TreeID]int{tA: 1})); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("commit after a stale position: %v, want ErrConflict", err)
	}
	b.Check(t, h.Store)
	// A commit where one tree is right and one starts at the wrong size:
	// nothing of it may land.
	other := b.Clone()
	c := other.Next(map[ledger.TreeID]int{tC: 4, tB: 1})
	for i := range c.Trees {
		if c.Trees[i].Tree == tB {
			// Tree B appended from size 3, but 2 is committed.
			wrong := NewBuilder()
			wrong.Next(map[ledger.TreeID]int{tB: 3})
			c.Trees[i] = wrong.Next(map[ledger.TreeID]int{tB: 1}).Trees[0]
		}
	}
	// The wrong tree goes last, so a store applying trees one by one has
	// already applied the right one when it meets the conflict.
	slices.SortStableFunc(c.Trees, func(x, y ledger.TreeAppend) int {
		return cmp.Compare(boolInt(x.Tree == tB), boolInt(y.Tree == tB))
	})
	if err := h.Store.Commit(ctx, c); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("commit at a wrong tree size: %v, want ErrConflict", err)
	}
	b.Check(t, h.Store)
	// The store still accepts the right next commit.
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tC: 2, tA: 1}))
	b.Check(t, h.Store)
}

func testBounds(t *testing.T, h *Harness) {
	ctx := context.Background()
	b := NewBuilder()
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tA: 6}))
	for _, id := range []compact.NodeID{
		compact.NewNodeID(0, 6),  // the next leaf
		compact.NewNodeID(2, 1),  // covers leaves 4..7, only 4..5 exist
		compact.NewNodeID(3, 0),  // covers 0..7
		compact.NewNodeID(0, 99), // far out
	} {
		if _, err := h.Store.Nodes(ctx, tA, []compact.NodeID{compact.NewNodeID(0, 0), id}); !errors.Is(err, ledger.ErrBadSize) {
			t.Fatalf("Nodes(%d/%d) of a 6-leaf tree: %v, want ErrBadSize", id.Level, id.Index, err)
		}
	}
}

func testIsolation(t *testing.T, h *Harness) {
	b := NewBuilder()
	// The same project id in two companies, and a company's own tree.
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tA: 5, tC: 7, tB: 1}))
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tC: 2}))
	b.Check(t, h.Store)
}

// note fakes a signed note; TreeStores keep notes as opaque bytes.
func note(size uint64, v string) []byte {
	sum := sha256.Sum256([]byte(v))
	return fmt.Appendf(nil, "origin\n%d\n%x\n\n— sig %s\n", size, sum[:4], v)
}

func testCheckpoints(t *testing.T, h *Harness) {
	ctx := context.Background()
	s := h.Store
	b := NewBuilder()
	mustCommit(t, s, b.Next(map[ledger.TreeID]int{tA: 10, tC: 10}))
	if err := s.PutCheckpoint(ctx, tA, ledger.StoredCheckpoint{Size: 11, Note: note(11, "x")}); !errors.Is(err, ledger.ErrBadSize) {
		t.Fatalf("checkpoint beyond the tree: %v, want ErrBadSize", err)
	}
	for _, size := range []uint64{2, 5, 9} {
		if err := s.PutCheckpoint(ctx, tA, ledger.StoredCheckpoint{Size: size, Note: note(size, "first")}); err != nil {
			t.Fatalf("PutCheckpoint(%d): %v", size, err)
		}
	}
	// Same size again: the first stays.
	if err := s.PutCheckpoint(ctx, tA, ledger.StoredCheckpoint{Size: 9, Note: note(9, "second")}); err != nil {
		t.Fatalf("PutCheckpoint of an existing size: %v, want nil", err)
	}
	// Smaller than the latest: refused.
	if err := s.PutCheckpoint(ctx, tA, ledger.StoredCheckpoint{Size: 7, Note: note(7, "late")}); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("PutCheckpoint below the latest: %v, want ErrConflict", err)
	}
	if err := s.PutCheckpoint(ctx, tC, ledger.StoredCheckpoint{Size: 3, Note: note(3, "other tree")}); err != nil {
		t.Fatal(err)
	}
	check := func(s ledger.TreeStore) {
		t.Helper()
		cp, err := s.LatestCheckpoint(ctx, tA)
		if err != nil || cp.Size != 9 || !bytes.Equal(cp.Note, note(9, "first")) {
			t.Fatalf("LatestCheckpoint = %d %q, %v; want size 9, the first note", cp.Size, cp.Note, err)
		}
		for _, size := range []uint64{2, 5, 9} {
			cp, err := s.Checkpoint(ctx, tA, size)
			if err != nil || cp.Size != size || !bytes.Equal(cp.Note, note(size, "first")) {
				t.Fatalf("Checkpoint(%d) = %d %q, %v", size, cp.Size, cp.Note, err)
			}
		}
		for _, size := range []uint64{1, 3, 7, 10} {
			if _, err := s.Checkpoint(ctx, tA, size); !errors.Is(err, ledger.ErrNotFound) {
				t.Fatalf("Checkpoint(%d) never stored: %v, want ErrNotFound", size, err)
			}
		}
		list, err := s.Checkpoints(ctx, tA, 3, 10)
		if err != nil || len(list) != 2 || list[0].Size != 5 || list[1].Size != 9 {
			t.Fatalf("Checkpoints(from 3) = %+v, %v; want sizes 5, 9", list, err)
		}
		list, err = s.Checkpoints(ctx, tA, 0, 1)
		if err != nil || len(list) != 1 || list[0].Size != 2 {
			t.Fatalf("Checkpoints(from 0, limit 1) = %+v, %v; want size 2", list, err)
		}
		cp, err = s.LatestCheckpoint(ctx, tC)
		if err != nil || cp.Size != 3 {
			t.Fatalf("LatestCheckpoint(other tree) = %d, %v; want 3", cp.Size, err)
		}
		if _, err := s.LatestCheckpoint(ctx, tB); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("LatestCheckpoint of a tree without one: %v, want ErrNotFound", err)
		}
	}
	check(s)
	if h.Reopen != nil {
		check(h.Reopen(t))
	}
}

func testDurable(t *testing.T, h *Harness) {
	if h.Reopen == nil {
		t.Skip("store has no Reopen")
	}
	b := NewBuilder()
	for range 5 {
		mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tA: 7, tB: 3}))
	}
	s := h.Reopen(t)
	b.Check(t, s)
	// And it keeps appending where it stopped.
	mustCommit(t, s, b.Next(map[ledger.TreeID]int{tA: 9, tC: 1}))
	b.Check(t, s)
}

func testClosed(t *testing.T, h *Harness) {
	ctx := context.Background()
	b := NewBuilder()
	mustCommit(t, h.Store, b.Next(map[ledger.TreeID]int{tA: 1}))
	if err := h.Store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := h.Store.Load(ctx); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("Load after Close: %v, want ErrClosed", err)
	}
	if err := h.Store.Commit(ctx, b.Next(map[ledger.TreeID]int{tA: 1})); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("Commit after Close: %v, want ErrClosed", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
