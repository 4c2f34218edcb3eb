package embedded

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// maybeFreeze runs on the writer goroutine after each group: once the
// memtable is full and no flush is running, it starts a new log
// generation and hands the memtable to the flusher. If a flush is still
// running the memtable simply grows; the log keeps everything safe.
func (e *Engine) maybeFreeze() {
	if e.ix.mem.len() < e.opts.MemtableEvents { // only this goroutine changes mem
		return
	}
	e.freeze()
}

// runControl runs a request other than an append on the writer goroutine.
func (e *Engine) runControl(r *request) {
	switch r.kind {
	case reqDelete:
		e.runDelete(r)
	case reqFreeze:
		if e.ix.mem.len() == 0 || e.freeze() {
			r.deleted = 1
		}
		r.done <- nil
	default:
		r.done <- fmt.Errorf("embedded: unknown request kind %d", r.kind)
	}
}

// freeze hands the memtable to the flusher unless a flush is running; it
// reports whether it did.
func (e *Engine) freeze() bool {
	e.mu.RLock()
	busy := e.ix.frozen != nil
	e.mu.RUnlock()
	if busy {
		return false
	}
	oldGen, oldWAL := e.w.walGen, e.w.wal
	if err := e.openWAL(oldGen + 1); err != nil {
		e.log.Warn("embedded: cannot start a new log generation; memtable keeps growing", "err", err)
		return false
	}
	oldWAL.Close() // everything in it was fsynced before its batches were acknowledged
	e.mu.Lock()
	e.ix.mem.gen = oldGen
	e.ix.frozen, e.ix.mem = e.ix.mem, newMemtable()
	e.mu.Unlock()
	select {
	case e.flushKick <- struct{}{}:
	default:
	}
	return true
}

// flusher writes frozen memtables out as segments, retrying after a
// failure (a full disk) until it succeeds or the engine closes.
func (e *Engine) flusher() {
	defer close(e.flusherDone)
	for {
		select {
		case <-e.stopFlusher:
			return
		case <-e.flushKick:
		}
		wait := time.Second
		for {
			e.mu.RLock()
			fz := e.ix.frozen
			e.mu.RUnlock()
			if fz == nil {
				break
			}
			if err := e.flushFrozen(); err != nil {
				// A full disk can last: back off so the log is not flooded.
				e.log.Error("embedded: flush failed; the log keeps the events", "err", err, "retryIn", wait)
				select {
				case <-e.stopFlusher:
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, maxFlushRetry)
			}
		}
	}
}

// maxFlushRetry caps the wait between attempts of a failing flush.
const maxFlushRetry = 30 * time.Second

// flushFrozen writes the frozen memtable as a segment, swaps it in, and
// deletes the log generations it covers. Only one runs at a time (the
// flusher, or Close once the flusher has stopped).
func (e *Engine) flushFrozen() error {
	e.mu.RLock()
	fz := e.ix.frozen
	e.mu.RUnlock()
	start := time.Now()
	path, err := e.writeMemtableSegment(fz)
	if err != nil {
		return err
	}
	s, err := openSegment(path)
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("reopen new segment: %w", err)
	}
	keys := segKeyIndex(s)
	s.release()
	if err := e.swapIn(s, keys); err != nil {
		return err
	}
	if err := e.removeLogsThrough(fz.gen); err != nil {
		e.log.Warn("embedded: cannot remove flushed logs; they are skipped at the next start", "err", err)
	}
	e.kickMerger()
	e.log.Debug("embedded: flushed segment", "file", filepath.Base(path), "rows", s.n,
		"bytes", len(s.mm), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (e *Engine) removeLogsThrough(gen uint64) error {
	gens, err := listWAL(e.walDir)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g <= gen {
			if err := os.Remove(filepath.Join(e.walDir, walName(g))); err != nil {
				return err
			}
		}
	}
	return syncDir(e.walDir)
}

// installSegment adds s, whose sorted key entries are keys, to the index
// (caller holds e.mu for writing, or is Open). A segment whose rows are
// all deleted is removed instead.
func (e *Engine) installSegment(s *segment, keys []keyEntry) error {
	ix := &e.ix
	del, err := rulesDeleted(s, ix.rules)
	if err != nil {
		s.close()
		return err
	}
	s.deleted = del
	if int(del.GetCardinality()) == s.n {
		s.close()
		return os.Remove(s.path)
	}
	s.id = ix.nextSegID
	ix.nextSegID++
	ix.segByID[s.id] = s
	ix.segs = append(ix.segs, s)
	ix.keyIdx[s.id] = keys
	ix.filter.addAll(keys)
	return nil
}

func splitKey(k []byte) (string, string) {
	i := slices.Index(k, 0)
	if i < 0 {
		return "", string(k)
	}
	return string(k[:i]), string(k[i+1:])
}

// segLookup finds the live segment row of (company, id). Caller holds e.mu.
func (e *Engine) segLookup(company, id string) (*segment, uint32, bool) {
	h32 := uint32(keyHash(company, id) >> 32)
	if !e.ix.filter.mayHave(h32) {
		return nil, 0, false
	}
	var (
		found *segment
		at    uint32
	)
	// Newest first: a key stored again after a deletion is in a newer one.
	for i := len(e.ix.segs) - 1; i >= 0 && found == nil; i-- {
		s := e.ix.segs[i]
		rowsOfHash(e.ix.keyIdx[s.id], h32, func(row uint32) bool {
			if s.deleted.Contains(row) {
				return true
			}
			k, err := s.key(int(row))
			if err != nil || len(k) != len(company)+1+len(id) ||
				string(k[:len(company)]) != company || string(k[len(company)+1:]) != id {
				return true
			}
			found, at = s, row
			return false
		})
	}
	return found, at, found != nil
}

func (e *Engine) segHas(company, id string) bool {
	_, _, ok := e.segLookup(company, id)
	return ok
}

// has reports whether (company, id) is stored and live. Caller holds e.mu
// or is the writer.
func (e *Engine) has(company, id string) bool {
	if e.ix.mem.has(company, id) {
		return true
	}
	if fz := e.ix.frozen; fz != nil && fz.has(company, id) {
		return true
	}
	return e.segHas(company, id)
}

// rulesDeleted returns the rows of s that some rule hides.
func rulesDeleted(s *segment, rules []deleteRule) (*roaring.Bitmap, error) {
	del := roaring.New()
	for i := range rules {
		c, err := coveredRows(s, &rules[i])
		if err != nil {
			return nil, err
		}
		del.Or(c)
	}
	return del, nil
}

// coveredRows returns the rows of s that rule r hides: the company's, older
// than Before (a suffix of the newest-first order), with Seq ≤ MaxSeq.
func coveredRows(s *segment, r *deleteRule) (*roaring.Bitmap, error) {
	if s.meta.MinOccurred >= r.Before || s.meta.MinSeq > r.MaxSeq {
		return roaring.New(), nil
	}
	comp, err := s.posting(pkey(keyCompany, r.CompanyID))
	if err != nil || comp == nil {
		return roaring.New(), err
	}
	lo := sort.Search(s.n, func(i int) bool { return s.occurred(i) < r.Before })
	rng := roaring.New()
	rng.AddRange(uint64(lo), uint64(s.n))
	c := roaring.And(comp, rng)
	if s.meta.MaxSeq > r.MaxSeq {
		keep := roaring.New()
		it := c.Iterator()
		for it.HasNext() {
			if row := it.Next(); s.seq(int(row)) <= r.MaxSeq {
				keep.Add(row)
			}
		}
		c = keep
	}
	return c, nil
}

// applyRule hides what r covers everywhere and returns how many live
// events it removed. Caller holds e.mu for writing.
func (e *Engine) applyRule(r *deleteRule) (int64, error) {
	n := e.ix.mem.deleteWhere(r)
	if fz := e.ix.frozen; fz != nil {
		n += fz.deleteWhere(r)
	}
	var gone []*segment
	for _, s := range e.ix.segs {
		c, err := coveredRows(s, r)
		if err != nil {
			return n, err
		}
		n += int64(roaring.AndNot(c, s.deleted).GetCardinality())
		s.deleted.Or(c)
		if int(s.deleted.GetCardinality()) == s.n {
			gone = append(gone, s)
		}
	}
	for _, s := range gone {
		e.dropSegment(s)
	}
	if n > 0 {
		e.kickMerger() // partly deleted partitions are rewritten
	}
	return n, nil
}

// dropSegment removes a segment whose rows are all deleted. Caller holds
// e.mu for writing, so no search is using its mapping. A segment a merge
// is reading leaves the index only: the merge closes and removes it.
func (e *Engine) dropSegment(s *segment) {
	ix := &e.ix
	ix.segs = slices.DeleteFunc(ix.segs, func(x *segment) bool { return x == s })
	delete(ix.keyIdx, s.id)
	delete(ix.merged, s.id)
	delete(ix.segByID, s.id)
	if ix.merging[s] {
		ix.mergeDropped[s] = true
		return
	}
	s.close()
	if err := os.Remove(s.path); err != nil {
		e.log.Warn("embedded: cannot remove deleted segment", "file", s.path, "err", err)
	} else {
		e.log.Info("embedded: removed segment past retention", "file", filepath.Base(s.path), "rows", s.n)
	}
}

// swapIn replaces the frozen memtable by its segment s. The key filter
// entries go in first, a chunk per hold of the write lock (extra bits in a
// filter cost nothing but a false positive); then one short hold swaps
// the sources. So a flush never stalls searches for long.
func (e *Engine) swapIn(s *segment, keys []keyEntry) error {
	e.mu.Lock()
	rules, ver := e.ix.rules, e.ix.rulesVer
	s.id = e.ix.nextSegID
	e.ix.nextSegID++
	e.mu.Unlock()
	del, err := rulesDeleted(s, rules)
	if err != nil {
		s.close()
		return err
	}
	e.addToFilter(keys)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ix.rulesVer != ver { // a DeleteBefore ran meanwhile
		if del, err = rulesDeleted(s, e.ix.rules); err != nil {
			return err
		}
	}
	s.deleted = del
	e.ix.segByID[s.id] = s
	e.ix.keyIdx[s.id] = keys
	e.ix.segs = append(e.ix.segs, s)
	e.ix.frozen = nil
	if int(del.GetCardinality()) == s.n {
		e.dropSegment(s)
	}
	return nil
}

// swapChunk is how many key filter entries go in per hold of the lock.
const swapChunk = 8192

// addToFilter adds keys to the key filter, a chunk per hold of the write
// lock; a filter past its capacity is rebuilt from every segment's
// entries, at twice the size.
func (e *Engine) addToFilter(keys []keyEntry) {
	for lo := 0; lo < len(keys); lo += swapChunk {
		e.mu.Lock()
		e.ix.filter.addAll(keys[lo:min(len(keys), lo+swapChunk)])
		e.mu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.ix.filter.full() {
		return
	}
	total := len(keys)
	for _, ents := range e.ix.keyIdx {
		total += len(ents)
	}
	f := newKeyFilter(2 * total)
	f.addAll(keys)
	for _, ents := range e.ix.keyIdx {
		f.addAll(ents)
	}
	e.ix.filter = f
}
