package embedded

import (
	"cmp"
	"context"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

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
	pageWanted := size > 0 && off >= 0
	// A newest-first page is often settled before every source is matched
	// (see settledCount.newerThan): its blocks are then decoded on another
	// goroutine while the remaining (older) sources are only counted. A
	// user's 100-row page at 10M events lies in the newest ~7 of ~32 day
	// partitions.
	order, olderMax := sourceOrder(sources, pageWanted && !q.OldestFirst && earlyPages)
	var settled settledCount
	var early chan pageLoad
	defer func() {
		if early != nil {
			<-early // the decoding reads the sources: done before e.mu is released
		}
	}()
	for n, i := range order {
		src := sources[i]
		if n%16 == 15 {
			if err := ctx.Err(); err != nil {
				return store.Result{}, err
			}
		}
		bm, err := m.match(src)
		if err != nil {
			return store.Result{}, err
		}
		card := int(bm.GetCardinality())
		res.Total += card
		if card == 0 || !pageWanted || early != nil {
			continue
		}
		switch s := src.(type) {
		case *segment:
			cursors = append(cursors, segmentCursor(s, i, bm, q.OldestFirst))
			settled.addSegment(s, card)
		case *memtable:
			hits := topRows(s, i, bm, off+size, q.OldestFirst)
			cursors = append(cursors, sliceCursor(hits))
			settled.addHits(hits)
		}
		if olderMax != nil && n+1 < len(order) && settled.newerThan(olderMax[n+1]) >= off+size {
			page := mergePage(cursors, off, size, q.OldestFirst)
			cursors = nil
			earlyPageLoads.Add(1)
			early = make(chan pageLoad, 1)
			go func() {
				evs, err := e.loadPage(sources, page)
				early <- pageLoad{evs, err}
			}()
		}
	}
	if early != nil {
		pl := <-early
		early = nil
		if pl.err != nil {
			return store.Result{}, pl.err
		}
		res.Events = pl.events
		return res, nil
	}
	if off >= res.Total || !pageWanted {
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

// earlyPages turns the early page decoding on (tests compare both ways);
// earlyPageLoads counts the pages decoded early.
var (
	earlyPages     = true
	earlyPageLoads atomic.Int64
)

type pageLoad struct {
	events []event.Event
	err    error
}

// sourceOrder returns the order in which Search matches sources: as they
// are, or, when early is set, the memtables first (their rows have no
// bound) and then the segments newest first (by their newest Occurred).
// olderMax[n] (nil unless early) is the newest Occurred of the segments
// from position n of the order on: no row there is newer.
func sourceOrder(sources []rowSource, early bool) (order []int, olderMax []int64) {
	order = make([]int, len(sources))
	for i := range order {
		order[i] = i
	}
	if !early {
		return order, nil
	}
	maxOcc := func(i int) int64 {
		if s, ok := sources[i].(*segment); ok {
			return s.meta.MaxOccurred
		}
		return math.MaxInt64 // a memtable: first
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(maxOcc(b), maxOcc(a)) })
	olderMax = make([]int64, len(order)+1)
	olderMax[len(order)] = math.MinInt64
	for n := len(order) - 1; n >= 0; n-- {
		olderMax[n] = max(olderMax[n+1], maxOcc(order[n]))
	}
	return order, olderMax
}

// settledCount counts the matched rows of the sources seen so far that are
// newer than a given Occurred, from what is known without reading rows: a
// segment's rows are all newer when its oldest is; a memtable's kept hits
// are counted one by one. It undercounts, never overcounts.
type settledCount struct {
	segMin  []int64
	segCard []int
	hitOcc  []int64
}

func (c *settledCount) addSegment(s *segment, card int) {
	c.segMin = append(c.segMin, s.meta.MinOccurred)
	c.segCard = append(c.segCard, card)
}

func (c *settledCount) addHits(hits []hit) {
	for i := range hits {
		c.hitOcc = append(c.hitOcc, hits[i].occurred)
	}
}

// newerThan returns how many counted rows have an Occurred above t.
//
// pageSettled: when at least off+size matched rows of the sources seen are
// newer than every row of the sources not seen yet (t, their newest
// Occurred), each of those rows comes before any unseen row in the
// newest-first order, so the page's rows (the first off+size) are all
// among the sources seen.
func (c *settledCount) newerThan(t int64) int {
	n := 0
	for i, m := range c.segMin {
		if m > t {
			n += c.segCard[i]
		}
	}
	for _, o := range c.hitOcc {
		if o > t {
			n++
		}
	}
	return n
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
