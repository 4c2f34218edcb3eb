package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Tree names which Merkle tree of the ledger a call is about: the tree of
// the client's project (the default), or the company-level tree (events of
// level "company"; admin keys scoped to every project).
type Tree string

const (
	TreeProject Tree = "project"
	TreeCompany Tree = "company"
)

// Checkpoint is a signed statement of a tree's size and root hash.
type Checkpoint struct {
	// Tree is "<company>/project/<project>" or "<company>/company".
	Tree   string    `json:"tree"`
	Origin string    `json:"origin"`
	Size   uint64    `json:"size"`
	Root   []byte    `json:"root"` // base64 on the wire
	Time   time.Time `json:"time"`
	// Note is the signed note: what VerifyCheckpoint checks and what to
	// keep to check the server later (audittrail verify --checkpoints).
	Note string `json:"note"`
}

// InclusionProof proves that an event is leaf Index of the tree of Size.
type InclusionProof struct {
	ID       string   `json:"id,omitempty"`
	Tree     string   `json:"tree"`
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash []byte   `json:"leafHash"`
	Hashes   [][]byte `json:"hashes"`
	// Error, in a batch answer, says why this id has no proof (unknown,
	// not yet appended); the other fields are then empty.
	Error string `json:"error,omitempty"`
}

// Verify checks the proof against a verified checkpoint of its tree.
func (p InclusionProof) Verify(cp Checkpoint) error {
	if p.Error != "" {
		return verifyErr("no proof for %s: %s", p.ID, p.Error)
	}
	if cp.Tree != "" && p.Tree != cp.Tree {
		return verifyErr("proof is for tree %s, checkpoint for %s", p.Tree, cp.Tree)
	}
	if p.Size != cp.Size {
		return verifyErr("proof is against size %d, checkpoint has size %d", p.Size, cp.Size)
	}
	return VerifyInclusion(p.LeafHash, p.Index, p.Size, p.Hashes, cp.Root)
}

// ConsistencyProof proves that the tree of size To extends the tree of
// size From.
type ConsistencyProof struct {
	Tree   string   `json:"tree"`
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// Verify checks the proof between two verified checkpoints of its tree.
func (p ConsistencyProof) Verify(older, newer Checkpoint) error {
	if older.Tree != newer.Tree || (p.Tree != "" && p.Tree != older.Tree) {
		return verifyErr("consistency between different trees (%s, %s)", older.Tree, newer.Tree)
	}
	if p.From != older.Size || p.To != newer.Size {
		return verifyErr("proof is from %d to %d, checkpoints have %d and %d", p.From, p.To, older.Size, newer.Size)
	}
	return VerifyConsistency(older.Size, newer.Size, p.Hashes, older.Root, newer.Root)
}

// CheckpointKey is what the server publishes to verify its checkpoints.
type CheckpointKey struct {
	VerifierKey  string `json:"verifierKey"`
	OriginPrefix string `json:"originPrefix"`
	Algorithm    string `json:"algorithm"`
}

// Ledger holds the tamper-evidence calls. Get it from Client.Ledger.
type Ledger struct{ c *Client }

// Ledger gives the tamper-evidence calls: checkpoints and proofs.
func (c *Client) Ledger() *Ledger { return &Ledger{c: c} }

// MaxProofBatch is how many event ids one InclusionProofs call may name.
const MaxProofBatch = 1000

// CheckpointKey fetches the public key from the well-known endpoint. A
// verifier should pin it (compare with a copy obtained out of band) rather
// than trust the server it checks.
func (l *Ledger) CheckpointKey(ctx context.Context) (CheckpointKey, error) {
	var out CheckpointKey
	err := l.c.call(ctx, http.MethodGet, "/.well-known/audittrail/checkpoint-key", nil, &out)
	return out, err
}

func treeQuery(tree Tree) string {
	if tree == "" {
		tree = TreeProject
	}
	return "tree=" + url.QueryEscape(string(tree))
}

// Checkpoint returns the latest signed checkpoint of the tree.
func (l *Ledger) Checkpoint(ctx context.Context, tree Tree) (Checkpoint, error) {
	var out Checkpoint
	err := l.c.call(ctx, http.MethodGet, "/v1/mgmt/ledger/checkpoint?"+treeQuery(tree), nil, &out)
	return out, err
}

// NewCheckpoint has the server sign a checkpoint now, covering every event
// stored before the call.
func (l *Ledger) NewCheckpoint(ctx context.Context, tree Tree) (Checkpoint, error) {
	var out Checkpoint
	err := l.c.call(ctx, http.MethodPost, "/v1/mgmt/ledger/checkpoint?"+treeQuery(tree), struct{}{}, &out)
	return out, err
}

// Checkpoints lists signed checkpoints of the tree from size fromSize up,
// oldest first, at most limit (0: the server's default).
func (l *Ledger) Checkpoints(ctx context.Context, tree Tree, fromSize uint64, limit int) ([]Checkpoint, error) {
	var out struct {
		Checkpoints []Checkpoint `json:"checkpoints"`
	}
	path := fmt.Sprintf("/v1/mgmt/ledger/checkpoints?%s&from=%d&limit=%d", treeQuery(tree), fromSize, limit)
	err := l.c.call(ctx, http.MethodGet, path, nil, &out)
	return out.Checkpoints, err
}

// InclusionProof proves one event against the tree size of a checkpoint;
// size 0 means the latest checkpoint.
func (l *Ledger) InclusionProof(ctx context.Context, eventID string, size uint64) (InclusionProof, error) {
	if eventID == "" {
		return InclusionProof{}, fmt.Errorf("%w: empty event id", ErrBadRequest)
	}
	var out InclusionProof
	path := "/v1/mgmt/ledger/proof/inclusion?id=" + url.QueryEscape(eventID)
	if size > 0 {
		path += "&size=" + strconv.FormatUint(size, 10)
	}
	err := l.c.call(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// InclusionProofs proves up to MaxProofBatch events of one tree against
// size, in the order of ids; an id without a proof has Error set.
func (l *Ledger) InclusionProofs(ctx context.Context, tree Tree, size uint64, ids []string) ([]InclusionProof, error) {
	if len(ids) > MaxProofBatch {
		return nil, fmt.Errorf("%w: %d ids, at most %d", ErrBadRequest, len(ids), MaxProofBatch)
	}
	in := struct {
		Tree Tree     `json:"tree"`
		Size uint64   `json:"size"`
		IDs  []string `json:"ids"`
	}{tree, size, ids}
	var out struct {
		Proofs []InclusionProof `json:"proofs"`
	}
	if err := l.c.call(ctx, http.MethodPost, "/v1/mgmt/ledger/proofs", in, &out); err != nil {
		return nil, err
	}
	if len(out.Proofs) != len(ids) {
		return nil, fmt.Errorf("%w: %d proofs for %d ids", ErrInvalidResponse, len(out.Proofs), len(ids))
	}
	return out.Proofs, nil
}

// ConsistencyProof proves that the tree of size to (0: the latest
// checkpoint) extends the tree of size from.
func (l *Ledger) ConsistencyProof(ctx context.Context, tree Tree, from, to uint64) (ConsistencyProof, error) {
	var out ConsistencyProof
	path := fmt.Sprintf("/v1/mgmt/ledger/proof/consistency?%s&from=%d", treeQuery(tree), from)
	if to > 0 {
		path += "&to=" + strconv.FormatUint(to, 10)
	}
	err := l.c.call(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// VerifyEvent fetches an inclusion proof of the record (its wire JSON, as
// search or export returned it) and a fresh checkpoint, and checks both
// against verifierKey: the record is in the trail, unaltered.
func (l *Ledger) VerifyEvent(ctx context.Context, recordJSON []byte, verifierKey string) (InclusionProof, error) {
	var head struct {
		ID    string `json:"id"`
		Level Level  `json:"level"`
	}
	if err := json.Unmarshal(recordJSON, &head); err != nil || head.ID == "" {
		return InclusionProof{}, fmt.Errorf("%w: the record has no id", ErrBadRequest)
	}
	tree := TreeProject
	if head.Level == LevelCompany {
		tree = TreeCompany
	}
	cp, err := l.NewCheckpoint(ctx, tree)
	if err != nil {
		return InclusionProof{}, err
	}
	verified, err := VerifyCheckpoint(cp.Note, verifierKey)
	if err != nil {
		return InclusionProof{}, err
	}
	p, err := l.InclusionProof(ctx, head.ID, verified.Size)
	if err != nil {
		return InclusionProof{}, err
	}
	leaf, err := LeafHash(recordJSON)
	if err != nil {
		return p, err
	}
	if string(leaf) != string(p.LeafHash) {
		return p, verifyErr("event %s differs from leaf %d of the ledger", head.ID, p.Index)
	}
	return p, p.Verify(verified)
}

var errNoEvidence = errors.New("audittrail: the batch carries no evidence")
