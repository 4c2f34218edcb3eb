package nats_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"

	"github.com/audittrail/audittrail/internal/event"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/nats"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestEndToEnd: a NATS JetStream connector created through the API of the
// real server receives every event ingested over HTTP while the test's own
// nats-server is killed and restarted twice. JetStream drops the copies a
// retried batch publishes again (Nats-Msg-Id is the event id), so the
// stream holds each event exactly once, in ingest order, on the subject of
// its project.
func TestEndToEnd(t *testing.T) {
	nats.Integration(t)
	srv := nats.StartOwnServer(t)
	name, prefix := nats.UniqueStream(t, srv.URL())
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("nats", "nats-e2e", map[string]any{"url": srv.URL(), "subjectPrefix": prefix, "stream": name, "timeout": "1s"})
	// A second connector, made with a key of the second project, gets that
	// project's events only.
	name2, prefix2 := nats.UniqueStream(t, srv.URL())
	id2 := r.ProjectConnector(r.Projects[1], "nats", "nats-project", map[string]any{"url": srv.URL(), "subjectPrefix": prefix2, "stream": name2, "timeout": "1s"})
	kill := e2e.Outage{Name: "nats-server killed", Down: srv.Kill, Up: srv.Run}
	r.Exercise([]string{id, id2}, kill, kill)

	sent := r.Sent()
	got := nats.ReadStream(t, srv.URL(), name)
	arrivals := make([]e2e.Arrival, len(got))
	for i, m := range got {
		arrivals[i] = e2e.Arrival{ID: m.EventID()}
	}
	e2e.CheckOnceInOrder(t, sent, arrivals, false)
	nats.CheckReceived(t, prefix, sent, got)
	var project []event.Event
	for _, e := range sent {
		if e.Level == event.LevelProject && e.ProjectID == r.Projects[1] {
			project = append(project, e)
		}
	}
	got2 := nats.ReadStream(t, srv.URL(), name2)
	nats.CheckReceived(t, prefix2, project, got2)
	t.Logf("%d events, each once in the company-wide stream; the %d of %s once in its project's", len(sent), len(project), r.Projects[1])

	// The ledger is on: a consumer of each stream proves every message
	// and sees tampering.
	r.CheckChannelEvidence(channelMessages(got))
	if ps := r.VerifyChannels(r.VerifierKey(), channelMessages(got2)); len(ps) != 0 {
		t.Fatalf("the project's stream: %d problems, first %v", len(ps), ps[0])
	}
}

func channelMessages(got []nats.Received) []e2e.ChannelMessage {
	msgs := make([]e2e.ChannelMessage, len(got))
	for i, m := range got {
		msgs[i] = e2e.ChannelMessage{Channel: m.Subject(), Evidence: m.Evidence(), Event: m.Data()}
	}
	return msgs
}

// TestEndToEndEvidenceCut: with the evidence header bounded to 4 KiB, each
// subject's messages of a batch are cut into many groups, each header
// within the bound, and the consumer still proves every message.
func TestEndToEndEvidenceCut(t *testing.T) {
	nats.Integration(t)
	const bound = 4 << 10
	nats.SetMaxEvidenceBytes(t, bound)
	srv := nats.StartOwnServer(t)
	name, prefix := nats.UniqueStream(t, srv.URL())
	r := e2e.Start(t, servertest.Options{})
	id := r.Connector("nats", "nats-cut", map[string]any{"url": srv.URL(), "subjectPrefix": prefix, "stream": name, "timeout": "5s"})
	r.Pause(id)
	r.Ingest("cut", 300) // one backlog, delivered in large batches
	r.Resume(id)
	r.WaitDelivered(60*time.Second, id)
	sent := r.Sent()
	got := nats.ReadStream(t, srv.URL(), name)
	nats.CheckReceived(t, prefix, sent, got)
	groups := 0
	for _, m := range got {
		if ev := m.Evidence(); ev != nil {
			groups++
			var e client.StreamEvidence
			if err := json.Unmarshal(ev, &e); err != nil {
				t.Fatal(err)
			}
			if len(ev) > bound && len(e.Leaves) > 1 {
				t.Fatalf("an evidence header of %d bytes for %d messages, bound %d", len(ev), len(e.Leaves), bound)
			}
		}
	}
	if ps := r.VerifyChannels(r.VerifierKey(), channelMessages(got)); len(ps) != 0 {
		t.Fatalf("%d problems, first %v", len(ps), ps[0])
	}
	if groups < len(sent)/20 {
		t.Fatalf("%d groups for %d messages: the bound did not cut them", groups, len(got))
	}
	t.Logf("%d messages proven in %d groups of at most %d bytes of evidence", len(got), groups, bound)
}
