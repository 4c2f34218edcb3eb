package client_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/client"
)

// logRecord is one record of a log destination: an event or an evidence.
type logRecord struct {
	event    json.RawMessage
	evidence *client.StreamEvidence
}

// records is the batch [from, to) proven against size, as a log
// destination receives it: the events, then the evidence.
func (f *streamFixture) records(from, to int, size uint64) []logRecord {
	b := f.batch(from, to, size)
	var out []logRecord
	for _, a := range b["audits"].([]json.RawMessage) {
		out = append(out, logRecord{event: a})
	}
	ev := b["evidence"].(client.StreamEvidence)
	return append(out, logRecord{evidence: &ev})
}

func verifyLog(t *testing.T, key string, recs []logRecord) []client.EvidenceProblem {
	t.Helper()
	s := &client.LogStream{Verifier: &client.StreamVerifier{VerifierKey: key}}
	var problems []client.EvidenceProblem
	for _, r := range recs {
		if r.evidence == nil {
			s.Event(r.event)
			continue
		}
		ps, err := s.Evidence(r.evidence)
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, ps...)
	}
	return append(problems, s.Finish()...)
}

func TestLogStreamDetectsTampering(t *testing.T) {
	f := newStreamFixture(t, 40)
	stream := func() []logRecord {
		var out []logRecord
		out = append(out, f.records(0, 10, 10)...)
		out = append(out, f.records(10, 20, 20)...)
		out = append(out, f.records(20, 30, 30)...)
		out = append(out, f.records(20, 30, 30)...) // the batch in flight, again
		return append(out, f.records(30, 40, 40)...)
	}
	if ps := verifyLog(t, f.k.vkey, stream()); len(ps) != 0 {
		t.Fatalf("clean stream: %v", ps)
	}
	want := func(name string, ps []client.EvidenceProblem, id, reason string) {
		t.Helper()
		for _, p := range ps {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				return
			}
		}
		t.Errorf("%s: want a problem for %q about %q, got %v", name, id, reason, ps)
	}
	// Records 0-9 are batch 0's events, 10 its evidence, 11-20 batch 1's
	// events.
	recs := stream()
	recs[13].event = []byte(`{"id":"e12","action":"B","data":{"n":12}}`)
	want("altered", verifyLog(t, f.k.vkey, recs), "e12", "altered")

	recs = stream()
	recs = append(recs[:14:14], recs[15:]...)
	want("dropped", verifyLog(t, f.k.vkey, recs), "e13", "missing")

	recs = stream()
	recs[12], recs[13] = recs[13], recs[12]
	want("swapped", verifyLog(t, f.k.vkey, recs), "e11", "reordered")

	recs = append(stream(), f.records(10, 20, 20)...)
	want("replayed", verifyLog(t, f.k.vkey, recs), "e15", "replayed")

	// A batch lost whole (events and evidence): the next one reports the
	// gap.
	recs = stream()
	recs = append(recs[:11:11], recs[22:]...)
	want("batch lost", verifyLog(t, f.k.vkey, recs), "e20", "leaves 10 to 19 before it were never delivered")

	// The evidence of a batch lost, its events kept: they are unproven.
	recs = stream()
	recs = append(recs[:21:21], recs[22:]...)
	ps := verifyLog(t, f.k.vkey, recs)
	want("evidence lost", ps, "e14", "unproven")
	want("evidence lost", ps, "e20", "missing")

	// A redelivered copy that differs from the proven one.
	recs = stream()
	recs[38].event = []byte(`{"id":"e25","action":"A","data":{"n":-1}}`)
	want("altered copy", verifyLog(t, f.k.vkey, recs), "e25", "altered")
}
