package bench

import (
	"log/slog"
	"runtime"
)

// MemPhase is the memory of the benchmark process over one phase of an
// engine's run (load, queries, single appends, visibility probes, reopen
// after kill -9): where the peak resident set comes from. For in-process
// engines (embedded) it is the engine's memory plus the generator's batch.
type MemPhase struct {
	Phase string `json:"phase"`
	// PeakRSSBytes is VmHWM over the phase (reset at its start).
	PeakRSSBytes int64 `json:"peakRssBytes"`
	// At the end of the phase: resident anonymous memory (Go heap, stacks,
	// the zstd decoder's windows) and file-backed resident memory (pages
	// of mapped segment files the process has touched).
	RSSAnonBytes int64 `json:"rssAnonBytes"`
	RSSFileBytes int64 `json:"rssFileBytes"`
	// Go's view at the end of the phase: heap in use by live and not yet
	// swept objects, and what the runtime holds from the OS.
	GoHeapInuseBytes int64 `json:"goHeapInuseBytes"`
	GoSysBytes       int64 `json:"goSysBytes"`
}

// memPhases records MemPhase per phase; the whole run's peak is the
// largest phase peak, as each phase starts from the resident set the
// previous one left.
type memPhases struct {
	log    *slog.Logger
	phases []MemPhase
}

func (m *memPhases) start() { resetPeakRSS() }

// end closes the phase started last and logs it.
func (m *memPhases) end(phase string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := MemPhase{
		Phase:            phase,
		PeakRSSBytes:     peakRSS(),
		RSSAnonBytes:     statusField("/proc/self/status", "RssAnon:"),
		RSSFileBytes:     statusField("/proc/self/status", "RssFile:"),
		GoHeapInuseBytes: int64(ms.HeapInuse),
		GoSysBytes:       int64(ms.Sys),
	}
	m.phases = append(m.phases, p)
	m.log.Info("memory", "phase", phase, "peakRssMiB", p.PeakRSSBytes>>20, "rssAnonMiB", p.RSSAnonBytes>>20,
		"rssFileMiB", p.RSSFileBytes>>20, "goHeapInuseMiB", p.GoHeapInuseBytes>>20, "goSysMiB", p.GoSysBytes>>20)
	resetPeakRSS()
}

// peak is the largest phase peak.
func (m *memPhases) peak() int64 {
	var v int64
	for _, p := range m.phases {
		v = max(v, p.PeakRSSBytes)
	}
	return v
}
