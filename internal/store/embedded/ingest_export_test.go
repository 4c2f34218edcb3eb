package embedded

import "github.com/audittrail/audittrail/internal/event"

// FilingBench holds events prepared for BenchmarkMemtableFiling: Seqs
// assigned, log encodings and posting keys computed, so that the benchmark
// times only what the writer does to file them into a memtable.
type FilingBench struct {
	evs  []event.Event
	encs [][]byte
	keys []eventKeys
}

func NewFilingBench(evs []event.Event) *FilingBench {
	fb := &FilingBench{evs: evs, keys: parallelKeys(evs)}
	var buf []byte
	spans := make([]span, len(evs))
	for i := range evs {
		evs[i].Seq = uint64(i + 1)
		lo := len(buf)
		buf = appendEvent(buf, &evs[i])
		spans[i] = span{lo, len(buf)}
	}
	for _, sp := range spans {
		fb.encs = append(fb.encs, buf[sp.lo:sp.hi:sp.hi])
	}
	return fb
}

// File files every event into a new memtable and returns its size.
func (fb *FilingBench) File() int {
	m := newMemtable()
	for i := range fb.evs {
		m.add(&fb.evs[i], fb.encs[i], fb.keys[i])
		if (i+1)%applyChunk == 0 {
			m.settle()
		}
	}
	m.settle()
	return m.len()
}

// NoBackgroundMerge leaves merging to Compact (benchmarks of merges).
func (o *Options) NoBackgroundMerge() { o.noBackgroundMerge = true }

// HotPostingsRefused counts, over the engine's segments, the postings of
// few-valued fields that searches could not keep for want of budget.
func HotPostingsRefused(e *Engine) (refused, segments int) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, s := range e.ix.segs {
		h := s.hotPostings()
		h.mu.RLock()
		refused += h.refused
		h.mu.RUnlock()
		segments++
	}
	return refused, segments
}

// IndexEventsForBench computes the posting keys of evs as Append does
// (BenchmarkIndexEvents) and returns how many there are.
func IndexEventsForBench(evs []event.Event) int {
	keys := make([]eventKeys, len(evs))
	indexEvents(evs, keys, nil)
	n := 0
	for i := range keys {
		n += keys[i].len()
	}
	return n
}
