package streamtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"
)

// EvidenceLog makes stream evidence as the server does (one tree per
// project and one per company, checkpoints signed by its own key, proofs
// sharing their hashes), without a server, for sinks' unit tests.
type EvidenceLog struct {
	VerifierKey string
	signer      note.Signer
	trees       map[string]*testonly.Tree
}

func NewEvidenceLog(t testing.TB) *EvidenceLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "audittrail")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &EvidenceLog{VerifierKey: vkey, signer: s, trees: map[string]*testonly.Tree{}}
}

func treeOf(e *event.Event) string {
	if e.Level == event.LevelCompany {
		return e.CompanyID + "/company"
	}
	return e.CompanyID + "/project/" + e.ProjectID
}

// Batch appends events to their trees and returns the evidence of the
// batch, proven against checkpoints of the trees as they now are.
func (l *EvidenceLog) Batch(t testing.TB, events []event.Event) json.RawMessage {
	t.Helper()
	type leaf struct {
		ID       string   `json:"id"`
		Tree     string   `json:"tree"`
		Index    uint64   `json:"index"`
		Size     uint64   `json:"size"`
		LeafHash []byte   `json:"leafHash"`
		Hashes   [][]byte `json:"hashes"`
		Path     []int    `json:"path"`
	}
	leaves := make([]leaf, len(events))
	var order []string
	for i := range events {
		raw, err := json.Marshal(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.LeafHash(raw)
		if err != nil {
			t.Fatal(err)
		}
		name := treeOf(&events[i])
		tr := l.trees[name]
		if tr == nil {
			tr = testonly.New(rfc6962.DefaultHasher)
			l.trees[name] = tr
		}
		if _, seen := seenIn(order, name); !seen {
			order = append(order, name)
		}
		leaves[i] = leaf{ID: events[i].ID, Tree: name, Index: tr.Size(), LeafHash: h}
		tr.Append(h)
	}
	var out struct {
		Checkpoints []string `json:"checkpoints"`
		Leaves      []leaf   `json:"leaves"`
		Nodes       [][]byte `json:"nodes"`
	}
	for _, name := range order {
		tr := l.trees[name]
		body := fmt.Sprintf("audittrail/%s\n%d\n%s\ntime %s\n", name, tr.Size(), base64.StdEncoding.EncodeToString(tr.Hash()), time.Now().UTC().Format(time.RFC3339Nano))
		n, err := note.Sign(&note.Note{Text: body}, l.signer)
		if err != nil {
			t.Fatal(err)
		}
		out.Checkpoints = append(out.Checkpoints, string(n))
	}
	slot := map[string]int{}
	for i := range leaves {
		tr := l.trees[leaves[i].Tree]
		leaves[i].Size = tr.Size()
		proof, err := tr.InclusionProof(leaves[i].Index, tr.Size())
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range proof {
			k, ok := slot[string(h)]
			if !ok {
				k = len(out.Nodes)
				slot[string(h)] = k
				out.Nodes = append(out.Nodes, h)
			}
			leaves[i].Path = append(leaves[i].Path, k)
		}
	}
	out.Leaves = leaves
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seenIn(list []string, s string) (int, bool) {
	for i, x := range list {
		if x == s {
			return i, true
		}
	}
	return -1, false
}
