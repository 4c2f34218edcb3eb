package embedded_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// BenchmarkSearchDir runs the benchmark program's query shapes on a data
// directory that `audittrail-bench --keep --json-out R` left behind, so a
// profile of the query phase does not need a new 1M-event load each time:
//
//	AUDITTRAIL_BENCH_DIR=/tmp/d/embedded AUDITTRAIL_BENCH_REPORT=R \
//	go test -run XXX -bench SearchDir ./internal/store/embedded
//
// The trail is generated again (not loaded) to draw the same queries as the
// run did. AUDITTRAIL_BENCH_SHAPES (comma-separated) restricts the shapes.
// Besides ns/op it reports the p50 and p99 of the individual queries.
//
// The engine's block cache holds every block of a few hundred selective
// queries, so cycling through the report's 100 queries per shape measures
// a warm cache the benchmark program never sees (it runs each query once).
// AUDITTRAIL_BENCH_PER_SHAPE=N draws N queries per shape instead; with
// -benchtime Nx each runs once. AUDITTRAIL_BENCH_RESIDENT and
// AUDITTRAIL_BENCH_BLOCK_CACHE set Options.ResidentSegmentBytes and
// BlockCacheBytes (bytes); AUDITTRAIL_BENCH_MERGE=off turns merging off.
func BenchmarkSearchDir(b *testing.B) {
	dir, repPath := os.Getenv("AUDITTRAIL_BENCH_DIR"), os.Getenv("AUDITTRAIL_BENCH_REPORT")
	if dir == "" || repPath == "" {
		b.Skip("AUDITTRAIL_BENCH_DIR and AUDITTRAIL_BENCH_REPORT not set")
	}
	raw, err := os.ReadFile(repPath)
	if err != nil {
		b.Fatal(err)
	}
	var rep struct {
		Events          int    `json:"events"`
		Seed            uint64 `json:"seed"`
		End             int64  `json:"end"`
		QueriesPerShape int    `json:"queriesPerShape"`
		PageSize        int    `json:"pageSize"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		b.Fatal(err)
	}
	perShape := rep.QueriesPerShape
	if v := os.Getenv("AUDITTRAIL_BENCH_PER_SHAPE"); v != "" {
		if perShape, err = strconv.Atoi(v); err != nil || perShape <= 0 {
			b.Fatalf("AUDITTRAIL_BENCH_PER_SHAPE=%q", v)
		}
	}
	// AUDITTRAIL_BENCH_QUERIES=path keeps the drawn queries in a file (made
	// by the first run, read by the next ones): generating the trail again
	// takes a minute at 10M events, so A/B runs can alternate often.
	var sets []bench.QuerySet
	cache := os.Getenv("AUDITTRAIL_BENCH_QUERIES")
	if raw, err := os.ReadFile(cache); cache != "" && err == nil {
		if err := json.Unmarshal(raw, &sets); err != nil {
			b.Fatalf("%s: %v", cache, err)
		}
	} else {
		sets = drawQueries(b, rep.Events, rep.Seed, rep.End, perShape, rep.PageSize)
		if cache != "" {
			raw, err := json.Marshal(sets)
			if err == nil {
				err = os.WriteFile(cache, raw, 0o644)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	// AUDITTRAIL_BENCH_SLOWEST=N logs each shape's N slowest queries, to
	// tell a slow kind of query from a pause that hits any.
	slowest, _ := strconv.Atoi(os.Getenv("AUDITTRAIL_BENCH_SLOWEST"))
	// AUDITTRAIL_BENCH_QUERY=i runs only query i of each shape (as numbered
	// by AUDITTRAIL_BENCH_SLOWEST), to profile one slow query.
	only1 := -1
	if v := os.Getenv("AUDITTRAIL_BENCH_QUERY"); v != "" {
		if only1, err = strconv.Atoi(v); err != nil {
			b.Fatalf("AUDITTRAIL_BENCH_QUERY=%q", v)
		}
	}
	// AUDITTRAIL_BENCH_COUNT_ONLY=1 asks for the totals only (page size 0):
	// what is left is matching the sources, the key look-ups included,
	// without the page's decoding.
	countOnly := os.Getenv("AUDITTRAIL_BENCH_COUNT_ONLY") == "1"
	var only []string
	if v := os.Getenv("AUDITTRAIL_BENCH_SHAPES"); v != "" {
		only = strings.Split(v, ",")
	}
	logMemory(b, "before open")
	opts := embedded.Options{Dir: filepath.Clean(dir), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if v := os.Getenv("AUDITTRAIL_BENCH_RESIDENT"); v != "" {
		if opts.ResidentSegmentBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			b.Fatalf("AUDITTRAIL_BENCH_RESIDENT=%q", v)
		}
	}
	if os.Getenv("AUDITTRAIL_BENCH_MERGE") == "off" {
		opts.MergeCPUShare = -1 // a copied directory of an older build would be merged meanwhile
	}
	if v := os.Getenv("AUDITTRAIL_BENCH_BLOCK_CACHE"); v != "" {
		if opts.BlockCacheBytes, err = strconv.Atoi(v); err != nil {
			b.Fatalf("AUDITTRAIL_BENCH_BLOCK_CACHE=%q", v)
		}
	}
	e, err := embedded.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	logMemory(b, "after open")
	// AUDITTRAIL_BENCH_EVICT=1 drops the directory's segment files from
	// the page cache after Open (which reads them all): the queries then
	// read from the disk as a process's do when the kernel has reclaimed
	// the pages since they were written or last read.
	if os.Getenv("AUDITTRAIL_BENCH_EVICT") == "1" {
		evictSegments(b, dir)
	}
	defer logMemory(b, "after the queries")
	for _, set := range sets {
		if only != nil && !slices.Contains(only, set.Shape) {
			continue
		}
		if only1 >= 0 && only1 < len(set.Queries) {
			set.Queries = set.Queries[only1 : only1+1]
		}
		b.Run(set.Shape, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			type timed struct {
				d     time.Duration
				q     int
				total int
			}
			var runs []timed
			cpu0, flt0, maj0 := processCPU(), minorFaults(), majorFaults()
			for i := range b.N {
				q := set.Queries[i%len(set.Queries)]
				if countOnly {
					q.Size = 0
				}
				t0 := time.Now()
				res, err := e.Search(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				if slowest > 0 {
					runs = append(runs, timed{lat[len(lat)-1], i % len(set.Queries), res.Total})
				}
			}
			slices.SortFunc(runs, func(a, b timed) int { return int(b.d - a.d) })
			for _, r := range runs[:min(slowest, len(runs))] {
				b.Logf("%s query %d: %v, total %d: %+v", set.Shape, r.q, r.d, r.total, set.Queries[r.q])
			}
			// CPU per query moves far less than wall-clock latency with the
			// machine's load (and counts every goroutine a query uses).
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			// Page faults of the mapped segments (every touched page after a
			// release of the residency budget) are part of a look-up's cost.
			b.ReportMetric(float64(minorFaults()-flt0)/float64(b.N), "minflt/op")
			// Major faults: pages of the mapping read from the disk (the
			// page cache had dropped them), each waited for in turn.
			b.ReportMetric(float64(majorFaults()-maj0)/float64(b.N), "majflt/op")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
		logMemory(b, "after "+set.Shape)
	}
}

// drawQueries generates the trail again to draw the benchmark program's
// queries.
func drawQueries(b *testing.B, events int, seed uint64, end int64, perShape, pageSize int) []bench.QuerySet {
	g, err := bench.NewGenerator(bench.GenOptions{Events: events, Seed: seed, End: end})
	if err != nil {
		b.Fatal(err)
	}
	sample := bench.NewSample(seed, bench.DefaultSampleSize)
	buf := make([]event.Event, 1000)
	for {
		batch := g.Fill(buf)
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			sample.Observe(&batch[i])
		}
	}
	return bench.BuildQueries(sample, bench.QueryOptions{CompanyID: g.CompanyID(), End: end,
		PerShape: perShape, PageSize: pageSize, Seed: seed})
}

// evictSegments asks the kernel to drop the page cache of dir's segment
// files (posix_fadvise DONTNEED; pages mapped by a process stay).
func evictSegments(b *testing.B, dir string) {
	paths, err := filepath.Glob(filepath.Join(dir, "segments", "*"))
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		const fadvDontNeed = 4 // POSIX_FADV_DONTNEED
		if _, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); errno != 0 {
			b.Fatal(errno)
		}
		f.Close()
	}
}

// minorFaults returns the process's minor page faults so far.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

// majorFaults returns the process's major page faults so far.
func majorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Majflt
}

// logMemory logs the process's resident memory from /proc/self/status
// (Linux): the peak so far, and now, anonymous (Go heap) and file-backed
// (touched pages of mapped segments).
func logMemory(b *testing.B, when string) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	var fields []string
	for _, line := range strings.Split(string(raw), "\n") {
		for _, f := range []string{"VmHWM:", "RssAnon:", "RssFile:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				fields = append(fields, f+" "+strings.TrimSpace(v))
			}
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fields = append(fields, fmt.Sprintf("Go heap in use after GC: %d kB", ms.HeapInuse>>10))
	b.Logf("memory %s: %s", when, strings.Join(fields, ", "))
}
