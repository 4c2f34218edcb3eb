package nats

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// TestThroughTheEngine drives the sink from the delivery engine over the
// real embedded store while the test's own nats-server is killed and
// restarted twice. JetStream's duplicate window drops the events a retried
// batch publishes again, so the stream must hold every event exactly once,
// in order.
func TestThroughTheEngine(t *testing.T) {
	integration(t)
	srv := startOwnServer(t)
	name, prefix := uniqueStream(t, srv.url)
	config, _ := json.Marshal(Config{URL: srv.url, SubjectPrefix: prefix, Stream: name, Timeout: Duration(time.Second)})
	e := streamtest.StartEngine(t, "nats", stream.Destination{New: Factory}, config)

	e.AppendWave("a", 60)
	e.WaitDelivered(10*time.Second, "first wave delivered")
	for _, wave := range []string{"b", "c"} {
		failed := e.Health().FailedAttempts
		srv.kill()
		e.AppendWave(wave, 60)
		e.WaitFailures(10*time.Second, failed, "failures while nats-server is down")
		srv.run()
		e.WaitDelivered(20*time.Second, "wave "+wave+" delivered")
	}
	e.AppendWave("d", 40)
	e.WaitDelivered(10*time.Second, "every wave delivered")

	var got []string
	for _, r := range readStream(t, srv.url, name) {
		if r.subject != prefix+".P1" {
			t.Fatalf("event %s on subject %s", r.event.ID, r.subject)
		}
		got = append(got, r.event.ID)
	}
	if want := e.Want(); !slices.Equal(got, want) {
		t.Fatalf("stream holds %d events, want %d exactly once in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
