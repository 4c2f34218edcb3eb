package embedded_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// The benchmarks use the benchmark program's trail generator and query
// shapes, so their numbers compare with `audittrail-bench`.

var benchEnd = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

func openBench(b *testing.B, dir string) *embedded.Engine {
	b.Helper()
	e, err := embedded.Open(embedded.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func generator(b *testing.B, n int, first int) *bench.Generator {
	b.Helper()
	g, err := bench.NewGenerator(bench.GenOptions{Events: n, Seed: 1, End: benchEnd, FirstIndex: first})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkAppendBatch1000 appends batches of 1000 events; ns/op is per
// batch, and events/s is reported.
func BenchmarkAppendBatch1000(b *testing.B) {
	e := openBench(b, b.TempDir())
	defer e.Close()
	g := generator(b, b.N*1000, 0)
	batches := make([][]event.Event, b.N)
	for i := range batches {
		batches[i] = g.Fill(make([]event.Event, 1000))
	}
	b.ResetTimer()
	for i := range b.N {
		if err := e.Append(context.Background(), batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendSingle64 appends one event per call from 64 goroutines.
func BenchmarkAppendSingle64(b *testing.B) {
	e := openBench(b, b.TempDir())
	defer e.Close()
	g := generator(b, b.N, 0)
	evs := g.Fill(make([]event.Event, b.N))
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(evs) {
					return
				}
				if err := e.Append(context.Background(), evs[i:i+1]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSearch runs the benchmark program's query shapes on 100k events
// (AUDITTRAIL_BENCH_EVENTS overrides), left as loading leaves them: several
// segments and a memtable, as in a running server.
func BenchmarkSearch(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("AUDITTRAIL_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	e := openBench(b, dir)
	g := generator(b, n, 0)
	sample := bench.NewSample(1, bench.DefaultSampleSize)
	for {
		batch := g.Fill(make([]event.Event, 1000))
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			sample.Observe(&batch[i])
		}
		if err := e.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	defer e.Close()
	sets := bench.BuildQueries(sample, bench.QueryOptions{CompanyID: g.CompanyID(), End: benchEnd, PerShape: 50, PageSize: 100, Seed: 1})
	for _, set := range sets {
		b.Run(set.Shape, func(b *testing.B) {
			for i := range b.N {
				q := set.Queries[i%len(set.Queries)]
				if _, err := e.Search(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	_ = fmt.Sprint()
}
