package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
)

// TestMeasureHTTP prints the figures of the service over HTTP on this
// machine: single-event ingest from 64 concurrent clients, batch ingest in
// batches of 1000, and search latency on 100,000 events. The server runs
// in-process on the embedded store (fsync on every commit) and shares the
// CPUs with the load generator. Run it with
//
//	AUDITTRAIL_MEASURE=1 go test ./internal/server -run MeasureHTTP -v -timeout 20m
//
// AUDITTRAIL_MEASURE_SECONDS sets each ingest phase's length (default 10).
func TestMeasureHTTP(t *testing.T) {
	if os.Getenv("AUDITTRAIL_MEASURE") != "1" {
		t.Skip("measurement: set AUDITTRAIL_MEASURE=1")
	}
	phase := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("AUDITTRAIL_MEASURE_SECONDS")); err == nil && s > 0 {
		phase = time.Duration(s) * time.Second
	}
	cfg := testConfig(t)
	cfg.RetentionInterval = 0
	r := start(t, cfg)
	defer func() { r.stop(t) }()
	creds, _ := ReadBootstrap(cfg.DataDir)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	c, err := client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var lines []string
	report := func(format string, a ...any) {
		lines = append(lines, fmt.Sprintf(format, a...))
		t.Logf(format, a...)
	}

	// 1. Single events, 64 concurrent clients.
	var stored atomic.Int64
	lat := runFor(phase, 64, func(w, n int) error {
		_, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{
			UserID: fmt.Sprintf("user%d", n%5000), Action: actions[n%len(actions)], Type: "info",
			ActorID: fmt.Sprintf("actor%d", w), TenantID: fmt.Sprintf("t%d", n%20),
			Data: map[string]any{"request_details": map[string]any{"headers": map[string]any{"user-agent": "Mozilla/5.0 Chrome/120"}}},
		})
		if err == nil {
			stored.Add(1)
		}
		return err
	})
	report("single-event ingest, 64 clients: %8.0f events/s   p50 %6.2f ms   p99 %6.2f ms   (%d events in %s)",
		float64(lat.ok)/phase.Seconds(), ms(lat.p(0.50)), ms(lat.p(0.99)), lat.ok, phase)

	// 2. Batches of 1000, 4 concurrent senders.
	const batch = 1000
	lat = runFor(phase, 4, func(w, n int) error {
		recs := make([]client.Record, batch)
		for i := range recs {
			k := n*batch + i
			recs[i] = client.Record{UserID: fmt.Sprintf("user%d", k%5000), Action: actions[k%len(actions)], ActorID: fmt.Sprintf("b%d", w),
				Tenants: []string{fmt.Sprintf("t%d", k%20)}, Geo: geos[k%len(geos)], Data: map[string]any{"n": k, "note": "batch load"}}
		}
		_, err := c.Audit().Ingest(ctx, recs)
		if err == nil {
			stored.Add(batch)
		}
		return err
	})
	report("batch ingest (1000/batch, 4 senders): %8.0f events/s   p50 %6.2f ms   p99 %6.2f ms per batch",
		float64(lat.ok*batch)/phase.Seconds(), ms(lat.p(0.50)), ms(lat.p(0.99)))

	// 3. A fresh server holding exactly 100,000 events, then search.
	r.stop(t)
	cfg = testConfig(t)
	cfg.RetentionInterval = 0
	r = start(t, cfg)
	creds, _ = ReadBootstrap(cfg.DataDir)
	c, err = client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-7 * 24 * time.Hour)
	for n := 0; n < 100_000; n += 10_000 {
		recs := make([]client.Record, 10_000)
		for i := range recs {
			k := n + i
			recs[i] = client.Record{UserID: fmt.Sprintf("user%d", k%5000), Action: actions[k%len(actions)], ActorID: "fill",
				Tenants: []string{fmt.Sprintf("t%d", k%20)}, Geo: geos[k%len(geos)],
				// spread over the last week, so time bounds mean something
				Occurred: base.Add(time.Duration(k) * 6 * time.Second)}
		}
		if _, err := c.Audit().Ingest(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	_, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	report("search on %d events (each query 50 times, one client):", total)
	for _, q := range []struct {
		name string
		opts client.SearchOptions
	}{
		{"newest 1000, no filter", client.SearchOptions{}},
		{"newest 100, no filter", client.SearchOptions{Size: 100}},
		{"one user (≈20 hits)", client.SearchOptions{UserIDs: []string{"user4242"}}},
		{"action LoginFailed", client.SearchOptions{Actions: []string{"LoginFailed"}, Size: 100}},
		{"tenant + geo", client.SearchOptions{Tenants: []string{"t7"}, Geos: []string{"IL"}, Size: 100}},
		{"text \"user424\"", client.SearchOptions{Text: "user424", Size: 100}},
		{"page 50 of 100", client.SearchOptions{Size: 100, Page: 50}},
		{"one day, action", client.SearchOptions{From: base.Add(48 * time.Hour), To: base.Add(72 * time.Hour), Actions: []string{"UserCreated"}, Size: 100}},
	} {
		var durs []time.Duration
		var hits int
		for range 50 {
			start := time.Now()
			_, n, err := c.Audit().SearchAll(ctx, q.opts)
			if err != nil {
				t.Fatal(err)
			}
			durs = append(durs, time.Since(start))
			hits = n
		}
		l := latencies{d: durs}
		report("  %-24s total %6d   p50 %7.2f ms   p99 %7.2f ms", q.name, hits, ms(l.p(0.50)), ms(l.p(0.99)))
	}
	fmt.Println("\n== audittrail over HTTP (embedded store, in-process server) ==")
	for _, l := range lines {
		fmt.Println(l)
	}
}

var (
	actions = []string{"LoginSucceed", "LoginFailed", "UserCreated", "UserModified", "LoginStarted", "UserRefresh", "AccessKeyCreated"}
	geos    = []string{"US", "IL", "FR", "DE", "GB", "IN"}
)

type latencies struct {
	d  []time.Duration
	ok int
}

func (l *latencies) p(q float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runFor runs fn from `workers` goroutines until d has passed and returns
// the latencies of the calls that succeeded.
func runFor(d time.Duration, workers int, fn func(worker, n int) error) latencies {
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all latencies
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for n := 0; time.Now().Before(deadline); n++ {
				start := time.Now()
				if err := fn(w, n*workers+w); err != nil {
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			all.d = append(all.d, mine...)
			all.ok += len(mine)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}
