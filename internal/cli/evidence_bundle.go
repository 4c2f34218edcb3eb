package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/ledger"
)

// An evidence bundle is an NDJSON export (unchanged: one wire record a
// line) plus a proofs file beside it, <export>.proofs, also NDJSON: a
// header line, then one inclusion proof per line of the export, in the
// same order. docs/tamper-evidence.md documents it for other verifiers.
const (
	bundleFormat = "audittrail-evidence/1"
	proofsSuffix = ".proofs"
)

// bundleHeader is the first line of a proofs file.
type bundleHeader struct {
	Format string `json:"format"`
	// VerifierKey is the key the server published when the bundle was
	// made: a verifier should compare it with one it obtained elsewhere.
	VerifierKey string `json:"verifierKey"`
	// Checkpoints are the signed notes the proofs lead to, one per tree.
	Checkpoints []string `json:"checkpoints"`
	// Filtered: the export was narrowed by filters other than time, so
	// leaf indexes may skip without an event having been removed.
	Filtered bool   `json:"filtered"`
	Exported string `json:"exported"`
}

// failure is one thing verification found wrong, said precisely.
type failure struct {
	Line   int    `json:"line,omitempty"` // 1-based line of the export, 0 when none
	ID     string `json:"id,omitempty"`
	Tree   string `json:"tree,omitempty"`
	Index  int64  `json:"leafIndex"` // -1 when unknown
	Reason string `json:"reason"`
}

func (f failure) String() string {
	var b strings.Builder
	if f.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", f.Line)
	}
	if f.ID != "" {
		fmt.Fprintf(&b, "event %s: ", f.ID)
	}
	if f.Index >= 0 {
		fmt.Fprintf(&b, "leaf %d of %s: ", f.Index, f.Tree)
	} else if f.Tree != "" {
		fmt.Fprintf(&b, "tree %s: ", f.Tree)
	}
	return b.String() + f.Reason
}

// bundleReport is what verifying a bundle found.
type bundleReport struct {
	Events      int `json:"events"`
	Checkpoints map[string]ledger.Checkpoint
	Trees       map[string]uint64            `json:"trees"` // tree → checkpoint size
	Failures    []failure                    `json:"failures"`
	leafIndexes map[string]map[uint64]string // tree → index → event id
	byHash      map[string]struct {
		tree  string
		index uint64
	}
}

// maxFailures bounds what a report lists; the count is still exact.
const maxFailures = 1000

// verifyBundle checks an export and its proofs file against verifierKey:
// every checkpoint is signed by it, every event hashes to the leaf its
// proof names and the proof leads to the signed root, no leaf holds two
// events, and (unless the export was filtered) no leaf between the first
// and the last exported is missing.
func verifyBundle(eventsPath, proofsPath, verifierKey string) (*bundleReport, bundleHeader, error) {
	ef, err := os.Open(eventsPath)
	if err != nil {
		return nil, bundleHeader{}, err
	}
	defer ef.Close()
	pf, err := os.Open(proofsPath)
	if err != nil {
		return nil, bundleHeader{}, fmt.Errorf("open the proofs of %s: %w", eventsPath, err)
	}
	defer pf.Close()
	return verifyBundleStreams(ef, pf, verifierKey)
}

func newLineScanner(r io.Reader) *bufio.Scanner {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), maxLine)
	return s
}

func verifyBundleStreams(events, proofs io.Reader, verifierKey string) (*bundleReport, bundleHeader, error) {
	ps := newLineScanner(proofs)
	if !ps.Scan() {
		return nil, bundleHeader{}, fmt.Errorf("proofs file is empty: %v", ps.Err())
	}
	var h bundleHeader
	if err := json.Unmarshal(ps.Bytes(), &h); err != nil || h.Format != bundleFormat {
		return nil, bundleHeader{}, fmt.Errorf("proofs file does not start with an %s header", bundleFormat)
	}
	if verifierKey == "" {
		verifierKey = h.VerifierKey
	}
	rep := &bundleReport{Checkpoints: map[string]ledger.Checkpoint{}, Trees: map[string]uint64{},
		leafIndexes: map[string]map[uint64]string{}, byHash: map[string]struct {
			tree  string
			index uint64
		}{}}
	fail := func(f failure) {
		if len(rep.Failures) < maxFailures {
			rep.Failures = append(rep.Failures, f)
		}
	}
	for _, note := range h.Checkpoints {
		cp, err := ledger.VerifyCheckpoint([]byte(note), verifierKey, "")
		if err != nil {
			fail(failure{Index: -1, Reason: fmt.Sprintf("checkpoint refused: %v", err)})
			continue
		}
		rep.Checkpoints[cp.Tree.String()] = cp
		rep.Trees[cp.Tree.String()] = cp.Size
	}
	// Events whose content is not their leaf's: after the whole bundle is
	// read, one whose content is another leaf's was moved (reordered).
	type mismatch struct {
		f    failure
		hash string
	}
	var altered []mismatch

	unchecked := map[string]int{} // tree → events without a verified checkpoint
	es := newLineScanner(events)
	line := 0
	for es.Scan() {
		line++
		raw := bytes.TrimSpace(es.Bytes())
		if len(raw) == 0 {
			continue
		}
		rep.Events++
		id := ledger.EventIDOf(raw)
		if !ps.Scan() {
			fail(failure{Line: line, ID: id, Index: -1, Reason: "no proof: the proofs file ends before the export"})
			continue
		}
		var p ledgerhttpProof
		if err := json.Unmarshal(ps.Bytes(), &p); err != nil {
			fail(failure{Line: line, ID: id, Index: -1, Reason: fmt.Sprintf("unreadable proof: %v", err)})
			continue
		}
		f := failure{Line: line, ID: id, Tree: p.Tree, Index: int64(p.Index)}
		switch {
		case p.ID != id:
			f.Index = -1
			f.Reason = fmt.Sprintf("the proof on this line is for event %q: the files are out of step", p.ID)
			fail(f)
			continue
		case p.Error != "":
			f.Index = -1
			f.Reason = "no proof: " + p.Error
			fail(f)
			continue
		}
		cp, ok := rep.Checkpoints[p.Tree]
		if !ok {
			unchecked[p.Tree]++
			continue
		}
		leaf, err := ledger.LeafHashFromJSON(raw)
		if err != nil {
			f.Reason = fmt.Sprintf("not an event's JSON: %v", err)
			fail(f)
			continue
		}
		if p.Size != cp.Size {
			f.Reason = fmt.Sprintf("the proof is against size %d, the checkpoint has %d", p.Size, cp.Size)
			fail(f)
			continue
		}
		idx := rep.leafIndexes[p.Tree]
		if idx == nil {
			idx = map[uint64]string{}
			rep.leafIndexes[p.Tree] = idx
		}
		other, dup := idx[p.Index]
		if !dup {
			// Claimed even if the proof fails below, so that one forged
			// line is reported once, not again as a gap.
			idx[p.Index] = id
		}
		if err := ledger.VerifyInclusion(p.LeafHash, p.Index, p.Size, p.Hashes, cp.Root); err != nil {
			f.Reason = "inclusion proof refused: it does not lead from this leaf to the checkpoint's root"
			fail(f)
			continue
		}
		if dup {
			f.Reason = fmt.Sprintf("leaf %d already holds event %s: repeated", p.Index, other)
			fail(f)
			continue
		}
		rep.byHash[string(p.LeafHash)] = struct {
			tree  string
			index uint64
		}{p.Tree, p.Index}
		if !bytes.Equal(leaf, p.LeafHash) {
			f.Reason = "the event differs from the one the ledger holds at its leaf: altered"
			altered = append(altered, mismatch{f, string(leaf)})
		}
	}
	if err := es.Err(); err != nil {
		return nil, h, fmt.Errorf("read the export: %w", err)
	}
	if ps.Scan() {
		fail(failure{Index: -1, Reason: "the proofs file has more lines than the export: events were removed from the export"})
	}
	for tree, n := range unchecked {
		fail(failure{Tree: tree, Index: -1, Reason: fmt.Sprintf("%d events of this tree cannot be checked: the bundle has no verified checkpoint of it", n)})
	}
	for _, m := range altered {
		if at, ok := rep.byHash[m.hash]; ok && (at.tree != m.f.Tree || int64(at.index) != m.f.Index) {
			m.f.Reason = fmt.Sprintf("the event's content is leaf %d's, not its own leaf's: reordered", at.index)
		}
		fail(m.f)
	}
	if !h.Filtered {
		for tree, idx := range rep.leafIndexes {
			for _, gap := range gaps(idx) {
				if gap[0] == gap[1] {
					fail(failure{Tree: tree, Index: int64(gap[0]), Reason: "no event of the export holds this leaf: removed (or it occurred before the search window)"})
				} else {
					fail(failure{Tree: tree, Index: -1, Reason: fmt.Sprintf("no event of the export holds leaves %d to %d: removed (or they occurred before the search window)", gap[0], gap[1])})
				}
			}
		}
	}
	return rep, h, nil
}

// gaps lists the runs of indexes missing between the smallest and the
// largest of idx.
func gaps(idx map[uint64]string) [][2]uint64 {
	keys := make([]uint64, 0, len(idx))
	for k := range idx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out [][2]uint64
	for i := 1; i < len(keys); i++ {
		if keys[i] > keys[i-1]+1 {
			out = append(out, [2]uint64{keys[i-1] + 1, keys[i] - 1})
		}
	}
	return out
}

// ledgerhttpProof is one line of a proofs file (the API's proof JSON).
type ledgerhttpProof = client.InclusionProof

// errVerifyFailed makes verify exit 1 after it printed its report.
var errVerifyFailed = errors.New("verification failed")
