package nats_test

import (
	"testing"

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
	nats.CheckReceived(t, prefix2, project, nats.ReadStream(t, srv.URL(), name2))
	t.Logf("%d events, each once in the company-wide stream; the %d of %s once in its project's", len(sent), len(project), r.Projects[1])
}
