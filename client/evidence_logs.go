package client

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// LogStream verifies a stream whose events and evidence travel as separate
// records: Splunk HEC, Datadog, Sumo Logic, OTLP logs and syslog send each
// event as a record of its own and, after the events of each batch (or of
// each part of a batch, when a record would be too large), one evidence
// record that proves them (docs/tamper-evidence.md). Feed it every record in
// the order the destination received them: Event for each event's wire
// JSON, Evidence for each evidence record; then Finish.
//
// An evidence record proves the events it names (its leaves' ids) among
// those received and not proven yet, taken in arrival order and the latest
// copy of each, so two events whose places were swapped are reported as
// reordered. A batch delivered again (streams are at least once) is
// checked copy by copy against the events proven before. On top of
// the StreamVerifier's checks it reports, naming the event: one the
// evidence names that never arrived (missing), one that arrived without
// any evidence proving it (unproven, at Finish), a copy that differs from
// the proven one (altered), and a batch delivered again after later ones
// (replayed: a redelivery is only ever the batch in flight, whose
// checkpoint is the latest seen; a batch repeated while its checkpoint is
// still the latest cannot be told from one, and changes nothing). A whole
// batch lost with its evidence is reported by the next batch as missing
// leaves (StreamVerifier).
//
// Not safe for concurrent use.
type LogStream struct {
	Verifier *StreamVerifier

	pool   []logEvent          // received, not yet proven, in arrival order
	proven map[string][]byte   // id → leaf hash of the proven copy
	order  []string            // proven ids, oldest first, to bound proven
	copies map[string][][]byte // id → leaf hashes of copies seen after it was proven
}

type logEvent struct {
	id  string
	raw json.RawMessage
}

// Event records one event's wire JSON, as received.
func (s *LogStream) Event(raw json.RawMessage) {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &head)
	if h, ok := s.proven[head.ID]; ok {
		// A redelivery of a proven event: it must be the same event.
		leaf, err := LeafHash(raw)
		if err == nil && bytes.Equal(leaf, h) {
			return
		}
		if s.copies == nil {
			s.copies = map[string][][]byte{}
		}
		s.copies[head.ID] = append(s.copies[head.ID], leaf)
		return
	}
	s.pool = append(s.pool, logEvent{head.ID, raw})
}

// Evidence checks one evidence record against the events received before
// it and returns the problems found.
func (s *LogStream) Evidence(ev *StreamEvidence) ([]EvidenceProblem, error) {
	if ev == nil {
		return nil, errNoEvidence
	}
	v := s.Verifier
	var problems []EvidenceProblem
	// The latest copy of each id in the pool.
	latest := map[string]int{}
	for i, e := range s.pool {
		latest[e.id] = i
	}
	named := map[string]InclusionProof{}
	for _, p := range ev.Leaves {
		named[p.ID] = p
	}
	// A batch delivered again after later ones carries a checkpoint older
	// than the latest seen, and leaves already verified.
	replayed := map[string]bool{}
	for _, p := range ev.Leaves {
		if tp := v.trees[p.Tree]; tp != nil && tp.started && p.Index <= tp.last && p.Size < tp.size && tp.seen[p.Index] == string(p.LeafHash) {
			replayed[p.ID] = true
			problems = append(problems, EvidenceProblem{ID: p.ID, Tree: p.Tree, Index: int64(p.Index),
				Reason: fmt.Sprintf("replayed: an old batch (checkpoint size %d) delivered again after a later one (size %d)", p.Size, tp.size)})
		}
	}
	// The batch as received: the named events in arrival order, and the
	// proofs of those that arrived, in the evidence's order.
	var audits []json.RawMessage
	var ids []string
	taken := map[int]bool{}
	for i, e := range s.pool {
		if _, ok := named[e.id]; !ok || latest[e.id] != i {
			continue
		}
		taken[i] = true
		if replayed[e.id] {
			continue
		}
		audits = append(audits, e.raw)
		ids = append(ids, e.id)
	}
	sub := *ev
	sub.Leaves = nil
	for _, p := range ev.Leaves {
		if replayed[p.ID] {
			continue
		}
		if _, ok := latest[p.ID]; !ok {
			if _, ok := s.proven[p.ID]; ok {
				continue // a redelivery: its copy matched the one checked before (Event)
			}
			problems = append(problems, EvidenceProblem{ID: p.ID, Tree: p.Tree, Index: int64(p.Index),
				Reason: "the evidence proves this event but it never arrived: missing event"})
			continue
		}
		sub.Leaves = append(sub.Leaves, p)
	}
	if len(sub.Leaves) > 0 || len(replayed) == 0 {
		ps, err := v.VerifyBatch(audits, &sub)
		if err != nil {
			return nil, err
		}
		problems = append(problems, ps...)
	}
	// Earlier copies of a proven event must be the same event.
	for i, e := range s.pool {
		p, ok := named[e.id]
		if !ok || taken[i] || replayed[e.id] {
			continue
		}
		leaf, err := LeafHash(e.raw)
		if err != nil || !bytes.Equal(leaf, p.LeafHash) {
			problems = append(problems, EvidenceProblem{ID: e.id, Tree: p.Tree, Index: int64(p.Index),
				Reason: "an earlier copy of this event differs from the one the ledger holds: altered"})
		}
	}
	// Later copies are compared with the one taken here (whatever its
	// verdict: a problem was reported for it already).
	for i, id := range ids {
		if leaf, err := LeafHash(audits[i]); err == nil {
			s.remember(id, leaf)
		}
	}
	kept := s.pool[:0]
	for i, e := range s.pool {
		if _, ok := named[e.id]; !ok {
			kept = append(kept, s.pool[i])
		}
	}
	clear(s.pool[len(kept):])
	s.pool = kept
	return problems, nil
}

// remember keeps the leaf hash of the copy of an event an evidence record checked, for the last seenWindow
// events, to recognise its redeliveries.
func (s *LogStream) remember(id string, leaf []byte) {
	if s.proven == nil {
		s.proven = map[string][]byte{}
	}
	if _, ok := s.proven[id]; !ok {
		s.order = append(s.order, id)
	}
	s.proven[id] = leaf
	if len(s.order) > seenWindow {
		delete(s.proven, s.order[0])
		s.order = s.order[1:]
	}
}

// Finish reports what no evidence proved: events that arrived without the
// evidence of their batch (it was lost, or they were added), and copies of
// proven events that differ from them.
func (s *LogStream) Finish() []EvidenceProblem {
	var problems []EvidenceProblem
	for _, e := range s.pool {
		problems = append(problems, EvidenceProblem{ID: e.id, Index: -1, Reason: "no evidence proves this event: unproven (its batch's evidence was lost, or the event was added)"})
	}
	for id, leaves := range s.copies {
		problems = append(problems, EvidenceProblem{ID: id, Index: -1, Reason: fmt.Sprintf("%d later copies differ from the proven event: altered", len(leaves))})
	}
	s.pool, s.copies = nil, nil
	return problems
}
