package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// TestThroughTheEngine drives the sink from the delivery engine over the
// real embedded store: events appended before, during and after a cluster
// restart and a stretch of refused produces arrive once each (after
// dropping repeated ids), in order.
func TestThroughTheEngine(t *testing.T) {
	ctx := context.Background()
	k := startKafka(t)
	st := streamtest.OpenStore(t)
	m, err := stream.New(streamtest.FastOptions(st, map[string]stream.Destination{"kafka": {New: Factory}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	config := json.RawMessage(fmt.Sprintf(`{"brokers":[%q],"topic":%q,"timeout":"1s"}`, k.addr(), testTopic))
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", ProjectID: "P1", Name: "e2e", Type: "kafka", Config: config})
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
	delivered := func() uint64 {
		h, err := m.Health(ctx, "C1", v.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h.Delivered
	}
	failed := func() uint64 {
		h, err := m.Health(ctx, "C1", v.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h.FailedAttempts
	}

	appendWave("a", 60)
	streamtest.Eventually(t, 10*time.Second, "first wave delivered", func() bool { return delivered() == uint64(len(want)) })

	k.stop()
	appendWave("b", 60)
	streamtest.Eventually(t, 10*time.Second, "failed attempts while the cluster is down", func() bool { return failed() >= 2 })
	k.start()
	streamtest.Eventually(t, 20*time.Second, "second wave delivered", func() bool { return delivered() == uint64(len(want)) })

	before := failed()
	h := k.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicasAfterAppend, Count: -1})
	appendWave("c", 60)
	streamtest.Eventually(t, 10*time.Second, "failed attempts while acks are lost", func() bool { return failed() > before })
	h.Remove()
	appendWave("d", 40)
	streamtest.Eventually(t, 20*time.Second, "every wave delivered", func() bool { return delivered() == uint64(len(want)) })

	var got []string
	seen := map[string]bool{}
	for _, c := range consumeAll(t, k.addr(), len(want)) {
		if c.key != "P1" || c.headers[HeaderID] != c.event.ID {
			t.Fatalf("record key %q headers %v", c.key, c.headers)
		}
		if !seen[c.event.ID] {
			seen[c.event.ID] = true
			got = append(got, c.event.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("topic holds %d distinct ids, want %d once each in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
