package gcpolicy

import (
	"math"
	"runtime/debug"
	"testing"
)

// restore puts back the runtime's pace as the test found it.
func restore(t *testing.T) {
	pct := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(pct)
		debug.SetMemoryLimit(limit)
	})
}

func TestApplySetsTheDefaults(t *testing.T) {
	restore(t)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	got := Apply()
	if got != (Policy{Percent: Percent, MemoryLimit: MemoryLimit}) {
		t.Fatalf("Apply() = %+v, want GOGC %d and a %d-byte limit", got, Percent, MemoryLimit)
	}
	if got != Current() {
		t.Fatalf("Current() = %+v after Apply() = %+v", Current(), got)
	}
}

// The operator's environment wins: the runtime read GOGC and GOMEMLIMIT at
// start, and Apply must leave what they set alone.
func TestApplyKeepsTheEnvironments(t *testing.T) {
	restore(t)
	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "3GiB")
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(3 << 30)
	if got := Apply(); got != (Policy{Percent: 50, MemoryLimit: 3 << 30}) {
		t.Fatalf("Apply() = %+v, want the environment's GOGC 50 and 3 GiB", got)
	}
	t.Setenv("GOGC", "off")
	debug.SetGCPercent(-1)
	if got := Apply(); got.Percent != -1 {
		t.Fatalf("Apply() with GOGC=off = %+v, want collection off", got)
	}
}
