package otlp_test

import (
	"encoding/json"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/otlp"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: two OTLP connectors created through the HTTP API of the
// real server (JSON bodies gzipped, structured bodies uncompressed) send
// every event ingested over HTTP (project-level events of two projects,
// company-level ones) to the OpenTelemetry Collector's OTLP receiver, in
// process, through the receiver shutting down and its pipeline refusing
// mid-stream. Each must hold every event, in ingest order, repeated only
// within a batch in flight, each decoded into the log record it should be.
//
// With the ledger on, each batch's records are followed by a record marked
// audit.evidence whose body is the evidence: the receiver proves every
// event it holds (the JSON body, or the structured body turned back into
// JSON) against the published key, and finds an event altered, dropped,
// two swapped, or an old batch replayed in what it holds, naming the
// event.
func TestEndToEnd(t *testing.T) {
	jsonCol, structuredCol := otlp.StartCollector(t), otlp.StartCollector(t)
	cols := []*otlp.Collector{jsonCol, structuredCol}
	r := e2e.Start(t, servertest.Options{})
	config := func(c *otlp.Collector, body, compression string) map[string]any {
		return map[string]any{"endpoint": "http://" + c.Addr(), "body": body, "compression": compression,
			"serviceName": "audittrail-test", "resourceAttributes": map[string]string{"deployment.environment": "test"},
			"headers": map[string]string{"X-Api-Key": "k"}}
	}
	ids := []string{
		r.Connector("otlp", "otel-json", config(jsonCol, otlp.BodyJSON, "gzip")),
		r.Connector("otlp", "otel-structured", config(structuredCol, otlp.BodyStructured, "none")),
	}
	each := func(f func(c *otlp.Collector)) func() {
		return func() {
			for _, c := range cols {
				f(c)
			}
		}
	}
	r.Exercise(ids,
		e2e.Outage{Name: "collector restart", Down: each((*otlp.Collector).Stop), Up: each((*otlp.Collector).Start)},
		e2e.Outage{Name: "pipeline refuses (503)", Down: each(func(c *otlp.Collector) { c.Refuse(true) }), Up: each(func(c *otlp.Collector) { c.Refuse(false) })},
	)
	for i, body := range []string{otlp.BodyJSON, otlp.BodyStructured} {
		sent := r.SentTo(ids[i])
		all, allRes := cols[i].Received()
		var got []plog.LogRecord
		var res []pcommon.Map
		var recs []e2e.LogRecord
		for j, rec := range all {
			if ev, ok := rec.Attributes().Get(otlp.AttrEvidence); ok && ev.Bool() {
				if rec.Body().Type() != pcommon.ValueTypeStr || len(rec.Body().Str()) > otlp.MaxEvidenceBytes {
					t.Fatalf("evidence record with a body of type %v", rec.Body().Type())
				}
				recs = append(recs, e2e.LogRecord{Evidence: json.RawMessage(rec.Body().Str())})
				continue
			}
			got, res = append(got, rec), append(res, allRes[j])
			// The event's wire JSON: the body, or the structured body
			// turned back into JSON (the verifier canonicalises it).
			raw := []byte(rec.Body().Str())
			if body == otlp.BodyStructured {
				var err error
				if raw, err = json.Marshal(rec.Body().Map().AsRaw()); err != nil {
					t.Fatal(err)
				}
			}
			recs = append(recs, e2e.LogRecord{Event: raw})
		}
		// A request the receiver took just as it shut down may come again;
		// the first copies must be every event once, in order.
		arrivals := make([]e2e.Arrival, len(got))
		for j, rec := range got {
			id, _ := rec.Attributes().Get(otlp.AttrID)
			arrivals[j] = e2e.Arrival{ID: id.AsString()}
		}
		dups := e2e.CheckOnceInOrder(t, sent, arrivals, true)
		seen := map[string]bool{}
		var first []plog.LogRecord
		var firstRes []pcommon.Map
		for j, a := range arrivals {
			if !seen[a.ID] {
				seen[a.ID] = true
				first, firstRes = append(first, got[j]), append(firstRes, res[j])
			}
		}
		otlp.CheckRecords(t, body, sent, first, firstRes)
		t.Logf("%s bodies: %d events once each in order, %d repeats", body, len(sent), dups)
		key := r.VerifierKey()
		n, largest := e2e.CheckLogEvidence(t, key, recs)
		t.Logf("%s bodies: %d evidence records (the largest %d bytes) prove every event", body, n, largest)
		e2e.TamperLogRecords(t, key, recs)
	}
}
