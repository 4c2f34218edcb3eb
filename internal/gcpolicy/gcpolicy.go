// Package gcpolicy paces the Go garbage collector of the audittrail server,
// and of the benchmark that runs the embedded engine in its place.
//
// Ingest allocates for every event (its encoding, its posting keys, the
// flush's scratch), and at the runtime's default pace (GOGC=100) the
// collector took ~5 of an event's ~26 µs of CPU in a 1M-event load
// (BenchmarkLoad's gc-cpu-µs/event); at 200 it took ~3, and the whole load
// ~3 µs less. The price is a bigger heap: the 1M load's peak RSS went from
// 644 to 919 MiB. A soft memory limit holds that price: as the heap nears
// it, the collector runs as often as it must to stay under it.
package gcpolicy

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
)

const (
	// Percent is GOGC unless the environment sets it.
	Percent = 200
	// MemoryLimit is the soft memory limit of the Go runtime (GOMEMLIMIT)
	// unless the environment sets it: under the 2 GiB the embedded engine
	// is to keep its RSS within, with room for the mapped segment pages and
	// what is not Go heap.
	MemoryLimit = 1280 << 20
)

// Policy is the pace in force.
type Policy struct {
	// Percent is GOGC; negative when collection is off.
	Percent int
	// MemoryLimit is the soft limit in bytes; math.MaxInt64 when none.
	MemoryLimit int64
}

// Apply sets GOGC to Percent and the soft memory limit to MemoryLimit,
// each unless the environment names its own (GOGC, GOMEMLIMIT, which the
// runtime has applied already), and returns the policy in force.
func Apply() Policy {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(Percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
	return Current()
}

// Current reads the policy in force.
func Current() Policy {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	p := Policy{Percent: -1, MemoryLimit: math.MaxInt64}
	if s[0].Value.Kind() == metrics.KindUint64 {
		p.Percent = int(s[0].Value.Uint64())
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		p.MemoryLimit = int64(min(s[1].Value.Uint64(), math.MaxInt64))
	}
	return p
}
