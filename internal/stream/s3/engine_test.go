package s3

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// TestThroughTheEngine drives the sink from the delivery engine over the
// real embedded store, through a server restart, refused requests and lost
// answers. Keys are deterministic and the engine retries the same batch, so
// the archive must hold every event exactly once, in order.
func TestThroughTheEngine(t *testing.T) {
	f := startS3(t)
	config, _ := json.Marshal(Config{Bucket: testBucket, Prefix: "trail", Endpoint: "http://" + f.addr, PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test-secret", Timeout: Duration(time.Second)})
	e := streamtest.StartEngine(t, "s3", stream.Destination{New: Factory}, config)

	e.AppendWave("a", 60)
	e.WaitDelivered(10*time.Second, "first wave delivered")

	f.stop()
	e.AppendWave("b", 60)
	e.WaitFailures(10*time.Second, 1, "failures while the server is down")
	f.start()
	e.WaitDelivered(20*time.Second, "second wave delivered")

	failed := e.Health().FailedAttempts
	f.refuse.Store(true)
	e.AppendWave("c", 60)
	e.WaitFailures(10*time.Second, failed, "failures while refused")
	f.refuse.Store(false)
	e.WaitDelivered(20*time.Second, "third wave delivered")

	failed = e.Health().FailedAttempts
	f.loseAcks.Store(2)
	e.AppendWave("d", 40)
	e.WaitDelivered(20*time.Second, "every wave delivered")
	if e.Health().FailedAttempts == failed {
		t.Fatal("no attempt failed while answers were lost")
	}

	var got []string
	for _, ev := range readArchive(t, f)["P1"] {
		got = append(got, ev.ID)
	}
	if want := e.Want(); !slices.Equal(got, want) {
		t.Fatalf("archive holds %d events, want %d exactly once in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
