package stream

import (
	"encoding/json"
	"fmt"
	"strings"
)

// GroupEvidence is a batch's evidence (Batch.Evidence) opened up so that a
// sink which splits the batch (Kafka and NATS by record key or subject,
// S3 by object, all of them by size) can give each part the proofs of its
// own events only, in the same wire form (client.StreamEvidence decodes
// either). Hashes stay base64 strings: a part copies them as they came.
type GroupEvidence struct {
	wire evidenceWire
}

// evidenceWire mirrors ledgerhttp.StreamEvidenceJSON and ProofJSON
// (this package cannot import them: ledgerhttp imports stream).
type evidenceWire struct {
	Checkpoints []string       `json:"checkpoints"`
	Leaves      []evidenceLeaf `json:"leaves"`
	Nodes       []string       `json:"nodes,omitempty"` // base64, as sent
	Filtered    bool           `json:"filtered,omitempty"`
	Masked      bool           `json:"masked,omitempty"`
}

type evidenceLeaf struct {
	ID       string          `json:"id,omitempty"`
	Tree     string          `json:"tree,omitempty"`
	Index    uint64          `json:"index"`
	Size     uint64          `json:"size,omitempty"`
	LeafHash string          `json:"leafHash,omitempty"`
	Hashes   json.RawMessage `json:"hashes"`
	Path     []int           `json:"path,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// OpenEvidence decodes b.Evidence; nil (and no error) when the batch has
// none. An evidence whose proofs do not match the batch's events one for
// one is refused: a part would get the wrong proofs.
func OpenEvidence(b Batch) (*GroupEvidence, error) {
	if len(b.Evidence) == 0 {
		return nil, nil
	}
	var g GroupEvidence
	if err := json.Unmarshal(b.Evidence, &g.wire); err != nil {
		return nil, fmt.Errorf("stream evidence: %w", err)
	}
	if len(g.wire.Leaves) != len(b.Events) {
		return nil, fmt.Errorf("stream evidence proves %d events, the batch holds %d", len(g.wire.Leaves), len(b.Events))
	}
	for i, l := range g.wire.Leaves {
		if l.ID != "" && l.ID != b.Events[i].ID {
			return nil, fmt.Errorf("stream evidence: proof %d is for %s, the event is %s", i, l.ID, b.Events[i].ID)
		}
		for _, k := range l.Path {
			if k < 0 || k >= len(g.wire.Nodes) {
				return nil, fmt.Errorf("stream evidence: proof %d names hash %d of %d", i, k, len(g.wire.Nodes))
			}
		}
	}
	return &g, nil
}

// Part returns the evidence of the batch's events at positions (batch
// order, ascending): their proofs in that order, only the checkpoints of
// their trees and only the hashes their proofs use.
func (g *GroupEvidence) Part(positions []int) ([]byte, error) {
	w := evidenceWire{Leaves: make([]evidenceLeaf, len(positions)), Filtered: g.wire.Filtered, Masked: g.wire.Masked}
	trees := map[string]bool{}
	slot := map[int]int{}
	for j, i := range positions {
		l := g.wire.Leaves[i]
		trees[l.Tree] = true
		if len(l.Path) > 0 {
			path := make([]int, len(l.Path))
			for k, old := range l.Path {
				n, ok := slot[old]
				if !ok {
					n = len(w.Nodes)
					slot[old] = n
					w.Nodes = append(w.Nodes, g.wire.Nodes[old])
				}
				path[k] = n
			}
			l.Path = path
		}
		w.Leaves[j] = l
	}
	for _, note := range g.wire.Checkpoints {
		if trees[""] || trees[checkpointTree(note, trees)] {
			w.Checkpoints = append(w.Checkpoints, note)
		}
	}
	return json.Marshal(w)
}

// checkpointTree returns which of trees the note's origin line names (the
// origin is "<prefix>/<tree>"), "" when none.
func checkpointTree(note string, trees map[string]bool) string {
	origin, _, _ := strings.Cut(note, "\n")
	for t := range trees {
		if t != "" && strings.HasSuffix(origin, "/"+t) {
			return t
		}
	}
	return ""
}

// Split cuts positions into consecutive runs whose evidence (Part) is at
// most maxBytes, halving a run until it fits or holds a single event, and
// returns the runs with their evidence. A destination with a size limit
// (a Kafka record, a NATS message) carries each run's evidence apart.
func (g *GroupEvidence) Split(positions []int, maxBytes int) (runs [][]int, evidence [][]byte, err error) {
	part, err := g.Part(positions)
	if err != nil {
		return nil, nil, err
	}
	if len(part) <= maxBytes || len(positions) == 1 {
		return [][]int{positions}, [][]byte{part}, nil
	}
	half := len(positions) / 2
	r1, e1, err := g.Split(positions[:half], maxBytes)
	if err != nil {
		return nil, nil, err
	}
	r2, e2, err := g.Split(positions[half:], maxBytes)
	if err != nil {
		return nil, nil, err
	}
	return append(r1, r2...), append(e1, e2...), nil
}

// EvidenceRuns cuts a batch's evidence along groups (positions of the
// batch's events, each group ascending, e.g. one per record key) and by
// size (see Split): runs[i] is a run of one group, evidence[i] its proofs.
// A batch of one group whose evidence fits is passed on as it came,
// without decoding it (the ~9 µs per event of cutting: BenchmarkGroupEvidence).
// No evidence gives no runs.
func EvidenceRuns(b Batch, groups [][]int, maxBytes int) (runs [][]int, evidence [][]byte, err error) {
	if len(b.Evidence) == 0 {
		return nil, nil, nil
	}
	if len(groups) == 1 && len(groups[0]) == len(b.Events) && len(b.Evidence) <= maxBytes {
		return groups, [][]byte{b.Evidence}, nil
	}
	g, err := OpenEvidence(b)
	if err != nil {
		return nil, nil, err
	}
	for _, group := range groups {
		r, e, err := g.Split(group, maxBytes)
		if err != nil {
			return nil, nil, err
		}
		runs, evidence = append(runs, r...), append(evidence, e...)
	}
	return runs, evidence, nil
}
