package bench

import (
	"runtime"
	"testing"
	"time"
)

// TestThreadCPU checks that the thread clock counts this thread's work and
// stays within the process clock, which is what separating the generator's
// CPU from the engine's relies on.
func TestThreadCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := processCPU(), threadCPU()
	x := uint64(1)
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	dt, dp := threadCPU()-t0, processCPU()-p0
	if x == 0 || dt <= 0 {
		t.Fatalf("thread CPU grew by %v while this thread spun", dt)
	}
	if dt > dp+10*time.Millisecond {
		t.Fatalf("thread CPU %v exceeds process CPU %v", dt, dp)
	}
}
