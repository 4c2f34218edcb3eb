package embedded_test

import (
	"syscall"
	"testing"
	"time"

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
