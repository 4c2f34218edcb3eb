package nats

import (
	"context"
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
	ctx := context.Background()
	srv := startOwnServer(t)
	name, prefix := uniqueStream(t, srv.url)
	st := streamtest.OpenStore(t)
	m, err := stream.New(streamtest.FastOptions(st, map[string]stream.Destination{"nats": {New: Factory}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	config, _ := json.Marshal(Config{URL: srv.url, SubjectPrefix: prefix, Stream: name, Timeout: Duration(time.Second)})
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", ProjectID: "P1", Name: "e2e", Type: "nats", Config: config})
	if err != nil {
		t.Fatalf("create connector: %v", err)
	}

	var want []string
	appendWave := func(prefix string, n int) {
		t.Helper()
		evs := streamtest.Events("C1", "P1", prefix, n)
		for i := 0; i < n; i += 7 {
			if err := st.Append(ctx, evs[i:min(i+7, n)]); err != nil {
				t.Fatal(err)
			}
			m.Notify()
		}
		want = append(want, streamtest.IDs(evs)...)
	}
	health := func() stream.Health {
		h, err := m.Health(ctx, "C1", v.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	caughtUp := func() bool { return health().Delivered == uint64(len(want)) }

	appendWave("a", 60)
	streamtest.Eventually(t, 10*time.Second, "first wave delivered", caughtUp)
	for _, wave := range []string{"b", "c"} {
		failed := health().FailedAttempts
		srv.kill()
		appendWave(wave, 60)
		streamtest.Eventually(t, 10*time.Second, "failures while nats-server is down", func() bool { return health().FailedAttempts > failed })
		srv.run()
		streamtest.Eventually(t, 20*time.Second, "wave "+wave+" delivered", caughtUp)
	}
	appendWave("d", 40)
	streamtest.Eventually(t, 10*time.Second, "every wave delivered", caughtUp)

	var got []string
	for _, r := range readStream(t, srv.url, name) {
		if r.subject != prefix+".P1" {
			t.Fatalf("event %s on subject %s", r.event.ID, r.subject)
		}
		got = append(got, r.event.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stream holds %d events, want %d exactly once in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
