package sumo_test

import (
	"net/http/httptest"
	"testing"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: a Sumo Logic connector created through the HTTP API of the
// real server posts every event ingested over HTTP (project-level events
// of two projects, company-level ones) as NDJSON with the source headers,
// through 500s, dropped connections and lost answers mid-stream: every
// event arrives, in ingest order, repeated only within the batch in
// flight.
//
// With the ledger on, each batch's lines are followed by {"evidence":…}
// lines (split under 60,000 bytes): the receiver proves every event it
// holds against the published key, and finds an event altered, dropped,
// two swapped, or an old batch replayed in what it holds, naming the
// event.
func TestEndToEnd(t *testing.T) {
	var store sumoStore
	rv := &streamtest.Receiver{Decode: store.decode}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("sumo", "sumo", map[string]any{"url": srv.URL + "/receiver/v1/http/" + token, "category": "prod/audit", "name": "audittrail", "host": "at-1"})
	r.Exercise([]string{id}, e2e.HTTPOutages(rv)...)
	if errs := rv.Errors(); len(errs) > 0 {
		t.Fatalf("the collector refused %d requests: %v", len(errs), errs[0])
	}
	sent := r.Sent()
	dups := e2e.CheckOnceInOrder(t, sent, e2e.InOrder(rv.IDs()), true)
	t.Logf("%d events once each in order, %d repeats of batches whose answer was lost", len(sent), dups)
	key, recs := r.VerifierKey(), store.Records()
	n, largest := e2e.CheckLogEvidence(t, key, recs)
	t.Logf("%d evidence lines (the largest %d bytes) prove every event", n, largest)
	e2e.TamperLogRecords(t, key, recs)
}
