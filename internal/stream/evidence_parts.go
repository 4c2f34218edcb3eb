package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// EvidencePart is the evidence of a run of consecutive events of a batch,
// in the same wire form as the whole (docs/tamper-evidence.md), so a
// receiver verifies each part as it would verify a webhook batch.
type EvidencePart struct {
	// Events is how many events, after those of the parts before, this
	// part proves.
	Events int
	JSON   json.RawMessage
}

// ErrEvidenceShape: a batch's evidence does not prove one event per event.
var ErrEvidenceShape = errors.New("stream: evidence does not match the batch")

// evidenceWire is the wire form of a batch's evidence, decoded only as far
// as splitting needs: each leaf stays as sent but for its path.
type evidenceWire struct {
	Checkpoints []string                     `json:"checkpoints"`
	Leaves      []map[string]json.RawMessage `json:"leaves"`
	Nodes       []json.RawMessage            `json:"nodes,omitempty"`
	Filtered    bool                         `json:"filtered,omitempty"`
	Masked      bool                         `json:"masked,omitempty"`
}

// EvidenceParts splits raw, the evidence of a batch of n events, into
// parts of at most maxBytes each, for destinations that carry it as
// separate records with a size limit (a syslog message, a Splunk event, a
// Sumo Logic line). Each part keeps only the checkpoints of the trees its
// events are in and the shared hashes its proofs use. Evidence that fits
// is one part, unchanged. A single event whose proof alone exceeds
// maxBytes is a part of its own, over the limit: there is no smaller
// piece. Nil evidence gives no parts.
func EvidenceParts(raw json.RawMessage, n, maxBytes int) ([]EvidencePart, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if len(raw) <= maxBytes {
		// Counting the leaves without decoding them all would need a
		// scanner; the common small batch pays one decode of the header.
		var head struct {
			Leaves []json.RawMessage `json:"leaves"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvidenceShape, err)
		}
		if len(head.Leaves) != n {
			return nil, fmt.Errorf("%w: %d proofs for %d events", ErrEvidenceShape, len(head.Leaves), n)
		}
		return []EvidencePart{{Events: n, JSON: raw}}, nil
	}
	var ev evidenceWire
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidenceShape, err)
	}
	if len(ev.Leaves) != n {
		return nil, fmt.Errorf("%w: %d proofs for %d events", ErrEvidenceShape, len(ev.Leaves), n)
	}
	paths := make([][]int, n)
	trees := make([]string, n)
	leafSize := make([]int, n)
	for i, l := range ev.Leaves {
		if p, ok := l["path"]; ok {
			if err := json.Unmarshal(p, &paths[i]); err != nil {
				return nil, fmt.Errorf("%w: leaf %d path: %w", ErrEvidenceShape, i, err)
			}
			for _, k := range paths[i] {
				if k < 0 || k >= len(ev.Nodes) {
					return nil, fmt.Errorf("%w: leaf %d names hash %d of %d", ErrEvidenceShape, i, k, len(ev.Nodes))
				}
			}
		}
		if t, ok := l["tree"]; ok {
			json.Unmarshal(t, &trees[i])
		}
		for k, v := range l {
			leafSize[i] += len(k) + len(v) + 4 // "k":v,
		}
		leafSize[i] += 2
	}
	cpSize := make([]int, len(ev.Checkpoints))
	for i, c := range ev.Checkpoints {
		b, _ := json.Marshal(c)
		cpSize[i] = len(b) + 1
	}
	var parts []EvidencePart
	for from := 0; from < n; {
		// Grow the part while its estimate fits, then check the real size
		// and shrink if the estimate was short (paths renumbered locally
		// may take more digits).
		to := from
		size := 64 // braces, member names, flags
		nodes := map[int]bool{}
		cps := map[int]bool{}
		for to < n {
			add := leafSize[to]
			for _, k := range paths[to] {
				if !nodes[k] {
					add += len(ev.Nodes[k]) + 1
				}
			}
			for c := range ev.Checkpoints {
				if !cps[c] && checkpointOf(ev.Checkpoints[c], trees[to]) {
					add += cpSize[c]
				}
			}
			if to > from && size+add > maxBytes {
				break
			}
			size += add
			for _, k := range paths[to] {
				nodes[k] = true
			}
			for c := range ev.Checkpoints {
				if checkpointOf(ev.Checkpoints[c], trees[to]) {
					cps[c] = true
				}
			}
			to++
		}
		for {
			b, err := ev.part(from, to, paths, trees)
			if err != nil {
				return nil, err
			}
			if len(b) <= maxBytes || to-from == 1 {
				parts = append(parts, EvidencePart{Events: to - from, JSON: b})
				break
			}
			to = from + max(1, (to-from)*maxBytes/len(b))
		}
		from = to
	}
	return parts, nil
}

// part encodes the evidence of leaves [from, to).
func (ev *evidenceWire) part(from, to int, paths [][]int, trees []string) (json.RawMessage, error) {
	out := evidenceWire{Leaves: make([]map[string]json.RawMessage, 0, to-from), Filtered: ev.Filtered, Masked: ev.Masked}
	local := map[int]int{}
	inPart := map[string]bool{}
	for i := from; i < to; i++ {
		inPart[trees[i]] = true
		l := ev.Leaves[i]
		if paths[i] != nil {
			p := make([]int, len(paths[i]))
			for j, k := range paths[i] {
				m, ok := local[k]
				if !ok {
					m = len(out.Nodes)
					local[k] = m
					out.Nodes = append(out.Nodes, ev.Nodes[k])
				}
				p[j] = m
			}
			pj, err := json.Marshal(p)
			if err != nil {
				return nil, err
			}
			cp := make(map[string]json.RawMessage, len(l))
			for k, v := range l {
				cp[k] = v
			}
			cp["path"] = pj
			l = cp
		}
		out.Leaves = append(out.Leaves, l)
	}
	for _, c := range ev.Checkpoints {
		for t := range inPart {
			if checkpointOf(c, t) {
				out.Checkpoints = append(out.Checkpoints, c)
				break
			}
		}
	}
	if out.Checkpoints == nil {
		out.Checkpoints = []string{}
	}
	return json.Marshal(out)
}

// checkpointOf reports whether note is a checkpoint of tree: its origin
// line is a prefix and the tree's name ("audittrail/<tree>").
func checkpointOf(note, tree string) bool {
	origin, _, _ := strings.Cut(note, "\n")
	return tree != "" && (origin == tree || strings.HasSuffix(origin, "/"+tree))
}
