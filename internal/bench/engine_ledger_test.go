package bench

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

// BenchmarkLedgerIngest loads the same trail into the embedded engine with
// tamper evidence off and on, alternating for BENCH_LEDGER_ROUNDS rounds
// (so a shared machine's changing load falls on both alike), and reports
// each one's median ingest rate including the ledger's catch-up, and the
// CPU time of the whole process per event, the steadier measure of what
// the ledger costs.
//
//	BENCH_LEDGER_EVENTS=1000000 BENCH_LEDGER_ROUNDS=3 go test -run X -bench LedgerIngest -benchtime 1x ./internal/bench/
func BenchmarkLedgerIngest(b *testing.B) {
	n, rounds := envInt("BENCH_LEDGER_EVENTS", 200_000), envInt("BENCH_LEDGER_ROUNDS", 3)
	engines := []string{"embedded", "embedded+ledger"}
	for range b.N {
		rate := map[string][]float64{}
		cpu := map[string][]float64{}
		for r := range rounds {
			for _, engine := range engines {
				evs, c, wall := loadOnce(b, engine, n)
				rate[engine] = append(rate[engine], float64(evs)/wall.Seconds())
				cpu[engine] = append(cpu[engine], float64(c.Microseconds())/float64(evs))
				b.Logf("round %d %-16s %8.0f events/s %6.2f cpu-µs/event", r+1, engine, rate[engine][r], cpu[engine][r])
			}
		}
		off, on := median(rate["embedded"]), median(rate["embedded+ledger"])
		b.ReportMetric(off, "off-events/s")
		b.ReportMetric(on, "on-events/s")
		b.ReportMetric(median(cpu["embedded"]), "off-cpu-µs/event")
		b.ReportMetric(median(cpu["embedded+ledger"]), "on-cpu-µs/event")
		b.ReportMetric(100*(on-off)/off, "rate-change-%")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
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
	eng, err := OpenEngine(ctx, engine, EngineConfig{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
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
