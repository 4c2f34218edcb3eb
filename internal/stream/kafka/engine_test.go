package kafka

import (
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
	k := startKafka(t)
	config := json.RawMessage(fmt.Sprintf(`{"brokers":[%q],"topic":%q,"timeout":"1s"}`, k.addr(), testTopic))
	e := streamtest.StartEngine(t, "kafka", stream.Destination{New: Factory}, config)

	e.AppendWave("a", 60)
	e.WaitDelivered(10*time.Second, "first wave delivered")

	k.stop()
	e.AppendWave("b", 60)
	e.WaitFailures(10*time.Second, 1, "failed attempts while the cluster is down")
	k.start()
	e.WaitDelivered(20*time.Second, "second wave delivered")

	before := e.Health().FailedAttempts
	h := k.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicasAfterAppend, Count: -1})
	e.AppendWave("c", 60)
	e.WaitFailures(10*time.Second, before, "failed attempts while acks are lost")
	h.Remove()
	e.AppendWave("d", 40)
	e.WaitDelivered(20*time.Second, "every wave delivered")

	want := e.Want()
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
