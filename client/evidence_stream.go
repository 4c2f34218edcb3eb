package client

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// StreamEvidence is the "evidence" object a stream batch carries beside its
// events (the webhook body's "audits"): Leaves[i] proves audits[i], in the
// tree its Tree names, against the checkpoint of that tree in Checkpoints.
type StreamEvidence struct {
	// Checkpoints are signed notes, one per tree the batch touches.
	Checkpoints []string `json:"checkpoints"`
	// Leaves are inclusion proofs, one per event, in the batch's order.
	Leaves []InclusionProof `json:"leaves"`
	// Filtered: the connector filters events, so leaf indexes may skip.
	Filtered bool `json:"filtered,omitempty"`
	// Masked: personal data was masked after the leaves were computed, so
	// an event's content cannot be checked, only its place in the trail.
	Masked bool `json:"masked,omitempty"`
}

// UnmarshalJSON decodes the wire form, in which the proofs' hashes may be
// shared: "nodes" holds each distinct hash once and a leaf's "path" the
// positions of its proof's hashes there. They are put back in place, so
// Leaves[i].Hashes always holds the proof.
func (ev *StreamEvidence) UnmarshalJSON(b []byte) error {
	var wire struct {
		Checkpoints []string `json:"checkpoints"`
		Leaves      []struct {
			InclusionProof
			Path []int `json:"path"`
		} `json:"leaves"`
		Nodes    [][]byte `json:"nodes"`
		Filtered bool     `json:"filtered"`
		Masked   bool     `json:"masked"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return err
	}
	*ev = StreamEvidence{Checkpoints: wire.Checkpoints, Filtered: wire.Filtered, Masked: wire.Masked, Leaves: make([]InclusionProof, len(wire.Leaves))}
	for i, l := range wire.Leaves {
		p := l.InclusionProof
		if len(p.Hashes) == 0 && len(l.Path) > 0 {
			p.Hashes = make([][]byte, len(l.Path))
			for j, k := range l.Path {
				if k < 0 || k >= len(wire.Nodes) {
					return fmt.Errorf("evidence: proof %d names shared hash %d of %d", i, k, len(wire.Nodes))
				}
				p.Hashes[j] = wire.Nodes[k]
			}
		}
		ev.Leaves[i] = p
	}
	return nil
}

// EvidenceProblem is one thing a StreamVerifier found wrong.
type EvidenceProblem struct {
	ID     string // the event's id, when known
	Tree   string
	Index  int64 // the leaf index, -1 when unknown
	Reason string
}

func (p EvidenceProblem) String() string {
	return fmt.Sprintf("event %q (tree %s, leaf %d): %s", p.ID, p.Tree, p.Index, p.Reason)
}

// StreamVerifier checks the batches one connector delivers, in delivery
// order: every event is proven in a signed checkpoint and unaltered, no
// leaf comes twice or out of order, none is skipped (unless the connector
// filters), and no checkpoint goes back. Redelivery of an already verified
// batch (streams are at least once) is not a problem. Not safe for
// concurrent use; a receiver verifies one connector's batches in order.
type StreamVerifier struct {
	// VerifierKey is the deployment's checkpoint key, obtained out of band.
	VerifierKey string

	trees map[string]*treeProgress
}

type treeProgress struct {
	started bool
	last    uint64            // highest verified leaf index
	size    uint64            // largest checkpoint seen
	root    []byte            // its root
	seen    map[uint64]string // leaf index → leaf hash, for redeliveries
}

// seenWindow bounds how many verified leaves a tree remembers to recognise
// a redelivery: only the batches since the last acknowledged one come again.
const seenWindow = 100_000

// VerifyWebhookBody checks one webhook body {"audits":[…],"evidence":{…}}.
func (v *StreamVerifier) VerifyWebhookBody(body []byte) ([]EvidenceProblem, error) {
	var b struct {
		Audits   []json.RawMessage `json:"audits"`
		Evidence *StreamEvidence   `json:"evidence"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("%w: webhook body: %w", ErrInvalidResponse, err)
	}
	return v.VerifyBatch(b.Audits, b.Evidence)
}

// VerifyBatch checks one batch: its events' wire JSON and its evidence.
// It returns the problems found (none: the batch is proven); an error
// means the batch could not be checked at all.
func (v *StreamVerifier) VerifyBatch(audits []json.RawMessage, ev *StreamEvidence) ([]EvidenceProblem, error) {
	if ev == nil {
		return nil, errNoEvidence
	}
	if v.trees == nil {
		v.trees = map[string]*treeProgress{}
	}
	var problems []EvidenceProblem
	add := func(id, tree string, index int64, format string, a ...any) {
		problems = append(problems, EvidenceProblem{ID: id, Tree: tree, Index: index, Reason: fmt.Sprintf(format, a...)})
	}
	cps := map[string]Checkpoint{}
	rolledBack := map[string]bool{}
	for _, note := range ev.Checkpoints {
		cp, err := VerifyCheckpoint(note, v.VerifierKey)
		if err != nil {
			add("", "", -1, "checkpoint refused: %v", err)
			continue
		}
		tp := v.tree(cp.Tree)
		switch {
		case cp.Size < tp.size:
			add("", cp.Tree, -1, "checkpoint of size %d after one of size %d: the log was rolled back", cp.Size, tp.size)
			rolledBack[cp.Tree] = true
		case cp.Size == tp.size && tp.root != nil && !bytes.Equal(cp.Root, tp.root):
			add("", cp.Tree, -1, "two different roots signed for size %d: the log was rewritten", cp.Size)
		}
		cps[cp.Tree] = cp
	}
	if len(ev.Leaves) != len(audits) {
		add("", "", -1, "evidence proves %d events but the batch holds %d: an event was added or removed", len(ev.Leaves), len(audits))
	}
	// Leaves verified in this batch, committed to the trees' progress only
	// once the whole batch is checked.
	type accepted struct {
		tree  string
		index uint64
		hash  string
	}
	var ok []accepted
	batchLast := map[string]uint64{}
	for i, raw := range audits {
		var head struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(raw, &head)
		if i >= len(ev.Leaves) {
			add(head.ID, "", -1, "no proof for this event")
			continue
		}
		p := ev.Leaves[i]
		idx := int64(p.Index)
		if p.ID != "" && p.ID != head.ID {
			add(head.ID, p.Tree, idx, "the proof is for event %q: events were reordered or replaced", p.ID)
			continue
		}
		if !ev.Masked {
			leaf, err := LeafHash(raw)
			if err != nil {
				add(head.ID, p.Tree, idx, "not canonical JSON: %v", err)
				continue
			}
			if !bytes.Equal(leaf, p.LeafHash) {
				add(head.ID, p.Tree, idx, "the event differs from the one the ledger holds: altered")
				continue
			}
		}
		cp, found := cps[p.Tree]
		if !found {
			add(head.ID, p.Tree, idx, "no verified checkpoint of its tree")
			continue
		}
		if err := p.Verify(cp); err != nil {
			add(head.ID, p.Tree, idx, "inclusion proof refused: %v", err)
			continue
		}
		tp := v.tree(p.Tree)
		prev, inBatch := batchLast[p.Tree]
		if inBatch && p.Index <= prev {
			add(head.ID, p.Tree, idx, "leaf %d after leaf %d in the same batch: repeated or reordered", p.Index, prev)
			continue
		}
		batchLast[p.Tree] = p.Index
		if tp.started && p.Index <= tp.last {
			if h, seen := tp.seen[p.Index]; seen && h == string(p.LeafHash) {
				// A redelivery of a verified event, unless it comes with an
				// older checkpoint than one seen since: the engine retries a
				// batch with its own evidence, before any later batch.
				if rolledBack[p.Tree] {
					add(head.ID, p.Tree, idx, "delivered before, now again with an older checkpoint: an old batch replayed")
				}
				continue
			}
			add(head.ID, p.Tree, idx, "leaf %d was already delivered or skipped (last verified %d): repeated or out of order", p.Index, tp.last)
			continue
		}
		// The leaf before this one: the previous of this batch, else the
		// last verified before it.
		base, started := tp.last, tp.started
		if inBatch && (!started || prev > base) {
			base, started = prev, true
		}
		if started && !ev.Filtered && p.Index > base+1 {
			if p.Index == base+2 {
				add(head.ID, p.Tree, idx, "leaf %d before it was never delivered: missing event", base+1)
			} else {
				add(head.ID, p.Tree, idx, "leaves %d to %d before it were never delivered: missing events", base+1, p.Index-1)
			}
		}
		ok = append(ok, accepted{p.Tree, p.Index, string(p.LeafHash)})
	}
	for _, a := range ok {
		tp := v.tree(a.tree)
		if !tp.started || a.index > tp.last {
			tp.started, tp.last = true, a.index
		}
		tp.seen[a.index] = a.hash
		delete(tp.seen, a.index-seenWindow)
	}
	for tree, cp := range cps {
		if tp := v.tree(tree); cp.Size > tp.size {
			tp.size, tp.root = cp.Size, cp.Root
		}
	}
	return problems, nil
}

func (v *StreamVerifier) tree(name string) *treeProgress {
	tp := v.trees[name]
	if tp == nil {
		tp = &treeProgress{seen: map[uint64]string{}}
		v.trees[name] = tp
	}
	return tp
}
