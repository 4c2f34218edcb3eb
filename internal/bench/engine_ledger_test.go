package bench

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

// BenchmarkLedgerIngest loads the same trail into the embedded engine with
// tamper evidence off and on, alternating (-count), and reports the ingest
// rate including the ledger's catch-up, and the CPU time of the whole
// process per event: on a shared machine CPU per event is the steadier
// measure of what the ledger costs.
//
//	BENCH_LEDGER_EVENTS=1000000 go test -run X -bench LedgerIngest -benchtime 1x -count 3 ./internal/bench/
func BenchmarkLedgerIngest(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_LEDGER_EVENTS")); err == nil && v > 0 {
		n = v
	}
	for _, engine := range []string{"embedded", "embedded+ledger"} {
		b.Run(engine, func(b *testing.B) {
			for range b.N {
				evs, cpu, wall := loadOnce(b, engine, n)
				b.ReportMetric(float64(evs)/wall.Seconds(), "events/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(evs), "cpu-µs/event")
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadOnce appends n generated events in batches of 1000 and waits for
// the engine to settle (the ledger to catch up); it returns the events, the
// process CPU time and the wall time spent.
func loadOnce(b *testing.B, engine string, n int) (int, time.Duration, time.Duration) {
	b.Helper()
	ctx := context.Background()
	eng, err := OpenEngine(ctx, engine, EngineConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	gen, err := NewGenerator(GenOptions{Events: n, Seed: 1, End: time.Now().UnixMilli()})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]event.Event, 1000)
	cpu0, t0 := cpuTime(), time.Now()
	for {
		batch := gen.Fill(buf)
		if len(batch) == 0 {
			break
		}
		if err := eng.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if v, ok := eng.(interface{ Vacuum(context.Context) error }); ok {
		if err := v.Vacuum(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return n, cpuTime() - cpu0, time.Since(t0)
}
