package embedded

import (
	"context"
	"runtime"
	"sort"
	"sync"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// Search implements store.Store: per source a bitmap of matching rows (its
// cardinality adds to the exact total), then a k-way merge of the sources'
// ordered rows to the requested page, and only the page's events decoded.
func (e *Engine) Search(ctx context.Context, q query.Query) (_ store.Result, err error) {
	defer func() { e.noteReadDamage(err) }()
	if err := e.checkOpen(); err != nil {
		return store.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Result{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ix.released {
		return store.Result{}, store.ErrClosed
	}
	sources := e.sources(q.From, q.To)
	// Pages of the segments read (postings, blocks) stay resident.
	touches := len(sources)
	defer func() { e.noteTouches(touches) }()
	off, size := q.Offset(), q.Size
	var res store.Result
	var cursors []func() (hit, bool)
	m := newMatcher(&q)
	for i, src := range sources {
		if i%16 == 15 {
			if err := ctx.Err(); err != nil {
				return store.Result{}, err
			}
		}
		bm, err := m.match(src)
		if err != nil {
			return store.Result{}, err
		}
		card := int(bm.GetCardinality())
		if card == 0 {
			continue
		}
		res.Total += card
		if size <= 0 || off < 0 {
			continue
		}
		switch s := src.(type) {
		case *segment:
			cursors = append(cursors, segmentCursor(s, i, bm, q.OldestFirst))
		case *memtable:
			cursors = append(cursors, sliceCursor(topRows(s, i, bm, off+size, q.OldestFirst)))
		}
	}
	if off >= res.Total || size <= 0 || off < 0 {
		return res, nil
	}
	// The page's blocks are read with pread, not through the mapping:
	// they do not add to the resident pages.
	page := mergePage(cursors, off, size, q.OldestFirst)
	if res.Events, err = e.loadPage(sources, page); err != nil {
		return store.Result{}, err
	}
	return res, nil
}

// parallelBlocksMin is the number of distinct blocks a page must need
// before their decoding is spread over several goroutines.
const parallelBlocksMin = 8

// loadPage decodes the page's events. A page of a selective query (one
// user's events) needs nearly one block per row, and decompressing the
// blocks is most of the query's CPU: when there are many, they are split
// over GOMAXPROCS goroutines, every row of a block going to the same one so
// that each block is decoded once. This cuts latency on an idle machine,
// not CPU.
func (e *Engine) loadPage(sources []rowSource, page []hit) ([]event.Event, error) {
	out := make([]event.Event, len(page))
	// group[i] numbers the distinct blocks (or memtable rows) in order.
	group := make([]int, len(page))
	ids := make(map[uint64]int, len(page))
	for i, h := range page {
		k := uint64(h.src)<<32 | uint64(h.row)
		if s, ok := sources[h.src].(*segment); ok {
			k = uint64(h.src)<<32 | uint64(int(h.row)/s.rpb)
		}
		g, ok := ids[k]
		if !ok {
			g = len(ids)
			ids[k] = g
		}
		group[i] = g
	}
	workers := min(runtime.GOMAXPROCS(0), len(ids)/(parallelBlocksMin/2))
	load := func(w, workers int) error {
		bc := newBlockCache(e.cache)
		defer bc.reset()
		for i, h := range page {
			if s, ok := sources[h.src].(*segment); ok && group[i]%workers == w {
				bc.prefetch(s, int(h.row)/s.rpb)
			}
		}
		for i, h := range page {
			if group[i]%workers != w {
				continue
			}
			ev, err := e.load(sources[h.src], h.row, bc)
			if err != nil {
				return err
			}
			out[i] = ev
		}
		return nil
	}
	if workers <= 1 {
		return out, load(0, 1)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { errs[w] = load(w, workers) })
	}
	errs[0] = load(0, workers)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sources lists what a search over [from, to] must look at; segments
// entirely outside the range are skipped.
func (e *Engine) sources(from, to int64) []rowSource {
	out := make([]rowSource, 0, len(e.ix.segs)+2)
	for _, s := range e.ix.segs {
		if (to > 0 && s.meta.MinOccurred > to) || (from > 0 && s.meta.MaxOccurred < from) {
			continue
		}
		out = append(out, s)
	}
	if e.ix.frozen != nil {
		out = append(out, e.ix.frozen)
	}
	return append(out, e.ix.mem)
}

func (e *Engine) load(src rowSource, row uint32, bc *blockCache) (event.Event, error) {
	switch s := src.(type) {
	case *memtable:
		return s.event(row)
	case *segment:
		return bc.event(s, int(row), e.zdec)
	}
	panic("unknown source")
}

// Get implements store.Store.
func (e *Engine) Get(ctx context.Context, companyID, id string) (_ event.Event, err error) {
	defer func() { e.noteReadDamage(err) }()
	if err := e.checkOpen(); err != nil {
		return event.Event{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ix.released {
		return event.Event{}, store.ErrClosed
	}
	if row, ok := e.ix.mem.get(companyID, id); ok {
		return e.ix.mem.event(row)
	}
	if fz := e.ix.frozen; fz != nil {
		if row, ok := fz.get(companyID, id); ok {
			return fz.event(row)
		}
	}
	if s, row, ok := e.segLookup(companyID, id); ok {
		defer e.noteTouches(1) // the key lookup read the mapping
		bc := newBlockCache(e.cache)
		defer bc.reset()
		return bc.event(s, int(row), e.zdec)
	}
	return event.Event{}, store.ErrNotFound
}

// ReadFrom implements store.Store. Events become visible only after their
// whole group is fsynced and in Seq order, so no smaller Seq can appear
// later. Segments hold disjoint, increasing Seq ranges, oldest first.
func (e *Engine) ReadFrom(ctx context.Context, after uint64, limit int) (_ []event.Event, err error) {
	defer func() { e.noteReadDamage(err) }()
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ix.released {
		return nil, store.ErrClosed
	}
	var out []event.Event
	bc := newBlockCache(e.cache)
	defer bc.reset()
	for _, s := range e.ix.segs {
		if s.meta.MaxSeq <= after {
			continue
		}
		i := sort.Search(s.n, func(i int) bool { return s.seq(int(s.bySeq(i))) > after })
		for ; i < s.n && len(out) < limit; i++ {
			row := s.bySeq(i)
			if s.deleted.Contains(row) {
				continue
			}
			ev, err := bc.event(s, int(row), e.zdec)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		if len(out) >= limit {
			return out, nil
		}
		bc.reset() // blocks of earlier segments are not needed again
	}
	for _, m := range []*memtable{e.ix.frozen, e.ix.mem} {
		if m == nil {
			continue
		}
		for i := m.firstAfter(after); i < m.len() && len(out) < limit; i++ {
			if m.deleted.Contains(uint32(i)) {
				continue
			}
			ev, err := m.event(uint32(i))
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
	}
	return out, nil
}
