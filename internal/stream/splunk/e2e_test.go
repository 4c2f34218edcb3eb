package splunk_test

import (
	"net/http/httptest"
	"testing"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/splunk"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: a Splunk HEC connector created through the HTTP API of the
// real server delivers every event ingested over HTTP (project-level events
// of two projects, company-level ones) as HEC envelopes, through 500s,
// dropped connections and lost answers mid-stream: every event arrives, in
// ingest order, repeated only within the batch in flight.
//
// With the ledger on, each batch's envelopes are followed by evidence
// envelopes (sourcetype audittrail:evidence, split at 10,000 bytes): the
// receiver proves every event it holds against the published key, and
// finds an event altered, dropped, two swapped, or an old batch replayed
// in what it holds, naming the event.
func TestEndToEnd(t *testing.T) {
	var hec hecStore
	rv := &streamtest.Receiver{Decode: hec.decode, Reply: `{"text":"Success","code":0}`}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("splunk", "hec", map[string]any{"url": srv.URL, "token": "hec-token", "index": "security", "host": "at-1"})
	r.Exercise([]string{id}, e2e.HTTPOutages(rv)...)
	if errs := rv.Errors(); len(errs) > 0 {
		t.Fatalf("HEC refused %d requests: %v", len(errs), errs[0])
	}
	sent := r.Sent()
	dups := e2e.CheckOnceInOrder(t, sent, e2e.InOrder(rv.IDs()), true)
	t.Logf("%d events once each in order, %d repeats of batches whose answer was lost", len(sent), dups)
	key, recs := r.VerifierKey(), hec.records()
	n, largest := e2e.CheckLogEvidence(t, key, recs)
	if largest > splunk.DefaultEvidenceMaxBytes {
		t.Fatalf("an evidence envelope's event has %d bytes, over Splunk's default TRUNCATE of %d", largest, splunk.DefaultEvidenceMaxBytes)
	}
	t.Logf("%d evidence envelopes (the largest %d bytes) prove every event", n, largest)
	e2e.TamperLogRecords(t, key, recs)
}
