package kafka_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/kafka"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: a Kafka connector created through the API of the real
// server receives every event ingested over HTTP, through a cluster
// restart and a stretch of produces stored but answered with an error,
// with the project as record key, in ingest order per key; a repeat is
// only ever the batch in flight.
func TestEndToEnd(t *testing.T) {
	k := kafka.StartKafka(t)
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("kafka", "kafka-e2e", map[string]any{"brokers": []string{k.Addr()}, "topic": kafka.TestTopic, "timeout": "1s"})
	var heal func()
	r.Exercise([]string{id},
		e2e.Outage{Name: "cluster restart", Down: k.Stop, Up: k.Start},
		e2e.Outage{Name: "answers lost", Down: func() { heal = k.FailProduces() }, Up: func() { heal() }},
	)

	sent := r.Sent()
	got := kafka.ConsumeAll(t, k.Addr(), len(sent))
	arrivals := make([]e2e.Arrival, len(got))
	for i, c := range got {
		arrivals[i] = e2e.Arrival{ID: c.EventID(), Channel: c.Key()}
	}
	dups := e2e.CheckOnceInOrder(t, sent, arrivals, true)
	kafka.CheckConsumed(t, sent, got)
	t.Logf("%d events over %d records (%d repeats of a batch in flight)", len(sent), len(got), dups)

	// The ledger is on: a consumer proves every record, repeats included,
	// and sees tampering.
	r.CheckChannelEvidence(channelMessages(got))
}

func channelMessages(got []kafka.Consumed) []e2e.ChannelMessage {
	msgs := make([]e2e.ChannelMessage, len(got))
	for i, c := range got {
		msgs[i] = e2e.ChannelMessage{Channel: c.Key(), Evidence: c.Evidence(), Event: c.Value()}
	}
	return msgs
}

// TestEndToEndEvidenceCut: with the evidence header bounded to 4 KiB, each
// key's records of a batch are cut into many groups, each header within
// the bound, and the consumer still proves every record.
func TestEndToEndEvidenceCut(t *testing.T) {
	const bound = 4 << 10
	kafka.SetMaxEvidenceBytes(t, bound)
	k := kafka.StartKafka(t)
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("kafka", "kafka-cut", map[string]any{"brokers": []string{k.Addr()}, "topic": kafka.TestTopic, "timeout": "5s"})
	r.Pause(id)
	r.Ingest("cut", 300) // one backlog, delivered in large batches
	r.Resume(id)
	r.WaitDelivered(60*time.Second, id)
	sent := r.Sent()
	got := kafka.ConsumeAll(t, k.Addr(), len(sent))
	groups := 0
	for _, c := range got {
		if ev := c.Evidence(); ev != nil {
			groups++
			var e client.StreamEvidence
			if err := json.Unmarshal(ev, &e); err != nil {
				t.Fatal(err)
			}
			if len(ev) > bound && len(e.Leaves) > 1 {
				t.Fatalf("an evidence header of %d bytes for %d records, bound %d", len(ev), len(e.Leaves), bound)
			}
		}
	}
	if ps := r.VerifyChannels(r.VerifierKey(), channelMessages(got)); len(ps) != 0 {
		t.Fatalf("%d problems, first %v", len(ps), ps[0])
	}
	if groups < len(sent)/20 {
		t.Fatalf("%d groups for %d records: the bound did not cut them", groups, len(got))
	}
	t.Logf("%d records proven in %d groups of at most %d bytes of evidence", len(got), groups, bound)
}
