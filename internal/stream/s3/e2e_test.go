package s3_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/s3"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: an S3 connector created through the API of the real
// server archives every event ingested over HTTP through a server restart,
// a stretch of 503 SlowDown and uploads stored but never answered. Object
// keys are deterministic, so a retried batch overwrites what it stored:
// the archive holds each event exactly once, as gzip NDJSON objects under
// trail/<project or company>/YYYY/MM/DD/, in ingest order per project and
// day.
func TestEndToEnd(t *testing.T) {
	f := s3.StartS3(t)
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("s3", "archive", map[string]any{"bucket": s3.TestBucket, "prefix": "trail", "endpoint": "http://" + f.Addr(),
		"pathStyle": true, "accessKeyId": "test", "secretAccessKey": "test-secret", "timeout": "1s"})
	r.Exercise([]string{id},
		e2e.Outage{Name: "server restart", Down: f.Stop, Up: f.Start},
		e2e.Outage{Name: "503 SlowDown", Down: func() { f.Refuse(true) }, Up: func() { f.Refuse(false) }},
		e2e.Outage{Name: "answers lost", Down: func() { f.LoseAnswers(3) }, Up: func() {}},
	)

	sent := r.Sent()
	got := s3.ReadArchive(t, f)
	var arrivals []e2e.Arrival
	for dir, evs := range got {
		for _, e := range evs {
			day := time.UnixMilli(e.Occurred).UTC().Format("2006/01/02")
			arrivals = append(arrivals, e2e.Arrival{ID: e.ID, Channel: dir + "/" + day})
		}
	}
	e2e.CheckOnceInOrder(t, sent, arrivals, false)
	s3.CheckArchive(t, sent, got)
	t.Logf("%d events archived once each in %d directories", len(sent), len(got))

	checkEvidence(t, r, sent, s3.ReadEvidence(t, f))
}

// checkEvidence is the receiver's side: every batch's evidence object,
// read in key order with the objects it names, proves them (and so every
// sent event), and each way of tampering with the archive is reported by
// client.StreamVerifier naming the event.
func checkEvidence(t *testing.T, r *e2e.Run, sent []event.Event, batches []s3.ArchivedBatch) {
	t.Helper()
	key := r.VerifierKey()
	type batch struct {
		evidence []byte
		objects  map[string][]byte
	}
	verify := func(bs []batch) []client.EvidenceProblem {
		t.Helper()
		v := &client.StreamVerifier{VerifierKey: key}
		var all []client.EvidenceProblem
		for _, b := range bs {
			ps, err := v.VerifyS3Batch(b.evidence, b.objects)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ps...)
		}
		return all
	}
	clean := make([]batch, len(batches))
	proven := map[string]bool{}
	for i, b := range batches {
		clean[i] = batch{b.Evidence(), b.Objects()}
		var s client.S3Evidence
		if err := json.Unmarshal(b.Evidence(), &s); err != nil {
			t.Fatal(err)
		}
		for _, l := range s.Evidence.Leaves {
			proven[l.ID] = true
		}
	}
	if ps := verify(clean); len(ps) != 0 {
		t.Fatalf("the archive as written: %d problems, first %v", len(ps), ps[0])
	}
	for _, e := range sent {
		if !proven[e.ID] {
			t.Fatalf("event %s is in no batch's evidence", e.ID)
		}
	}
	t.Logf("%d batches proven, covering every one of the %d events", len(batches), len(sent))

	want := func(name string, bs []batch, id, reason string) {
		t.Helper()
		for _, p := range verify(bs) {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				t.Logf("%s: %s", name, p)
				return
			}
		}
		t.Fatalf("%s: want a problem for %q about %q, got %v", name, id, reason, verify(bs))
	}
	// A batch past the middle with an object of three lines or more, the
	// second of which is followed in its tree by another of the batch.
	var (
		at            = -1
		obj           string
		lines         [][]byte
		second, after string // ids: line 2, and the next leaf of its tree
	)
	for i := len(batches) / 2; i < len(batches) && at < 0; i++ {
		var s client.S3Evidence
		_ = json.Unmarshal(clean[i].evidence, &s)
		for _, o := range s.Objects {
			if len(o.Lines) < 3 {
				continue
			}
			l := s.Evidence.Leaves[o.Lines[1]]
			for _, n := range s.Evidence.Leaves {
				if n.Tree == l.Tree && n.Index == l.Index+1 {
					at, obj, second, after = i, o.Key, l.ID, n.ID
					lines = bytes.SplitAfter(clean[i].objects[o.Key], []byte("\n"))
				}
			}
			if at >= 0 {
				break
			}
		}
	}
	if at < 0 {
		t.Fatal("no batch with an object of three lines")
	}
	with := func(edit func(ls [][]byte) [][]byte) []batch {
		out := append([]batch(nil), clean...)
		objs := maps.Clone(clean[at].objects)
		objs[obj] = bytes.Join(edit(append([][]byte(nil), lines...)), nil)
		out[at] = batch{clean[at].evidence, objs}
		return out
	}
	want("field altered", with(func(ls [][]byte) [][]byte {
		ls[1] = bytes.Replace(ls[1], []byte(`"action":"`), []byte(`"action":"x`), 1)
		return ls
	}), second, "altered")
	want("event dropped", with(func(ls [][]byte) [][]byte { return append(ls[:1], ls[2:]...) }), after, "missing")
	want("two lines swapped", with(func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls }), second, "reordered")
	// The first batch written again after the others (its objects and
	// evidence object copied back): its checkpoints are older.
	var first client.S3Evidence
	_ = json.Unmarshal(clean[0].evidence, &first)
	want("old batch replayed", append(append([]batch(nil), clean...), clean[0]), first.Evidence.Leaves[0].ID, "old batch replayed")
}
