package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// benchSetup runs a manager with default options (file state, fsync per
// batch) over the embedded store and one Kafka connector to kfake.
func benchSetup(b *testing.B) (store.Store, *stream.Manager, stream.View, *streamtest.Arrivals) {
	k := startKafka(b)
	st := streamtest.OpenStore(b)
	fs, err := stream.OpenFileState(filepath.Join(b.TempDir(), "streams.json"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := stream.New(stream.Options{
		Store: st, State: fs,
		Destinations: map[string]stream.Destination{"kafka": {New: Factory}},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(ctx) })
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", Name: "bench", Type: "kafka",
		Config: json.RawMessage(fmt.Sprintf(`{"brokers":[%q],"topic":%q}`, k.addr(), testTopic))})
	if err != nil {
		b.Fatal(err)
	}
	return st, m, v, streamtest.ConsumeKafka(b, k.addr(), testTopic, HeaderID)
}

// BenchmarkKafkaThroughput: a paused connector with 50,000 events behind
// its cursor is resumed; events/s is how fast they reach a consumer.
// go test -run '^$' -bench KafkaThroughput -benchtime 1x ./internal/stream/kafka/
func BenchmarkKafkaThroughput(b *testing.B) {
	const total = 50_000
	for range b.N {
		st, m, v, a := benchSetup(b)
		ctx := context.Background()
		if _, err := m.Pause(ctx, "C1", v.ID); err != nil {
			b.Fatal(err)
		}
		evs := streamtest.Events("C1", "P1", "t", total)
		for i := 0; i < total; i += 1000 {
			if err := st.Append(ctx, evs[i:i+1000]); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		if _, err := m.Resume(ctx, "C1", v.ID); err != nil {
			b.Fatal(err)
		}
		deadline := start.Add(5 * time.Minute)
		for a.Count() < total && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := a.Count(); n < total {
			b.Fatalf("%d of %d events arrived", n, total)
		}
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
	}
}

// BenchmarkKafkaLatency: events are appended 10 at a time every 10 ms
// (1,000 events/s) for 5 s, with Notify after each append as the server
// does; latency runs from Append's return to the consumer's fetch.
// go test -run '^$' -bench KafkaLatency -benchtime 1x ./internal/stream/kafka/
func BenchmarkKafkaLatency(b *testing.B) {
	const appends, per = 500, 10
	for range b.N {
		st, m, _, a := benchSetup(b)
		ctx := context.Background()
		acked := map[string]time.Time{}
		tick := time.NewTicker(10 * time.Millisecond)
		for i := range appends {
			<-tick.C
			evs := streamtest.Events("C1", "P1", fmt.Sprintf("l%04d", i), per)
			if err := st.Append(ctx, evs); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			m.Notify()
			for _, e := range evs {
				acked[e.ID] = now
			}
		}
		tick.Stop()
		deadline := time.Now().Add(30 * time.Second)
		for a.Count() < appends*per && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		lat, missing := a.Latencies(acked)
		if missing > 0 {
			b.Fatalf("%d of %d events arrived", len(lat), appends*per)
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	}
}
