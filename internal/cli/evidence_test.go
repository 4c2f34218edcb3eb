package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server/servertest"
)

// liveRun is a CLI connected to a real server.
func liveRun(inst *servertest.Instance) cliRun {
	return cliRun{vars: map[string]string{
		"AUDITTRAIL_URL": inst.URL, "AUDITTRAIL_PROJECT_ID": inst.Creds.ProjectID,
		"AUDITTRAIL_MANAGEMENT_KEY": inst.Creds.ManagementKey, "AUDITTRAIL_DATA_DIR": "/nonexistent",
	}}
}

func ingestN(t *testing.T, inst *servertest.Instance, prefix string, n int) {
	t.Helper()
	recs := make([]client.Record, n)
	for i := range recs {
		recs[i] = client.Record{ID: fmt.Sprintf("%s-%d", prefix, i), Action: "UserModified", UserID: fmt.Sprintf("u%d", i),
			ActorID: "admin", Tenants: []string{"t1"}, Data: map[string]any{"i": i, "x": 1.25, "note": "é\"<"}}
	}
	if _, err := inst.Client(t).Audit().Ingest(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyBundle copies an export and its proofs under a new name.
func copyBundle(t *testing.T, src, dst string) {
	t.Helper()
	for _, suffix := range []string{"", proofsSuffix} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func wantFail(t *testing.T, name string, r result, wants ...string) {
	t.Helper()
	if r.code != exitError {
		t.Fatalf("%s: exit %d, want 1\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
	}
	t.Logf("%s:\n%s", name, r.stdout)
	for _, w := range wants {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("%s: the report does not say %q:\n%s", name, w, r.stdout)
		}
	}
}

// TestEvidenceExportAndOfflineVerify exports a real server's trail with
// proofs, verifies it without the server, then tampers with the bundle in
// every way and checks that each is refused, naming the event.
func TestEvidenceExportAndOfflineVerify(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	// A company-level event first (the oldest, the export's last line), so
	// the bundle spans two trees.
	if _, err := inst.Client(t).Audit().Ingest(context.Background(), []client.Record{{ID: "co-0", Level: client.LevelCompany,
		Action: "ProjectCreated", ActorID: "admin", Occurred: time.Now().Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	ingestN(t, inst, "ev", 20)
	cli := liveRun(inst)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "trail.ndjson")

	r := cli.run(t, "evidence", "key")
	if r.code != 0 {
		t.Fatalf("evidence key: %d %s", r.code, r.stderr)
	}
	vkey := strings.TrimSpace(r.stdout)
	if r = cli.run(t, "evidence", "export", "-o", bundle); r.code != 0 {
		t.Fatalf("evidence export: %d %s", r.code, r.stderr)
	}
	if n := len(readLines(t, bundle)); n != 21 {
		t.Fatalf("export has %d lines", n)
	}
	// Offline: a CLI with no server at all.
	offline := cliRun{vars: map[string]string{"AUDITTRAIL_URL": "http://127.0.0.1:1"}}
	if r = offline.run(t, "verify", "--verifier-key", vkey, bundle); r.code != 0 || !strings.Contains(r.stdout, "OK") ||
		!strings.Contains(r.stderr, "21 events") || !strings.Contains(r.stderr, "/company:1") {
		t.Fatalf("verify a clean bundle of two trees: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	events := readLines(t, bundle)
	idOf := func(line []byte) string {
		var h struct{ ID string }
		_ = json.Unmarshal(line, &h)
		return h.ID
	}
	tamper := func(name string, edit func(evs, proofs [][]byte) ([][]byte, [][]byte), wants ...string) {
		t.Helper()
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".ndjson")
		copyBundle(t, bundle, p)
		evs, proofs := edit(readLines(t, p), readLines(t, p+proofsSuffix))
		writeLines(t, p, evs)
		writeLines(t, p+proofsSuffix, proofs)
		wantFail(t, name, offline.run(t, "verify", "--verifier-key", vkey, p), wants...)
	}

	victim := idOf(events[5])
	tamper("altered event", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		evs[5] = bytes.Replace(evs[5], []byte(`"action":"UserModified"`), []byte(`"action":"UserDeleted"`), 1)
		return evs, ps
	}, "event "+victim, "altered")
	tamper("deleted event", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		return append(evs[:5:5], evs[6:]...), append(ps[:6:6], ps[7:]...)
	}, "removed")
	tamper("repeated event", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		return append(evs, evs[5]), append(ps, ps[6])
	}, "event "+victim, "repeated")
	tamper("two events swapped in content", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		// Event 5 now says what event 6 said, under its own id.
		var a, b map[string]any
		_ = json.Unmarshal(evs[5], &a)
		_ = json.Unmarshal(evs[6], &b)
		b["id"] = a["id"]
		evs[5], _ = json.Marshal(b)
		return evs, ps
	}, "event "+victim, "altered")
	tamper("forged proof hash", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		var p client.InclusionProof
		_ = json.Unmarshal(ps[6], &p)
		p.Hashes[0] = bytes.Repeat([]byte{1}, 32)
		ps[6], _ = json.Marshal(p)
		return evs, ps
	}, "event "+victim, "inclusion proof refused")
	tamper("forged leaf index", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		var p client.InclusionProof
		_ = json.Unmarshal(ps[6], &p)
		p.Index = (p.Index + 1) % p.Size
		ps[6], _ = json.Marshal(p)
		return evs, ps
	}, "event "+victim, "inclusion proof refused")
	tamper("forged size", func(evs, ps [][]byte) ([][]byte, [][]byte) {
		var p client.InclusionProof
		_ = json.Unmarshal(ps[6], &p)
		p.Size++
		ps[6], _ = json.Marshal(p)
		return evs, ps
	}, "event "+victim, "size")

	// Forged checkpoints: signed by another key (even one named like
	// ours), or ours with the root or size edited.
	skey, _, err := note.GenerateKey(rand.Reader, "audittrail")
	if err != nil {
		t.Fatal(err)
	}
	other, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	editHeader := func(name string, edit func(h *bundleHeader), wants ...string) {
		t.Helper()
		tamper(name, func(evs, ps [][]byte) ([][]byte, [][]byte) {
			var h bundleHeader
			_ = json.Unmarshal(ps[0], &h)
			edit(&h)
			ps[0], _ = json.Marshal(h)
			return evs, ps
		}, wants...)
	}
	editHeader("checkpoint by another key", func(h *bundleHeader) {
		text := h.Checkpoints[0][:strings.Index(h.Checkpoints[0], "\n\n")+1]
		signed, err := note.Sign(&note.Note{Text: text}, other)
		if err != nil {
			t.Fatal(err)
		}
		h.Checkpoints[0] = string(signed)
	}, "checkpoint refused")
	editHeader("checkpoint size edited", func(h *bundleHeader) {
		h.Checkpoints[0] = strings.Replace(h.Checkpoints[0], "\n20\n", "\n21\n", 1)
	}, "checkpoint refused")
	// The bundle's own key does not help a forger once the key is pinned.
	editHeader("key swapped in the bundle", func(h *bundleHeader) {
		text := h.Checkpoints[0][:strings.Index(h.Checkpoints[0], "\n\n")+1]
		signed, _ := note.Sign(&note.Note{Text: text}, other)
		h.Checkpoints[0] = string(signed)
		h.VerifierKey = "forged"
	}, "checkpoint refused")
}

// TestVerifyDetectsRollback saves checkpoints, rolls the server's data back
// to an older copy, and checks that verify against the live server says the
// log was rolled back; a server that only grew passes.
func TestVerifyDetectsRollback(t *testing.T) {
	dataDir := t.TempDir()
	inst := servertest.Start(t, servertest.Options{DataDir: dataDir})
	cli := liveRun(inst)
	saved := filepath.Join(t.TempDir(), "checkpoints.ndjson")
	ingestN(t, inst, "old", 10)
	if r := cli.run(t, "evidence", "checkpoint", "-o", saved); r.code != 0 {
		t.Fatalf("checkpoint: %d %s", r.code, r.stderr)
	}
	vkey := strings.TrimSpace(cli.run(t, "evidence", "key").stdout)

	// A copy of the whole data directory as it is now, taken while the
	// server is down (as a backup would be restored).
	inst.Stop(t)
	backup := filepath.Join(t.TempDir(), "backup")
	if out, err := exec.Command("cp", "-a", dataDir, backup).CombinedOutput(); err != nil {
		t.Fatalf("copy data dir: %v %s", err, out)
	}
	inst.Restart(t)
	cli = liveRun(inst)
	ingestN(t, inst, "new", 10)
	if r := cli.run(t, "evidence", "checkpoint", "-o", saved); r.code != 0 {
		t.Fatalf("checkpoint: %d %s", r.code, r.stderr)
	}
	// Growing is fine: both saved checkpoints are extended by the server.
	if r := cli.run(t, "verify", "--verifier-key", vkey, "--checkpoints", saved, "--live"); r.code != 0 {
		t.Fatalf("verify a server that only grew: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	inst.Stop(t)
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", backup, dataDir).CombinedOutput(); err != nil {
		t.Fatalf("restore data dir: %v %s", err, out)
	}
	inst.Restart(t)
	cli = liveRun(inst)
	r := cli.run(t, "verify", "--verifier-key", vkey, "--checkpoints", saved)
	wantFail(t, "rolled back", r, "rolled back", "events 10 to 19 are gone")
	// The older checkpoint alone still verifies: the rollback is reported
	// at the checkpoint it contradicts.
	if !strings.Contains(r.stdout, "line 2:") || strings.Contains(r.stdout, "line 1:") {
		t.Fatalf("the report should name saved checkpoint 2 only:\n%s", r.stdout)
	}
}

// FuzzVerifyBundle: a hostile bundle never crashes the verifier, and a
// bundle it accepts has every event proven (no failure, no event left
// unchecked).
func FuzzVerifyBundle(f *testing.F) {
	f.Add([]byte(`{"id":"e1","level":"project"}`+"\n"), []byte(`{"format":"audittrail-evidence/1","checkpoints":["x"]}`+"\n"+`{"id":"e1","tree":"c/project/p","index":0,"size":1,"leafHash":"AA==","hashes":[]}`+"\n"))
	f.Add([]byte("\n\n{}\n"), []byte(`{"format":"audittrail-evidence/1"}`))
	f.Fuzz(func(t *testing.T, events, proofs []byte) {
		rep, _, err := verifyBundleStreams(bytes.NewReader(events), bytes.NewReader(proofs), "audittrail+12345678+AQ==")
		if err != nil {
			return
		}
		if rep.Events > 0 && len(rep.Failures) == 0 {
			t.Fatalf("%d events accepted without a valid checkpoint", rep.Events)
		}
	})
}
