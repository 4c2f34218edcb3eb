package embedded

import (
	"bytes"
	"os"
	"strconv"
	"sync/atomic"
)

// residency bounds how much of the mapped segments stays in the process's
// resident set. Every page a read touches stays mapped until released, and
// the kernel maps the page cache in large folios (measured on ext4, Linux
// 6.18: 1-2 MB of resident memory per posting or block read on a cold
// mapping), so searches over a big store would soon hold most of its files
// resident. The pages are only page cache (reclaimable, shared), but they
// count in the RSS an operator watches and a container's memory limit.
// After enough reads the file-backed resident size is read from
// /proc/self/statm; over the budget, every segment is released
// (MADV_DONTNEED): its pages stay in the page cache and map back on the
// next access, a minor fault.
type residency struct {
	budget int64 // ResidentSegmentBytes; ≤ 0 disables
	// touches counts reads of mapped pages (postings, blocks) since the
	// last look at statm.
	touches   atomic.Int64
	releasing atomic.Bool
	// releases counts how often segments were released (tests).
	releases atomic.Int64
}

// residencyCheckTouches is how many touches pass between two looks at
// statm (a few µs each): at most a few hundred MB of new mappings.
const residencyCheckTouches = 128

// noteTouches records n reads of mapped segment pages (e.mu held for
// reading) and releases the segments in the background when the file-backed
// resident memory exceeds the budget.
func (e *Engine) noteTouches(n int) {
	r := &e.res
	if r.budget <= 0 || n <= 0 {
		return
	}
	if r.touches.Add(int64(n)) < residencyCheckTouches {
		return
	}
	r.touches.Store(0)
	if fileResident() <= r.budget || !r.releasing.CompareAndSwap(false, true) {
		return
	}
	// The release (a madvise per segment, milliseconds over a big store)
	// runs off the search's path; holding e.mu for reading keeps Close from
	// unmapping meanwhile.
	go func() {
		defer r.releasing.Store(false)
		e.mu.RLock()
		defer e.mu.RUnlock()
		if e.ix.released {
			return
		}
		for _, s := range e.ix.segs {
			s.release()
		}
		r.releases.Add(1)
	}()
}

var pageSize = int64(os.Getpagesize())

// fileResident returns the process's shared resident memory (file-backed
// and shared memory pages) from /proc/self/statm, or 0 where there is none.
func fileResident() int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	// size resident shared text lib data dt, in pages.
	f := bytes.Fields(raw)
	if len(f) < 3 {
		return 0
	}
	n, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0
	}
	return n * pageSize
}
