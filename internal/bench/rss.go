package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// resetPeakRSS sets the process's VmHWM back to its current RSS (Linux ≥
// 4.0, "5" in clear_refs), so that each engine's peak is its own. Where
// that is not possible the peak is cumulative, which only overstates.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads VmHWM, the peak resident set size, in bytes; 0 when the
// system does not say.
func peakRSS() int64 { return statusField("/proc/self/status", "VmHWM:") }

// serverMemory reports the memory of a server an engine talks to. Engines
// backed by a local server process implement it.
type serverMemory interface {
	// ServerCommand is the process name (/proc/PID/comm) of the server.
	ServerCommand() string
}

// processesPss sums the proportional set size of every process named comm:
// shared memory (PostgreSQL's shared buffers) is counted once across them,
// not once per backend as summing RSS would. It needs /proc/PID/smaps_rollup
// (Linux ≥ 4.14) and the right to read it (same user or root); 0 otherwise.
func processesPss(comm string) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total int64
	for _, ent := range ents {
		pid := ent.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		name, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil || strings.TrimSpace(string(name)) != comm {
			continue
		}
		total += statusField("/proc/"+pid+"/smaps_rollup", "Pss:")
	}
	return total
}

// statusField reads a "Name:   123 kB" line of a /proc file, in bytes.
func statusField(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field)
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// pssSampler records the peak of processesPss(comm) every interval until
// stopped: the server's memory is not ours to reset, so it is sampled.
type pssSampler struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startPssSampler(comm string, every time.Duration) *pssSampler {
	s := &pssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v := processesPss(comm); v > s.peak.Load() {
				s.peak.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak seen.
func (s *pssSampler) Stop() int64 {
	close(s.stop)
	<-s.done
	return s.peak.Load()
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration { return rusageCPU(syscall.RUSAGE_SELF) }

// threadCPU is the CPU time of the calling OS thread (Linux; 0 elsewhere):
// the caller must hold its goroutine on the thread (runtime.LockOSThread).
func threadCPU() time.Duration { return rusageCPU(rusageThread) }

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not name.
const rusageThread = 1

func rusageCPU(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
