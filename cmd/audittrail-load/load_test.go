package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/server"
)

// TestMain lets the test binary act as the server the load starts, as the
// real binary does.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "serve" {
		os.Exit(server.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestLoadShort holds the mixed load for 20 s (AUDITTRAIL_LOAD_DURATION
// overrides it) against a server the program starts: every kind of request
// is made at about its rate, none fails, and the server's RSS is sampled
// and stays under 1 GiB.
func TestLoadShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and loads it for 20 s: skipped with -short")
	}
	d := 20 * time.Second
	if v := os.Getenv("AUDITTRAIL_LOAD_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Store: "embedded", Duration: d, Every: 5 * time.Second, Clients: 64, SingleRate: 500,
		BatchCl: 2, BatchSize: 500, BatchRate: 2, SearchRate: 5}
	var progress, stderr bytes.Buffer
	res, err := Run(context.Background(), o, &progress, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var out bytes.Buffer
	res.print(&out)
	t.Logf("\n%s%s", progress.String(), out.String())
	secs := d.Seconds()
	for k, want := range map[Kind]float64{KindSingle: o.SingleRate * secs, KindBatch: o.BatchRate * secs, KindSearch: o.SearchRate * secs} {
		s := res.Total[k]
		if s.Errors > 0 {
			t.Errorf("%s: %d errors, e.g. %v", k, s.Errors, s.ErrorExamples)
		}
		// The machine is shared and may be loaded: a quarter of the
		// target still shows every kind ran the whole time.
		if float64(s.Requests) < want/4 {
			t.Errorf("%s: %d requests, want about %.0f", k, s.Requests, want)
		}
		if s.P50Ms <= 0 || s.P99Ms < s.P50Ms || s.P999Ms < s.P99Ms {
			t.Errorf("%s: percentiles p50 %v p99 %v p999 %v out of order", k, s.P50Ms, s.P99Ms, s.P999Ms)
		}
	}
	if got, want := res.Total[KindBatch].Events, res.Total[KindBatch].Requests*o.BatchSize; got != want {
		t.Errorf("batch events acknowledged %d, want %d", got, want)
	}
	if len(res.RSS) < int(secs)/2 || res.PeakRSS <= 0 {
		t.Fatalf("RSS sampled %d times, peak %d: the server's memory was not measured", len(res.RSS), res.PeakRSS)
	}
	if res.PeakRSS > 1<<30 {
		t.Errorf("server peak RSS %s over 1 GiB", mib(res.PeakRSS))
	}
	if len(res.Intervals) < 3 {
		t.Errorf("%d interval reports, want one every 5 s", len(res.Intervals))
	}
}
