package client_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/client"
)

// The wire form may share the proofs' hashes ("nodes" and each leaf's
// "path"); decoding puts them back in each proof, and a path naming a hash
// that is not there refuses the evidence.
func TestStreamEvidenceSharedHashes(t *testing.T) {
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	wire, _ := json.Marshal(map[string]any{
		"checkpoints": []string{"note"},
		"nodes":       [][]byte{h(1), h(2), h(3)},
		"leaves": []map[string]any{
			{"id": "a", "tree": "c/company", "index": 4, "size": 8, "leafHash": h(9), "hashes": nil, "path": []int{0, 2}},
			{"id": "b", "tree": "c/company", "index": 5, "size": 8, "leafHash": h(8), "hashes": nil, "path": []int{1, 2}},
			{"id": "c", "tree": "c/company", "index": 0, "size": 1, "leafHash": h(7), "hashes": nil},
		},
		"filtered": true,
	})
	var ev client.StreamEvidence
	if err := json.Unmarshal(wire, &ev); err != nil {
		t.Fatal(err)
	}
	want := [][][]byte{{h(1), h(3)}, {h(2), h(3)}, nil}
	if len(ev.Leaves) != 3 || !ev.Filtered || len(ev.Checkpoints) != 1 {
		t.Fatalf("decoded %+v", ev)
	}
	for i, l := range ev.Leaves {
		if len(l.Hashes) != len(want[i]) {
			t.Fatalf("leaf %d: %d hashes, want %d", i, len(l.Hashes), len(want[i]))
		}
		for j := range want[i] {
			if !bytes.Equal(l.Hashes[j], want[i][j]) {
				t.Fatalf("leaf %d hash %d: %x, want %x", i, j, l.Hashes[j], want[i][j])
			}
		}
	}
	bad := strings.Replace(string(wire), `"path":[1,2]`, `"path":[1,3]`, 1)
	if err := json.Unmarshal([]byte(bad), &ev); err == nil || !strings.Contains(err.Error(), "shared hash 3") {
		t.Fatalf("path beyond the nodes: %v, want an error", err)
	}
}
