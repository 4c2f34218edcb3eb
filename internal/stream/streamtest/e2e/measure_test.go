package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/kafka"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// TestMeasureDelivery prints stream delivery figures through the real
// server (in-process, embedded store, fsync on every commit), ingesting
// over HTTP with the SDK; the receivers run in the same process and share
// the CPUs. On one server: ingest latency (per request of 10 events, at a
// steady 1,000 events/s) with no connector, then with a webhook and a
// Kafka (kfake) connector up, with the end-to-end latency from the ingest
// acknowledgement to each receiver, then with both destinations down
// (refusing connections). On a second server: each connector paused while
// a backlog is ingested, then resumed: events/s until its receiver has the
// whole backlog. All of it twice: with the tamper-evident ledger (the
// default: each batch carries inclusion proofs) and without. Run it with
//
//	AUDITTRAIL_MEASURE=1 go test ./internal/stream/streamtest/e2e -run MeasureDelivery -v -timeout 30m
//
// AUDITTRAIL_MEASURE_EVENTS sets the backlog (default 100000),
// AUDITTRAIL_MEASURE_SECONDS each steady phase (default 10).
func TestMeasureDelivery(t *testing.T) {
	if os.Getenv("AUDITTRAIL_MEASURE") != "1" {
		t.Skip("measurement: set AUDITTRAIL_MEASURE=1")
	}
	backlog := envInt("AUDITTRAIL_MEASURE_EVENTS", 100_000)
	phase := time.Duration(envInt("AUDITTRAIL_MEASURE_SECONDS", 10)) * time.Second
	for _, ledger := range []bool{true, false} {
		t.Run(fmt.Sprintf("ledger=%v", ledger), func(t *testing.T) {
			measureDelivery(t, backlog, phase, servertest.Options{Configure: func(c *config.Config) { c.Ledger = ledger }})
		})
	}
}

// measureDelivery runs the phases on servers started with opts.
func measureDelivery(t *testing.T, backlog int, phase time.Duration, opts servertest.Options) {
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at start: %s", strings.TrimSpace(string(load)))
	}
	// Steady phases on a fresh server, then the backlogs on another, so
	// that the flushes and merges a backlog leaves behind do not weigh on
	// the steady figures.
	r := e2e.Start(t, opts)
	hook, kaf := startWebhookReceiver(t), startKafkaReceiver(t)
	dests := []destination{hook.destination(), kaf.destination()}

	// 1. Ingest latency with no connector, as the baseline.
	_, idle := steady(t, r, "idle", phase)
	t.Logf("ingest, no connector:           p50 %6.2f ms   p99 %6.2f ms per request of 10", ms(idle, 0.50), ms(idle, 0.99))

	// 2. A steady 1,000 events/s with both destinations up.
	for _, d := range dests {
		r.Connector(d.typ, d.typ+"-live", d.config)
	}
	acks, up := steady(t, r, "live", phase)
	for _, d := range dests {
		var lat []time.Duration
		streamtest.Eventually(t, time.Minute, d.typ+" to receive the steady phase", func() bool {
			var missing int
			lat, missing = d.arrivals.Latencies(acks)
			return missing == 0
		})
		t.Logf("%-8s end to end at 1,000 events/s: p50 %6.2f ms   p99 %6.2f ms   (ingest acknowledged → receiver, %d events)",
			d.typ, ms(lat, 0.50), ms(lat, 0.99), len(lat))
	}
	t.Logf("ingest, both destinations up:   p50 %6.2f ms   p99 %6.2f ms per request of 10", ms(up, 0.50), ms(up, 0.99))

	// 3. The same load with both destinations down (connections refused).
	hook.srv.Close()
	kaf.cluster.Close()
	_, down := steady(t, r, "down", phase)
	t.Logf("ingest, both destinations down: p50 %6.2f ms   p99 %6.2f ms per request of 10", ms(down, 0.50), ms(down, 0.99))
	r.Inst.Stop(t)

	// 4. Draining a backlog, on a second server.
	r = e2e.Start(t, opts)
	hook, kaf = startWebhookReceiver(t), startKafkaReceiver(t)
	dests = []destination{hook.destination(), kaf.destination()}
	for _, d := range dests {
		id := r.Connector(d.typ, d.typ+"-backlog", d.config)
		r.Pause(id)
		before := d.arrivals.Count()
		start := time.Now()
		ingestBacklog(t, r, backlog)
		ingested := time.Since(start)
		start = time.Now()
		r.Resume(id)
		streamtest.Eventually(t, 15*time.Minute, d.typ+" to drain the backlog", func() bool { return d.arrivals.Count() >= before+backlog })
		drained := time.Since(start)
		t.Logf("%-8s drains a backlog of %d events in %5.1f s: %7.0f events/s   (backlog ingested over HTTP at %.0f events/s)",
			d.typ, backlog, drained.Seconds(), float64(backlog)/drained.Seconds(), float64(backlog)/ingested.Seconds())
		r.Delete(id)
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at the end: %s", strings.TrimSpace(string(load)))
	}
}

// destination is a connector type, its configuration and what its
// receiver got.
type destination struct {
	typ      string
	config   any
	arrivals *streamtest.Arrivals
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// ms is the q-quantile of d in milliseconds.
func ms(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}

// ingestBacklog sends n events in batches of 1,000 from 4 senders.
func ingestBacklog(t *testing.T, r *e2e.Run, n int) {
	t.Helper()
	const batch, senders = 1000, 4
	batches := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for size := range batches {
				if _, err := r.Client.Audit().Ingest(context.Background(), r.Records("backlog", size)); err != nil {
					errs <- err
					for range batches {
					}
					return
				}
			}
		}()
	}
	for i := 0; i < n; i += batch {
		batches <- min(batch, n-i)
	}
	close(batches)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("ingest the backlog: %v", err)
	default:
	}
}

// steady ingests 1,000 events/s for d, 10 events per request, 100
// requests a second whatever the latency of earlier ones. It returns when
// each event was acknowledged, and each request's latency.
func steady(t *testing.T, r *e2e.Run, prefix string, d time.Duration) (acks map[string]time.Time, lat []time.Duration) {
	t.Helper()
	acks = map[string]time.Time{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := 0
	start := time.Now()
	for i := 0; ; i++ {
		// Request i leaves at start+10ms·i, or at once when the sender is
		// late: the rate holds on average whatever the scheduler does.
		due := start.Add(time.Duration(i) * 10 * time.Millisecond)
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		recs := r.Records(prefix, 10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			ids, err := r.Client.Audit().Ingest(context.Background(), recs)
			end := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			lat = append(lat, end.Sub(begin))
			for _, id := range ids {
				acks[id] = end
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d ingest requests failed in the steady phase", failed)
	}
	return acks, lat
}

// webhookReceiver is streamtest's HTTP receiver noting when each event
// arrived.
type webhookReceiver struct {
	srv      *httptest.Server
	arrivals *streamtest.Arrivals
}

func startWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{arrivals: streamtest.NewArrivals()}
	rv := &streamtest.Receiver{Decode: func(_ *http.Request, body []byte) ([]string, error) {
		now := time.Now()
		var in struct {
			Audits []struct {
				ID string `json:"id"`
			} `json:"audits"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, err
		}
		ids := make([]string, len(in.Audits))
		for i, a := range in.Audits {
			ids[i] = a.ID
		}
		w.arrivals.Note(now, ids...)
		return ids, nil
	}}
	w.srv = httptest.NewServer(rv)
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) destination() destination {
	return destination{"webhook", map[string]any{"url": w.srv.URL, "hmacSecret": "measure"}, w.arrivals}
}

const measureTopic = "audit-measure"

// kafkaReceiver is a kfake cluster and a consumer noting when each event
// arrived.
type kafkaReceiver struct {
	cluster  *kfake.Cluster
	addr     string
	arrivals *streamtest.Arrivals
}

func startKafkaReceiver(t *testing.T) *kafkaReceiver {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, measureTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := &kafkaReceiver{cluster: c, addr: c.ListenAddrs()[0]}
	k.arrivals = streamtest.ConsumeKafka(t, k.addr, measureTopic, kafka.HeaderID)
	return k
}

func (k *kafkaReceiver) destination() destination {
	return destination{"kafka", map[string]any{"brokers": []string{k.addr}, "topic": measureTopic, "timeout": "10s"}, k.arrivals}
}
