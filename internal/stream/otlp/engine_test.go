package otlp

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
// real embedded store while the collector's receiver is shut down and
// restarted, then refuses: it must receive every event once, in order.
func TestThroughTheEngine(t *testing.T) {
	ctx := context.Background()
	c := startCollector(t)
	st := streamtest.OpenStore(t)
	m, err := stream.New(streamtest.FastOptions(st, map[string]stream.Destination{"otlp": {New: Factory}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	config, _ := json.Marshal(Config{Endpoint: "http://" + c.addr})
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", ProjectID: "P1", Name: "otel", Type: "otlp", Config: config})
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

	c.stop()
	appendWave("b", 60)
	streamtest.Eventually(t, 10*time.Second, "failures while the collector is down", func() bool { return health().FailedAttempts >= 2 })
	c.start()
	streamtest.Eventually(t, 20*time.Second, "second wave delivered", caughtUp)

	failed := health().FailedAttempts
	c.refuse.Store(true)
	appendWave("c", 60)
	streamtest.Eventually(t, 10*time.Second, "failures while the pipeline refuses", func() bool { return health().FailedAttempts > failed })
	c.refuse.Store(false)
	appendWave("d", 40)
	streamtest.Eventually(t, 20*time.Second, "every wave delivered", caughtUp)

	records, _ := c.received()
	var got []string
	for _, r := range records {
		got = append(got, str(r.Attributes(), AttrID))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("collector received %d records, want %d exactly once in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
