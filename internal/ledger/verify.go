package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// InclusionProof shows that the leaf at Index is in the tree of Size.
type InclusionProof struct {
	Tree     TreeID   `json:"tree"`
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leafHash"`
	Hashes   [][]byte `json:"hashes"`
}

// ConsistencyProof shows that the tree of size From is a prefix of the
// tree of size To: nothing was removed, altered or reordered in between.
type ConsistencyProof struct {
	Tree   TreeID   `json:"tree"`
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// VerifyInclusion checks an RFC 6962 inclusion proof of leafHash at index
// in a tree of size with the given root.
func VerifyInclusion(leafHash []byte, index, size uint64, hashes [][]byte, root []byte) error {
	if err := proof.VerifyInclusion(hasher, index, size, leafHash, hashes, root); err != nil {
		return fmt.Errorf("%w: inclusion of leaf %d in tree of size %d: %v", ErrVerify, index, size, err)
	}
	return nil
}

// VerifyConsistency checks an RFC 6962 consistency proof between a tree of
// size1 with root1 and one of size2 with root2. A tree that shrank (rolled
// back) or was rewritten fails.
func VerifyConsistency(size1, size2 uint64, hashes [][]byte, root1, root2 []byte) error {
	if size1 > size2 {
		return fmt.Errorf("%w: tree shrank from size %d to %d", ErrVerify, size1, size2)
	}
	if err := proof.VerifyConsistency(hasher, size1, size2, hashes, root1, root2); err != nil {
		return fmt.Errorf("%w: consistency of sizes %d and %d: %v", ErrVerify, size1, size2, err)
	}
	return nil
}

// Verify checks the proof against a checkpoint already verified with
// VerifyCheckpoint: same tree, same size, and the path leads to its root.
func (p InclusionProof) Verify(cp Checkpoint) error {
	if p.Tree != cp.Tree {
		return fmt.Errorf("%w: proof for %s, checkpoint of %s", ErrVerify, p.Tree, cp.Tree)
	}
	if p.Size != cp.Size {
		return fmt.Errorf("%w: proof for size %d, checkpoint of size %d", ErrVerify, p.Size, cp.Size)
	}
	return VerifyInclusion(p.LeafHash, p.Index, p.Size, p.Hashes, cp.Root)
}

// VerifyEvent recomputes the leaf from the event's wire JSON (an NDJSON
// export line) instead of trusting p.LeafHash, then verifies the proof.
func (p InclusionProof) VerifyEvent(wire []byte, cp Checkpoint) error {
	leaf, err := LeafHashFromJSON(wire)
	if err != nil {
		return fmt.Errorf("%w: event: %v", ErrVerify, err)
	}
	if !bytes.Equal(leaf, p.LeafHash) {
		return fmt.Errorf("%w: the event does not hash to leaf %d of %s: it was altered", ErrVerify, p.Index, p.Tree)
	}
	return p.Verify(cp)
}

// Verify checks the proof between two verified checkpoints of one tree.
func (p ConsistencyProof) Verify(older, newer Checkpoint) error {
	if p.Tree != older.Tree || p.Tree != newer.Tree {
		return fmt.Errorf("%w: proof for %s, checkpoints of %s and %s", ErrVerify, p.Tree, older.Tree, newer.Tree)
	}
	if p.From != older.Size || p.To != newer.Size {
		return fmt.Errorf("%w: proof for sizes %d→%d, checkpoints of sizes %d→%d", ErrVerify, p.From, p.To, older.Size, newer.Size)
	}
	return VerifyConsistency(p.From, p.To, p.Hashes, older.Root, newer.Root)
}

// Event id of a wire JSON line, for messages naming the event that failed.
func EventIDOf(wire []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(wire, &v)
	return v.ID
}
