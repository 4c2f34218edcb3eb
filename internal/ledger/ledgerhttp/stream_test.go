package ledgerhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server/servertest"
)

// webhookReceiver records the bodies a webhook connector posts.
type webhookReceiver struct {
	mu     sync.Mutex
	bodies [][]byte
	events int
}

func (rv *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body struct {
		Audits []json.RawMessage `json:"audits"`
	}
	if json.Unmarshal(b, &body) != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	rv.mu.Lock()
	rv.bodies = append(rv.bodies, b)
	rv.events += len(body.Audits)
	rv.mu.Unlock()
}

func (rv *webhookReceiver) waitEvents(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		rv.mu.Lock()
		got, bodies := rv.events, append([][]byte(nil), rv.bodies...)
		rv.mu.Unlock()
		if got >= n {
			return bodies
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the receiver got %d events, want %d", rv.events, n)
	return nil
}

type webhookBody struct {
	Audits   []json.RawMessage      `json:"audits"`
	Evidence *client.StreamEvidence `json:"evidence"`
}

func decodeBody(t *testing.T, b []byte) webhookBody {
	t.Helper()
	var wb webhookBody
	if err := json.Unmarshal(b, &wb); err != nil {
		t.Fatal(err)
	}
	return wb
}

func encodeBody(t *testing.T, wb webhookBody) []byte {
	t.Helper()
	b, err := json.Marshal(wb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStreamBatchesCarryEvidence runs a real server with a webhook
// connector: every batch it delivers is proven by its evidence, and a
// receiver detects an event removed, repeated or altered on the way.
func TestStreamBatchesCarryEvidence(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	c := inst.Client(t)
	rv := &webhookReceiver{}
	hook := httptest.NewServer(rv)
	t.Cleanup(hook.Close)
	if _, err := c.Connectors().Create(ctx, client.ConnectorOptions{Name: "siem", Type: "webhook", ProjectID: inst.Creds.ProjectID,
		Config: map[string]any{"url": hook.URL}}); err != nil {
		t.Fatal(err)
	}
	// A second connector masks personal data: its batches are proven by
	// place (masked copies no longer hash to their leaves).
	masked := &webhookReceiver{}
	maskedHook := httptest.NewServer(masked)
	t.Cleanup(maskedHook.Close)
	if _, err := c.Connectors().Create(ctx, client.ConnectorOptions{Name: "masked", Type: "webhook", ProjectID: inst.Creds.ProjectID,
		MaskPII: true, Config: map[string]any{"url": maskedHook.URL}}); err != nil {
		t.Fatal(err)
	}
	key, err := c.Ledger().CheckpointKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Three ingests, each delivered before the next, so the stream holds
	// several batches.
	total := 0
	for _, prefix := range []string{"s1", "s2", "s3"} {
		ingest(t, c, prefix, 8)
		total += 8
		rv.waitEvents(t, total)
	}
	bodies := rv.waitEvents(t, total)
	if len(bodies) < 3 {
		t.Fatalf("%d bodies for 3 separate ingests", len(bodies))
	}

	// A receiver verifies the whole stream.
	v := &client.StreamVerifier{VerifierKey: key.VerifierKey}
	for i, b := range bodies {
		ps, err := v.VerifyWebhookBody(b)
		if err != nil {
			t.Fatalf("body %d: %v\n%s", i, err, b)
		}
		if len(ps) != 0 {
			t.Fatalf("body %d of a clean stream: %v", i, ps)
		}
	}

	vm := &client.StreamVerifier{VerifierKey: key.VerifierKey}
	for i, b := range masked.waitEvents(t, total) {
		wb := decodeBody(t, b)
		if wb.Evidence == nil || !wb.Evidence.Masked {
			t.Fatalf("masked body %d: evidence %+v", i, wb.Evidence)
		}
		if ps, err := vm.VerifyWebhookBody(b); err != nil || len(ps) != 0 {
			t.Fatalf("masked body %d: %v %v", i, ps, err)
		}
	}
	if strings.Contains(inst.Logs(), "TAMPERING") {
		t.Fatalf("masking raised a tampering alarm:\n%s", inst.Logs())
	}

	// Redelivery (at least once) is not a problem.
	v = &client.StreamVerifier{VerifierKey: key.VerifierKey}
	for _, b := range append([][]byte{bodies[0]}, bodies...) {
		if ps, _ := v.VerifyWebhookBody(b); len(ps) != 0 {
			t.Fatalf("a redelivered batch: %v", ps)
		}
	}

	// Tampering on the way, each detected and pinned to the event.
	check := func(name string, tampered [][]byte, wantID, wantReason string) {
		t.Helper()
		v := &client.StreamVerifier{VerifierKey: key.VerifierKey}
		var all []client.EvidenceProblem
		for _, b := range tampered {
			ps, err := v.VerifyWebhookBody(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			all = append(all, ps...)
		}
		for _, p := range all {
			if (wantID == "" || p.ID == wantID) && strings.Contains(p.Reason, wantReason) {
				t.Logf("%s: %s", name, p)
				return
			}
		}
		t.Fatalf("%s: want a problem for %q about %q; got %v", name, wantID, wantReason, all)
	}
	withBody := func(i int, edit func(wb *webhookBody)) [][]byte {
		out := append([][]byte(nil), bodies...)
		wb := decodeBody(t, bodies[i])
		edit(&wb)
		out[i] = encodeBody(t, wb)
		return out
	}
	idOf := func(raw json.RawMessage) string {
		var h struct{ ID string }
		_ = json.Unmarshal(raw, &h)
		return h.ID
	}

	// A whole batch lost: the next batch's first event follows a gap.
	lost := append([][]byte{bodies[0]}, bodies[2:]...)
	check("batch lost", lost, idOf(decodeBody(t, bodies[2]).Audits[0]), "missing")

	// One event removed from a batch with its proof.
	first := decodeBody(t, bodies[1])
	check("event removed", withBody(1, func(wb *webhookBody) {
		wb.Audits = append(wb.Audits[:1:1], wb.Audits[2:]...)
		wb.Evidence.Leaves = append(wb.Evidence.Leaves[:1:1], wb.Evidence.Leaves[2:]...)
	}), idOf(first.Audits[2]), "missing")

	// One event repeated inside a batch.
	check("event repeated", withBody(1, func(wb *webhookBody) {
		wb.Audits = append(wb.Audits, wb.Audits[0])
		wb.Evidence.Leaves = append(wb.Evidence.Leaves, wb.Evidence.Leaves[0])
	}), idOf(first.Audits[0]), "repeated")

	// One event altered.
	check("event altered", withBody(1, func(wb *webhookBody) {
		wb.Audits[3] = bytes.Replace(wb.Audits[3], []byte(`"UserModified"`), []byte(`"UserDeleted"`), 1)
	}), idOf(first.Audits[3]), "altered")

	// A checkpoint whose root was edited no longer verifies.
	check("checkpoint root edited", withBody(1, func(wb *webhookBody) {
		lines := strings.Split(wb.Evidence.Checkpoints[0], "\n")
		root := []byte(lines[2])
		root[0] ^= 1
		lines[2] = string(root)
		wb.Evidence.Checkpoints = []string{strings.Join(lines, "\n")}
	}), "", "checkpoint refused")
}
