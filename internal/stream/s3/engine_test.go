package s3

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
// real embedded store, through a server restart, refused requests and lost
// answers. Keys are deterministic and the engine retries the same batch, so
// the archive must hold every event exactly once, in order.
func TestThroughTheEngine(t *testing.T) {
	ctx := context.Background()
	f := startS3(t)
	st := streamtest.OpenStore(t)
	m, err := stream.New(streamtest.FastOptions(st, map[string]stream.Destination{"s3": {New: Factory}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	config, _ := json.Marshal(Config{Bucket: testBucket, Prefix: "trail", Endpoint: "http://" + f.addr, PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test-secret", Timeout: Duration(time.Second)})
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", ProjectID: "P1", Name: "archive", Type: "s3", Config: config})
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

	f.stop()
	appendWave("b", 60)
	streamtest.Eventually(t, 10*time.Second, "failures while the server is down", func() bool { return health().FailedAttempts >= 2 })
	f.start()
	streamtest.Eventually(t, 20*time.Second, "second wave delivered", caughtUp)

	failed := health().FailedAttempts
	f.refuse.Store(true)
	appendWave("c", 60)
	streamtest.Eventually(t, 10*time.Second, "failures while refused", func() bool { return health().FailedAttempts > failed })
	f.refuse.Store(false)
	streamtest.Eventually(t, 20*time.Second, "third wave delivered", caughtUp)

	failed = health().FailedAttempts
	f.loseAcks.Store(2)
	appendWave("d", 40)
	streamtest.Eventually(t, 20*time.Second, "every wave delivered", caughtUp)
	if health().FailedAttempts == failed {
		t.Fatal("no attempt failed while answers were lost")
	}

	var got []string
	for _, e := range readArchive(t, f)["P1"] {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("archive holds %d events, want %d exactly once in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
