package embedded_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// BenchmarkMemtableFiling files a memtable's worth of the benchmark trail
// (100k events, keys computed beforehand): the writer's share of ingest
// CPU, without the log, tokenising or the segment flush.
func BenchmarkMemtableFiling(b *testing.B) {
	const n = 100_000
	fb := embedded.NewFilingBench(generator(b, n, 0).Fill(make([]event.Event, n)))
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		if got := fb.File(); got != n {
			b.Fatalf("filed %d of %d", got, n)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N*n), "cpu-µs/event")
}

// BenchmarkFlush writes a memtable of 100k events of the benchmark trail
// as a segment, as the engine's flush does (the memtable is filed before
// the timer): the flush's share of ingest CPU (process CPU per event).
func BenchmarkFlush(b *testing.B) {
	const n = 100_000
	fb := embedded.NewFilingBench(generator(b, n, 0).Fill(make([]event.Event, n)))
	b.ResetTimer()
	var cpu time.Duration
	for range b.N {
		c, err := fb.FlushCPU(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		cpu += c
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N*n), "cpu-µs/event")
}

// BenchmarkIndexEvents computes the posting keys of 100k events of the
// benchmark trail on one goroutine, as Append does on the caller's: the
// tokenising share of ingest CPU (process CPU per event).
func BenchmarkIndexEvents(b *testing.B) {
	const n = 100_000
	evs := generator(b, n, 0).Fill(make([]event.Event, n))
	b.ResetTimer()
	cpu0 := processCPU()
	keys := 0
	for range b.N {
		for lo := 0; lo < n; lo += 1000 {
			keys += embedded.IndexEventsForBench(evs[lo : lo+1000])
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N*n), "cpu-µs/event")
	b.ReportMetric(float64(keys)/float64(b.N*n), "keys/event")
}

// processCPU is the CPU time of the process so far, user and system: on a
// shared machine it moves far less with other processes' load than the
// wall clock does.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMerge times Compact merging flushed segments of the benchmark
// trail into day partitions, at the density of a 10M-event trail (about
// 333k events a UTC day; AUDITTRAIL_MERGE_BENCH_ROWS rows, default 400k:
// one whole day and a part). The flushed directory is made once; each
// iteration merges a copy. Reported: process CPU (user+system, the
// garbage collector included) per merged row, and the peak of the Go
// heap in use above its level before the merge.
func BenchmarkMerge(b *testing.B) {
	rows := 400_000
	if v, err := strconv.Atoi(os.Getenv("AUDITTRAIL_MERGE_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	src := b.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := embedded.Open(embedded.Options{Dir: src, Logger: quiet, MergeCPUShare: -1})
	if err != nil {
		b.Fatal(err)
	}
	g, err := bench.NewGenerator(bench.GenOptions{Events: rows, Seed: 1, End: benchEnd,
		Span: time.Duration(float64(rows) / 333_000 * float64(24*time.Hour))})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]event.Event, 1000)
	for n := 0; n < rows; n += len(batch) {
		if err := e.Append(context.Background(), g.Fill(batch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Compact(context.Background()); err != nil { // merging off: flushes only
		b.Fatal(err)
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var cpu time.Duration
	var peak uint64
	for range b.N {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "copy")
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			b.Fatal(err)
		}
		o := embedded.Options{Dir: dir, Logger: quiet}
		o.NoBackgroundMerge()
		e, err := embedded.Open(o)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var top atomic.Uint64
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > top.Load() {
					top.Store(m.HeapInuse)
				}
			}
		}()
		b.StartTimer()
		cpu0 := processCPU()
		if err := e.Compact(context.Background()); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - cpu0
		b.StopTimer()
		close(done)
		if t := top.Load(); t > base {
			peak = max(peak, t-base)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N*rows), "cpu-µs/row")
	b.ReportMetric(float64(peak)/float64(rows), "peak-heap-B/row")
}

// BenchmarkLoad loads AUDITTRAIL_LOAD_EVENTS events (default 300k) of the
// benchmark trail in batches of 1000, as audittrail-bench's load does, with
// the trail generated between Appends on the benchmark's thread and its
// CPU left out: events/s over the time spent inside Append, and the
// process's ingest CPU per event (flushes and merges included;
// AUDITTRAIL_LOAD_MERGE=off leaves merging out, whose share follows the
// ingest rate and so the machine's load). With -cpuprofile it profiles
// the load alone. On a shared machine, start the two binaries of an A/B
// comparison at the same time, so that both see the same load.
func BenchmarkLoad(b *testing.B) {
	n := 300_000
	if v, err := strconv.Atoi(os.Getenv("AUDITTRAIL_LOAD_EVENTS")); err == nil && v > 0 {
		n = v
	}
	var appendTime, genCPU, cpu, gc time.Duration
	var diskBytes int64
	for range b.N {
		o := embedded.Options{Dir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if os.Getenv("AUDITTRAIL_LOAD_MERGE") == "off" {
			o.NoBackgroundMerge()
		}
		e, err := embedded.Open(o)
		if err != nil {
			b.Fatal(err)
		}
		g := generator(b, n, 0)
		buf := make([]event.Event, 1000)
		runtime.LockOSThread()
		gc0 := gcCPU()
		cpu0 := processCPU()
		for {
			g0 := threadCPU()
			batch := g.Fill(buf)
			if len(batch) == 0 {
				break
			}
			genCPU += threadCPU() - g0
			t0 := time.Now()
			if err := e.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			appendTime += time.Since(t0)
		}
		cpu += processCPU() - cpu0
		gc += gcCPU() - gc0
		runtime.UnlockOSThread()
		b.StopTimer()
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
		diskBytes += dirBytes(b, o.Dir)
		b.StartTimer()
	}
	events := float64(b.N * n)
	b.ReportMetric(float64(diskBytes)/events, "disk-B/event")
	b.ReportMetric(events/appendTime.Seconds(), "events/s")
	b.ReportMetric(float64((cpu-genCPU).Nanoseconds())/1e3/events, "cpu-µs/event")
	b.ReportMetric(float64(gc.Nanoseconds())/1e3/events, "gc-cpu-µs/event")
}

// gcCPU is the runtime's estimate of the CPU time the garbage collector
// has taken so far (marking, assists and pauses).
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * 1e9)
}

// threadCPU is the CPU time of the calling thread (Linux RUSAGE_THREAD):
// the caller holds its goroutine on the thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dirBytes is the size of the files under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}
