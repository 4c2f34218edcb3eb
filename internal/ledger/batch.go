package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/audittrail/audittrail/internal/event"
)

// SeqBatchFinder is an optional TreeStore capability: FindSeqs locates
// many leaves of one tree in one pass. seqs are ascending; the answer holds
// their leaf indexes in the same order, or ErrNotFound naming the first
// missing seq. A TreeStore without it is asked FindSeq once per seq.
type SeqBatchFinder interface {
	FindSeqs(ctx context.Context, t TreeID, seqs []uint64) ([]uint64, error)
}

// findSeqs uses the store's batch search when it has one.
func (l *Ledger) findSeqs(ctx context.Context, t TreeID, seqs []uint64) ([]uint64, error) {
	if f, ok := l.opts.Trees.(SeqBatchFinder); ok {
		return f.FindSeqs(ctx, t, seqs)
	}
	out := make([]uint64, len(seqs))
	for i, s := range seqs {
		idx, err := l.opts.Trees.FindSeq(ctx, t, s)
		if err != nil {
			return nil, err
		}
		out[i] = idx
	}
	return out, nil
}

// LocateEvents is LocateEvent for a batch of events read from the store
// (each with Seq set), such as a stream batch: per tree, one search for
// the leaves and one read of their hashes, instead of one of each per
// event. The answer holds the leaves in the events' order. With
// checkContent, every event is hashed and compared with its leaf: an
// event that no longer matches still gets its (stored) leaf, and the error
// then wraps ErrVerify and names each such event. Without it (the caller
// holds altered copies on purpose, e.g. masked ones) only the Seq counts.
// Any other error leaves the answer nil.
func (l *Ledger) LocateEvents(ctx context.Context, events []event.Event, checkContent bool) ([]Leaf, error) {
	leaves := make([]Leaf, len(events))
	byTree := map[TreeID][]int{}
	var order []TreeID
	for i := range events {
		t := TreeOf(&events[i])
		if _, ok := byTree[t]; !ok {
			order = append(order, t)
		}
		byTree[t] = append(byTree[t], i)
	}
	var tampered []error
	for _, t := range order {
		idx := byTree[t]
		// Stream batches come in Seq order; sort anyway, the search needs it.
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case events[a].Seq < events[b].Seq:
				return -1
			case events[a].Seq > events[b].Seq:
				return 1
			}
			return 0
		})
		seqs := make([]uint64, len(idx))
		for k, i := range idx {
			seqs[k] = events[i].Seq
		}
		found, err := l.findSeqs(ctx, t, seqs)
		if errors.Is(err, ErrNotFound) {
			pos, perr := l.opts.Trees.Position(ctx)
			if last := seqs[len(seqs)-1]; perr == nil && last > pos {
				return nil, fmt.Errorf("%w: seq %d in %s (appended up to %d): %w", ErrNotYetAppended, last, t, pos, err)
			}
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		ids := make([]compact.NodeID, len(found))
		for k, leafIndex := range found {
			ids[k] = compact.NewNodeID(0, leafIndex)
		}
		hs, err := l.opts.Trees.Nodes(ctx, t, ids)
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			leaves[i] = Leaf{Tree: t, Index: found[k], Hash: hs[k]}
			if !checkContent {
				continue
			}
			got, err := EventLeafHash(&events[i])
			if err != nil || !bytes.Equal(got, hs[k]) {
				tampered = append(tampered, fmt.Errorf("%w: stored event %q no longer hashes to leaf %d of %s", ErrVerify, events[i].ID, found[k], t))
			}
		}
	}
	if len(tampered) > 0 {
		return leaves, errors.Join(tampered...)
	}
	return leaves, nil
}

// InclusionProofs proves many leaves of t against the tree of size with
// one read of the nodes they need: the leaves of a batch share most of
// their proof's upper nodes, and each is read once.
func (l *Ledger) InclusionProofs(ctx context.Context, t TreeID, indexes []uint64, size uint64) ([]InclusionProof, error) {
	if err := l.checkSize(ctx, t, size); err != nil {
		return nil, err
	}
	plans := make([]proof.Nodes, len(indexes))
	slot := map[compact.NodeID]int{} // node → its place in ids
	var ids []compact.NodeID
	want := func(id compact.NodeID) {
		if _, ok := slot[id]; !ok {
			slot[id] = len(ids)
			ids = append(ids, id)
		}
	}
	for k, index := range indexes {
		if index >= size {
			return nil, fmt.Errorf("%w: index %d is not below size %d", ErrBadSize, index, size)
		}
		nodes, err := proof.Inclusion(index, size)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSize, err)
		}
		plans[k] = nodes
		for _, id := range nodes.IDs {
			want(id)
		}
		want(compact.NewNodeID(0, index))
	}
	hs, err := l.opts.Trees.Nodes(ctx, t, ids)
	if err != nil {
		return nil, err
	}
	out := make([]InclusionProof, len(indexes))
	for k, index := range indexes {
		nodes := plans[k]
		mine := make([][]byte, len(nodes.IDs))
		for j, id := range nodes.IDs {
			mine[j] = hs[slot[id]]
		}
		path, err := nodes.Rehash(mine, hasher.HashChildren)
		if err != nil {
			return nil, err
		}
		out[k] = InclusionProof{Tree: t, Index: index, Size: size, LeafHash: hs[slot[compact.NewNodeID(0, index)]], Hashes: nonNil(path)}
	}
	return out, nil
}

// SignCurrent signs a checkpoint of t's committed size now and returns it
// without adding it to the stored history: for stream batches that no
// kept checkpoint covers yet, many times a second on a live stream, where
// storing each (two fsyncs, under the commit lock) would slow the appender
// and grow the history by the batch rate. Such a checkpoint is as valid as
// a kept one (same key, origin, size and root of the committed tree); a
// receiver holding one proves a later tree consistent with it by size
// (ConsistencyProof takes any committed size). The periodic checkpoints
// still sign and keep every tree that grew.
func (l *Ledger) SignCurrent(ctx context.Context, t TreeID) (Checkpoint, error) {
	if l.opts.Signer == nil {
		return Checkpoint{}, ErrNoSigner
	}
	ts, err := l.opts.Trees.Tree(ctx, t)
	if err != nil {
		return Checkpoint{}, err
	}
	if ts.Size == 0 {
		return Checkpoint{}, fmt.Errorf("%w: tree %s has no event", ErrNotFound, t)
	}
	return signCheckpoint(l.opts.Signer, l.Origin(t), t, ts.Size, ts.Root, l.opts.Now())
}
