package ledgerhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/server/servertest"
)

func ingest(t *testing.T, c *client.Client, prefix string, n int) []string {
	t.Helper()
	recs := make([]client.Record, n)
	for i := range recs {
		recs[i] = client.Record{ID: fmt.Sprintf("%s-%d", prefix, i), Action: "UserModified", UserID: fmt.Sprintf("u%d", i), ActorID: "admin", LoginIDs: []string{"someone@example.com"},
			Data: map[string]any{"n": i, "f": 0.5 + float64(i), "s": "é\u2028<>"}}
	}
	ids, err := c.Audit().Ingest(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestRoutesEndToEnd drives the real server through the SDK: the key, a
// checkpoint on demand, inclusion proofs of events as search returns them,
// consistency between two checkpoints, and search's withLeafIndex.
func TestRoutesEndToEnd(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	c := inst.Client(t)
	led := c.Ledger()

	key, err := led.CheckpointKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if key.Algorithm != "Ed25519" || !strings.HasPrefix(key.VerifierKey, "audittrail+") {
		t.Fatalf("key: %+v", key)
	}
	// The key is public: no Authorization needed.
	resp, err := http.Get(inst.URL + "/.well-known/audittrail/checkpoint-key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("public key endpoint: %d", resp.StatusCode)
	}

	ingest(t, c, "a", 5)
	cp1raw, err := led.NewCheckpoint(ctx, client.TreeProject)
	if err != nil {
		t.Fatal(err)
	}
	cp1, err := client.VerifyCheckpoint(cp1raw.Note, key.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if cp1.Size != 5 || cp1.Tree != inst.Creds.CompanyID+"/project/"+inst.Creds.ProjectID {
		t.Fatalf("checkpoint after 5 events: size %d tree %s", cp1.Size, cp1.Tree)
	}
	ingest(t, c, "b", 7)
	cp2raw, err := led.NewCheckpoint(ctx, client.TreeProject)
	if err != nil {
		t.Fatal(err)
	}
	cp2, err := client.VerifyCheckpoint(cp2raw.Note, key.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if cp2.Size != 12 {
		t.Fatalf("second checkpoint size %d, want 12", cp2.Size)
	}
	cons, err := led.ConsistencyProof(ctx, client.TreeProject, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Verify(cp1, cp2); err != nil {
		t.Fatalf("consistency 5→12: %v", err)
	}
	if _, err := led.ConsistencyProof(ctx, client.TreeProject, 13, 12); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("consistency from a larger size: want 400, got %v", err)
	}

	// Every record as search returns it is proven against cp2 and
	// carries its leaf index when asked.
	body := bytes.NewBufferString(`{"withLeafIndex":true,"oldestFirst":true,"size":100}`)
	req, _ := http.NewRequest(http.MethodPost, inst.URL+"/v1/mgmt/audit/search", body)
	req.Header.Set("Authorization", "Bearer "+inst.Creds.ProjectID+":"+inst.Creds.ManagementKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Audits []json.RawMessage `json:"audits"`
		Total  int               `json:"total"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Total != 12 {
		t.Fatalf("search: %d %s", resp.StatusCode, raw)
	}
	seen := map[uint64]bool{}
	for _, a := range out.Audits {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a, &m); err != nil {
			t.Fatal(err)
		}
		var idx uint64
		if err := json.Unmarshal(m["leafIndex"], &idx); err != nil {
			t.Fatalf("record without a leaf index: %s", a)
		}
		seen[idx] = true
		delete(m, "leafIndex")
		rec, _ := json.Marshal(m)
		p, err := led.VerifyEvent(ctx, rec, key.VerifierKey)
		if err != nil {
			t.Fatalf("verify %s: %v", rec, err)
		}
		if p.Index != idx {
			t.Fatalf("search says leaf %d, the proof says %d", idx, p.Index)
		}
		// Against the older checkpoint too, when it covers the event.
		if idx < cp1.Size {
			old, err := led.InclusionProof(ctx, p.ID, cp1.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := old.Verify(cp1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != 12 {
		t.Fatalf("leaf indexes %v: want 12 distinct", seen)
	}
	// The Descope response is unchanged without the option.
	recs, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{})
	if err != nil || total != 12 || len(recs) != 12 {
		t.Fatalf("plain search: %d %v", total, err)
	}
	for _, r := range recs {
		if r.LeafIndex != nil {
			t.Fatalf("a plain search returned a leaf index for %s", r.ID)
		}
	}
	recs, _, err = c.Audit().SearchAll(ctx, client.SearchOptions{WithLeafIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.LeafIndex == nil || !seen[*r.LeafIndex] {
			t.Fatalf("SDK search with leaf indexes: %s has %v", r.ID, r.LeafIndex)
		}
	}

	// Batch proofs, with an unknown id answered in place.
	ps, err := led.InclusionProofs(ctx, client.TreeProject, cp2.Size, []string{"a-0", "nope", "b-6"})
	if err != nil {
		t.Fatal(err)
	}
	if ps[1].Error == "" || ps[0].Verify(cp2) != nil || ps[2].Verify(cp2) != nil {
		t.Fatalf("batch proofs: %+v", ps)
	}
	// A proof against a size the tree has not reached is refused.
	if _, err := led.InclusionProof(ctx, "a-0", 1000); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("proof against size 1000: want 400, got %v", err)
	}
	// The company tree needs a key for every project (the bootstrap key
	// is one); it has no checkpoint until it holds an event.
	if _, err := led.NewCheckpoint(ctx, client.TreeCompany); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("checkpoint of the empty company tree: want 404, got %v", err)
	}
	if _, err := c.Audit().Ingest(ctx, []client.Record{{ID: "co-1", Level: client.LevelCompany, Action: "ProjectCreated", ActorID: "admin"}}); err != nil {
		t.Fatal(err)
	}
	cocp, err := led.NewCheckpoint(ctx, client.TreeCompany)
	if err != nil || cocp.Size != 1 || cocp.Tree != inst.Creds.CompanyID+"/company" {
		t.Fatalf("company checkpoint %+v, %v", cocp, err)
	}
	// History lists both checkpoints.
	hist, err := led.Checkpoints(ctx, client.TreeProject, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[uint64]bool{}
	for _, h := range hist {
		sizes[h.Size] = true
	}
	if !sizes[5] || !sizes[12] {
		t.Fatalf("history sizes %v", sizes)
	}
	// The text form is the signed note itself.
	req, _ = http.NewRequest(http.MethodGet, inst.URL+"/v1/mgmt/ledger/checkpoint", nil)
	req.Header.Set("Authorization", "Bearer "+inst.Creds.ProjectID+":"+inst.Creds.ManagementKey)
	req.Header.Set("Accept", "text/plain")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	note, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := client.VerifyCheckpoint(string(note), key.VerifierKey); err != nil {
		t.Fatalf("text checkpoint: %v (%q)", err, note)
	}
}

func TestReaderKeyScopedToItsProject(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	admin := inst.Client(t)
	other, err := admin.Projects().Create(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, admin, "mine", 2)
	_, secret, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "r", Role: client.RoleReader, ProjectIDs: []string{other.ID}})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := client.New(client.Config{BaseURL: inst.URL, ProjectID: other.ID, ManagementKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Ledger().InclusionProof(ctx, "mine-0", 0); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("another project's event: want 404, got %v", err)
	}
	if _, err := reader.Ledger().Checkpoint(ctx, client.TreeCompany); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("company tree with a project key: want 403, got %v", err)
	}
	// Its own project holds no event yet, so has no checkpoint.
	if _, err := reader.Ledger().Checkpoint(ctx, client.TreeProject); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("own empty project tree: want 404, got %v", err)
	}
}

func TestLedgerOff(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Configure: func(c *config.Config) { c.Ledger = false }})
	ctx := context.Background()
	c := inst.Client(t)
	ingest(t, c, "off", 2)
	if _, err := c.Ledger().CheckpointKey(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("key without a ledger: want 404, got %v", err)
	}
	if _, err := c.Ledger().Checkpoint(ctx, client.TreeProject); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("checkpoint without a ledger: want 404, got %v", err)
	}
	if _, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{WithLeafIndex: true}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("withLeafIndex without a ledger: want 400, got %v", err)
	}
	if _, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{}); err != nil || total != 2 {
		t.Fatalf("plain search without a ledger: %d %v", total, err)
	}
}
