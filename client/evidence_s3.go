package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// S3Evidence is the body of the evidence object an S3 connector writes
// for each batch, under <prefix>/_evidence/<first-seq>-<last-seq>.json
// (docs/tamper-evidence.md): the batch's StreamEvidence and, for each
// object the batch was split into, which of its proofs the object's lines
// are.
type S3Evidence struct {
	Objects  []S3EvidenceObject `json:"objects"`
	Evidence *StreamEvidence    `json:"evidence"`
}

// S3EvidenceObject names one object of the batch: line j of the object
// (gzip NDJSON, one event a line) is proven by Evidence.Leaves[Lines[j]].
type S3EvidenceObject struct {
	Key   string `json:"key"`
	Lines []int  `json:"lines"`
}

// VerifyS3Batch checks one batch archived to S3: evidence is the body of
// its evidence object, objects the decompressed NDJSON of the objects it
// names, by key (an absent key means its events are missing). Evidence
// objects must be verified in key order, which is the order the batches
// were delivered in.
//
// Events are paired with their proofs by id, keeping each object's line
// order: a line removed is reported as missing, two lines swapped as
// reordered, a line changed as altered, a line no proof names as unproven.
func (v *StreamVerifier) VerifyS3Batch(evidence []byte, objects map[string][]byte) ([]EvidenceProblem, error) {
	var s S3Evidence
	if err := json.Unmarshal(evidence, &s); err != nil {
		return nil, fmt.Errorf("%w: S3 evidence object: %w", ErrInvalidResponse, err)
	}
	if s.Evidence == nil {
		return nil, errNoEvidence
	}
	// Where, in batch order, each object's events belong (by id).
	type queue struct {
		lines [][]byte
		slot  map[string][]int
	}
	queues := make([]*queue, len(s.Objects))
	for o, obj := range s.Objects {
		q := &queue{slot: map[string][]int{}}
		for _, i := range obj.Lines {
			if i >= 0 && i < len(s.Evidence.Leaves) {
				id := s.Evidence.Leaves[i].ID
				q.slot[id] = append(q.slot[id], i)
			}
		}
		for line := range bytes.Lines(objects[obj.Key]) {
			if line = bytes.TrimSpace(line); len(line) > 0 {
				q.lines = append(q.lines, line)
			}
		}
		queues[o] = q
	}
	// Merge the objects back into batch order, each object's lines kept in
	// the order the object holds them (so a swap inside one stays visible).
	var arrived []json.RawMessage
	for {
		best, bestPos := -1, math.MaxInt
		for o, q := range queues {
			if len(q.lines) == 0 {
				continue
			}
			pos := math.MaxInt - 1 // a line no proof names goes last
			if p := q.slot[eventID(q.lines[0])]; len(p) > 0 {
				pos = p[0]
			}
			if pos < bestPos {
				best, bestPos = o, pos
			}
		}
		if best < 0 {
			break
		}
		q := queues[best]
		line := q.lines[0]
		q.lines = q.lines[1:]
		if p := q.slot[eventID(line)]; len(p) > 0 {
			q.slot[eventID(line)] = p[1:]
		}
		arrived = append(arrived, line)
	}
	audits, ev := alignEvidence(arrived, s.Evidence)
	return v.VerifyBatch(audits, ev)
}
