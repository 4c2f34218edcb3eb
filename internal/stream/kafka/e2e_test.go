package kafka_test

import (
	"testing"

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
}
