package ledger

import (
	"context"
	"math/bits"

	"github.com/transparency-dev/merkle/compact"
)

// TreeState is a tree's committed size and root hash.
type TreeState struct {
	Tree TreeID
	Size uint64
	Root []byte
}

// State is everything committed: the store position the trees cover and
// every tree's size.
type State struct {
	// Position is the store Seq up to which every event (still stored when
	// it was read) is a leaf of its tree.
	Position uint64
	Trees    []TreeState
}

// Node is one complete subtree's hash.
type Node struct {
	ID   compact.NodeID
	Hash []byte
}

// TreeAppend is what one commit adds to one tree.
type TreeAppend struct {
	Tree TreeID
	// OldSize must equal the committed size; NewSize = OldSize + len(Seqs).
	OldSize, NewSize uint64
	// Seqs are the store Seq of leaves OldSize..NewSize-1, ascending.
	Seqs []uint64
	// Nodes are every complete subtree the new leaves complete, in the
	// order compact.Range.Append reports them (each leaf, then the parents
	// it completes): post-order.
	Nodes []Node
	// Root is the tree's root hash at NewSize.
	Root []byte
}

// Commit is one atomic step of the appender: trees grow and the position
// moves, together or not at all.
type Commit struct {
	// After must equal the committed Position; Position is the new one.
	After, Position uint64
	Trees           []TreeAppend
}

// StoredCheckpoint is a signed checkpoint as kept: its tree size and the
// signed note.
type StoredCheckpoint struct {
	Size uint64
	Note []byte
}

// TreeStore persists the trees' hashes, the appender's position and the
// signed checkpoints. Implementations are safe for concurrent use; every
// one passes ledgertest.Run. Reads see only committed data.
type TreeStore interface {
	// Load returns the committed position and every tree.
	Load(ctx context.Context) (State, error)
	// Position returns the committed position alone (cheap).
	Position(ctx context.Context) (uint64, error)
	// Tree returns one tree's committed state; an unknown tree has size 0.
	Tree(ctx context.Context, t TreeID) (TreeState, error)
	// Commit applies c durably and atomically. It returns ErrConflict when
	// c.After or an OldSize does not match what is committed.
	Commit(ctx context.Context, c Commit) error
	// Nodes returns the hashes of complete subtrees that lie within the
	// committed tree (ErrBadSize otherwise), in the order asked.
	Nodes(ctx context.Context, t TreeID, ids []compact.NodeID) ([][]byte, error)
	// FindSeq returns the leaf index of the event with store Seq seq, or
	// ErrNotFound.
	FindSeq(ctx context.Context, t TreeID, seq uint64) (uint64, error)
	// PutCheckpoint keeps a signed checkpoint of size. A second one of the
	// same size is ignored (the first stays); one smaller than the latest
	// gets ErrConflict, so each tree's history grows in size order.
	PutCheckpoint(ctx context.Context, t TreeID, cp StoredCheckpoint) error
	// Checkpoint returns the checkpoint of exactly size, or ErrNotFound.
	Checkpoint(ctx context.Context, t TreeID, size uint64) (StoredCheckpoint, error)
	// LatestCheckpoint returns the largest one, or ErrNotFound.
	LatestCheckpoint(ctx context.Context, t TreeID) (StoredCheckpoint, error)
	// Checkpoints returns up to limit checkpoints with Size >= from, in
	// ascending size.
	Checkpoints(ctx context.Context, t TreeID, from uint64, limit int) ([]StoredCheckpoint, error)
	Close() error
}

// nodeCount is how many complete subtrees a tree of size leaves has:
// every leaf and every perfect inner node, 2n - popcount(n).
func nodeCount(size uint64) uint64 {
	return 2*size - uint64(bits.OnesCount64(size))
}

// postOrderPos is the position of a complete subtree in the post-order of
// a growing tree, the order in which the appender completes nodes: all the
// nodes of the subtrees left of it, then its own subtree, whose root comes
// last. Storing nodes at these positions makes the node file append-only.
func postOrderPos(id compact.NodeID) uint64 {
	left := id.Index << id.Level // leaves left of the subtree
	return nodeCount(left) + (uint64(1)<<(id.Level+1) - 2)
}

// nodeWithin says whether a complete subtree lies inside a tree of size.
func nodeWithin(id compact.NodeID, size uint64) bool {
	if id.Level >= 64 {
		return false
	}
	_, end := id.Coverage()
	return end <= size && end > id.Index<<id.Level
}
