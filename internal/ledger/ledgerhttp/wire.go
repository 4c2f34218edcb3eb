package ledgerhttp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
)

// The wire forms of the ledger's answers; client/evidence.go decodes
// them. Hashes are standard base64, times RFC 3339, the note its text.

// CheckpointJSON is a signed checkpoint.
type CheckpointJSON struct {
	Tree   string    `json:"tree"`
	Origin string    `json:"origin"`
	Size   uint64    `json:"size"`
	Root   []byte    `json:"root"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note"`
}

func checkpointJSON(cp ledger.Checkpoint) CheckpointJSON {
	return CheckpointJSON{Tree: cp.Tree.String(), Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Time: cp.Time.UTC(), Note: string(cp.Note)}
}

// ProofJSON is an inclusion proof of one event; Error says why an id of a
// batch has none.
type ProofJSON struct {
	ID       string   `json:"id,omitempty"`
	Tree     string   `json:"tree,omitempty"`
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size,omitempty"`
	LeafHash []byte   `json:"leafHash,omitempty"`
	Hashes   [][]byte `json:"hashes"`
	// Path, in a stream batch, replaces Hashes: positions in the
	// evidence's shared Nodes (see StreamEvidenceJSON).
	Path  []int  `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
}

func proofJSON(id string, p ledger.InclusionProof) ProofJSON {
	h := p.Hashes
	if h == nil {
		h = [][]byte{}
	}
	return ProofJSON{ID: id, Tree: p.Tree.String(), Index: p.Index, Size: p.Size, LeafHash: p.LeafHash, Hashes: h}
}

// ConsistencyJSON is a consistency proof between two sizes of a tree.
type ConsistencyJSON struct {
	Tree   string   `json:"tree"`
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

// writeCheckpoint answers the signed note itself to a client that asks for
// text/plain (as transparency-log tooling does), JSON otherwise.
func writeCheckpoint(w http.ResponseWriter, r *http.Request, cp ledger.Checkpoint) {
	if accept := r.Header.Get("Accept"); strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(cp.Note)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(cp.Note)
		return
	}
	writeJSON(w, http.StatusOK, checkpointJSON(cp))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the types above reach here; they always marshal.
		http.Error(w, `{"errorCode":"E010500","errorDescription":"Internal error","errorMessage":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
