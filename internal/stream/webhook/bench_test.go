package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/webhook"
)

// benchReceiver verifies each signature, decodes each batch and notes when
// every event arrived.
type benchReceiver struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	bad     int
}

func (br *benchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	if verifySignature("bench-secret", body, r.Header.Get(webhook.SignatureHeader)) != nil {
		br.mu.Lock()
		br.bad++
		br.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var b struct {
		Audits []struct {
			ID string `json:"id"`
		} `json:"audits"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	br.mu.Lock()
	for _, a := range b.Audits {
		if _, dup := br.arrived[a.ID]; !dup {
			br.arrived[a.ID] = now
		}
	}
	br.mu.Unlock()
}

func (br *benchReceiver) count() int {
	br.mu.Lock()
	defer br.mu.Unlock()
	return len(br.arrived)
}

// benchSetup runs a manager with default options over the embedded store
// and one webhook connector (HMAC-signed) to a local receiver.
func benchSetup(b *testing.B, state stream.StateStore) (store.Store, *stream.Manager, stream.View, *benchReceiver) {
	st := streamtest.OpenStore(b)
	br := &benchReceiver{arrived: map[string]time.Time{}}
	srv := httptest.NewServer(br)
	b.Cleanup(srv.Close)
	m, err := stream.New(stream.Options{
		Store: st, State: state,
		Destinations: map[string]stream.Destination{"webhook": webhook.Destination()},
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
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", Name: "bench", Type: "webhook",
		Config: json.RawMessage(fmt.Sprintf(`{"url":%q,"hmacSecret":"bench-secret"}`, srv.URL))})
	if err != nil {
		b.Fatal(err)
	}
	return st, m, v, br
}

// BenchmarkWebhookThroughput: a paused connector with 50,000 events behind
// its cursor is resumed; events/s is how fast it drains them. "file" saves
// the cursor with an fsync after every batch, as the embedded deployment
// does; "mem" shows the cost of that.
func BenchmarkWebhookThroughput(b *testing.B) {
	for _, kind := range []string{"file", "mem"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				var state stream.StateStore = stream.NewMemState()
				if kind == "file" {
					fs, err := stream.OpenFileState(filepath.Join(b.TempDir(), "streams.json"))
					if err != nil {
						b.Fatal(err)
					}
					state = fs
				}
				drain(b, state)
			}
		})
	}
}

func drain(b *testing.B, state stream.StateStore) {
	const total = 50_000
	st, m, v, br := benchSetup(b, state)
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
	for br.count() < total {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
}

// BenchmarkWebhookLatency: events are appended 10 at a time every 10 ms
// (1,000 events/s) for 5 s, with Notify after each append as the server
// does; latency runs from Append's return to the receiver's arrival.
func BenchmarkWebhookLatency(b *testing.B) {
	const appends, per = 500, 10
	for range b.N {
		fs, err := stream.OpenFileState(filepath.Join(b.TempDir(), "streams.json"))
		if err != nil {
			b.Fatal(err)
		}
		st, m, _, br := benchSetup(b, fs)
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
		for br.count() < appends*per && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		br.mu.Lock()
		var lat []time.Duration
		for id, t0 := range acked {
			if t1, ok := br.arrived[id]; ok {
				lat = append(lat, t1.Sub(t0))
			}
		}
		br.mu.Unlock()
		if len(lat) != appends*per {
			b.Fatalf("%d of %d events arrived", len(lat), appends*per)
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	}
}

// BenchmarkIngestWhileDraining: Append latency (10 events every 2 ms) while
// no connector runs, then while a webhook connector drains a 50,000-event
// backlog as fast as it can: what streaming costs ingest at its busiest.
func BenchmarkIngestWhileDraining(b *testing.B) {
	for range b.N {
		fs, err := stream.OpenFileState(filepath.Join(b.TempDir(), "streams.json"))
		if err != nil {
			b.Fatal(err)
		}
		st, m, v, br := benchSetup(b, fs)
		ctx := context.Background()
		if _, err := m.Pause(ctx, "C1", v.ID); err != nil {
			b.Fatal(err)
		}
		backlog := streamtest.Events("C1", "P1", "bl", 50_000)
		for i := 0; i < len(backlog); i += 1000 {
			if err := st.Append(ctx, backlog[i:i+1000]); err != nil {
				b.Fatal(err)
			}
		}
		measure := func(prefix string, until func(i int) bool) []time.Duration {
			var lat []time.Duration
			for i := 0; until(i); i++ {
				evs := streamtest.Events("C1", "P1", fmt.Sprintf("%s%05d", prefix, i), 10)
				start := time.Now()
				if err := st.Append(ctx, evs); err != nil {
					b.Fatal(err)
				}
				m.Notify()
				lat = append(lat, time.Since(start))
				time.Sleep(2 * time.Millisecond)
			}
			slices.Sort(lat)
			return lat
		}
		idle := measure("idle", func(i int) bool { return i < 500 })
		if _, err := m.Resume(ctx, "C1", v.ID); err != nil {
			b.Fatal(err)
		}
		busy := measure("busy", func(int) bool { return br.count() < 50_000 })
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(idle[len(idle)/2]), "idle-p50-ms")
		b.ReportMetric(ms(idle[len(idle)*99/100]), "idle-p99-ms")
		b.ReportMetric(ms(busy[len(busy)/2]), "draining-p50-ms")
		b.ReportMetric(ms(busy[len(busy)*99/100]), "draining-p99-ms")
		b.ReportMetric(float64(len(busy)), "draining-appends")
	}
}
