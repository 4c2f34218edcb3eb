package embedded

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/audittrail/audittrail/internal/store"
)

// writer is the only goroutine that writes the log and changes the index.
// It gathers every request queued while the previous fsync ran into one
// group: one write, one fsync, for all of them.
func (e *Engine) writer() {
	defer close(e.writerDone)
	group := make([]*request, 0, 256)
	for r := range e.reqs {
		if r.kind != reqAppend {
			e.runControl(r)
			continue
		}
		group = append(group[:0], r)
		n := len(r.events)
		var deleteAfter *request
	gather:
		for n < e.opts.MaxGroupEvents {
			select {
			case r2, ok := <-e.reqs:
				if !ok {
					break gather
				}
				if r2.kind != reqAppend {
					// A delete must see every append queued before it.
					deleteAfter = r2
					break gather
				}
				group = append(group, r2)
				n += len(r2.events)
			default:
				break gather
			}
		}
		e.commitGroup(group)
		if deleteAfter != nil {
			e.runControl(deleteAfter)
		}
		e.maybeFreeze()
	}
}

// commitGroup writes every append request of the group as one record each,
// fsyncs once, and only then makes the events visible and answers. On any
// failure the log is cut back to where it was and every request fails.
func (e *Engine) commitGroup(group []*request) {
	if len(group) == 0 {
		return
	}
	seq := e.w.lastSeq
	buf := e.w.buf[:0]
	// Flushes change the segment index under the write lock; the dedupe
	// checks below read it.
	e.mu.RLock()
	var groupKeys map[dedupeKey]struct{}
	if len(group) > 1 {
		groupKeys = make(map[dedupeKey]struct{})
	}
	for _, r := range group {
		var start int
		buf, start = beginRecord(buf)
		buf = append(buf, recordBatch)
		countAt := len(buf)
		buf = append(buf, make([]byte, binary.MaxVarintLen32)...)
		batchKeys := groupKeys
		if batchKeys == nil {
			batchKeys = make(map[dedupeKey]struct{}, len(r.events))
		}
		r.stored, r.spans = r.stored[:0], r.spans[:0]
		for i := range r.events {
			ev := &r.events[i]
			k := dedupeKey{ev.CompanyID, ev.ID}
			if _, dup := batchKeys[k]; dup || e.has(ev.CompanyID, ev.ID) {
				continue
			}
			batchKeys[k] = struct{}{}
			seq++
			ev.Seq = seq
			r.stored = append(r.stored, i)
			lenAt := len(buf)
			buf = append(buf, make([]byte, binary.MaxVarintLen32)...)
			buf = appendEvent(buf, ev)
			putFixedUvarint(buf[lenAt:], uint64(len(buf)-lenAt-binary.MaxVarintLen32))
			r.spans = append(r.spans, span{lenAt + binary.MaxVarintLen32, len(buf)})
		}
		if len(r.stored) == 0 {
			buf = buf[:start] // nothing new: no record at all
			r.spans = r.spans[:0]
			continue
		}
		putFixedUvarint(buf[countAt:], uint64(len(r.stored)))
		finishRecord(buf, start)
	}
	e.mu.RUnlock()
	e.w.buf = buf
	err := e.writeLog(buf)
	if err != nil {
		for _, r := range group {
			for _, i := range r.stored {
				r.events[i].Seq = 0
			}
			r.stored = r.stored[:0]
			r.done <- err
		}
		return
	}
	e.w.lastSeq = seq
	// Events go in under the lock in chunks, so that a big group does not
	// stall searches for its whole length. A search between chunks may see
	// part of a group: all of it is durable already, and Seq order holds.
	// The memtable keeps the encoded events, sliced from one copy of the
	// group's log bytes (record headers included, a few bytes each).
	// The buffer itself becomes the memtable's, unless it has much room
	// left that the memtable would keep (the group outgrew it and append
	// doubled it): then a copy. The next group gets a new buffer a little
	// larger than this group needed, which costs no more than the copy.
	arena := buf
	if cap(buf)-len(buf) > len(buf)/8 {
		arena = bytes.Clone(buf)
	}
	e.w.buf = make([]byte, 0, len(buf)+len(buf)/16)
	e.mu.Lock()
	mem := e.ix.mem
	if fz := e.ix.frozen; fz != nil {
		mem.presize(fz.postings.n, fz.len())
	}
	n := 0
	for _, r := range group {
		for j, i := range r.stored {
			sp := r.spans[j]
			mem.add(&r.events[i], arena[sp.lo:sp.hi:sp.hi], r.keys[i])
			if n++; n%applyChunk == 0 {
				mem.settle()
				e.mu.Unlock()
				e.mu.Lock()
			}
		}
	}
	mem.settle()
	e.mu.Unlock()
	e.mg.committed.Add(int64(n))
	for _, r := range group {
		r.done <- nil
	}
}

// applyChunk is how many events go into the memtable per hold of the
// write lock.
const applyChunk = 512

// putFixedUvarint writes v as a uvarint padded to MaxVarintLen32 bytes
// (continuation bits on the padding), so that a length can be reserved
// before it is known. Decoding it with binary.Uvarint gives v back.
func putFixedUvarint(b []byte, v uint64) {
	for i := 0; i < binary.MaxVarintLen32-1; i++ {
		b[i] = byte(v&0x7f) | 0x80
		v >>= 7
	}
	b[binary.MaxVarintLen32-1] = byte(v)
}

// writeLog appends b to the log and fsyncs it. On failure the log is cut
// back so that no partial record can be replayed later.
func (e *Engine) writeLog(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	f := e.w.wal
	if e.w.walDirty {
		if err := e.cutLog(); err != nil {
			return err
		}
	}
	_, werr := f.WriteAt(b, e.w.walSize)
	if werr == nil {
		werr = f.Sync()
		e.syncs.Add(1)
	}
	if werr != nil {
		e.log.Error("embedded: log write failed; batch rejected", "err", werr)
		e.w.walDirty = true
		if err := e.cutLog(); err != nil {
			e.log.Error("embedded: cannot cut the failed write off the log yet", "err", err)
		}
		return fmt.Errorf("%w: write log: %w", store.ErrUnavailable, werr)
	}
	e.w.walSize += int64(len(b))
	return nil
}

func (e *Engine) cutLog() error {
	if err := e.w.wal.Truncate(e.w.walSize); err != nil {
		return fmt.Errorf("%w: cut log: %w", store.ErrUnavailable, err)
	}
	if err := e.w.wal.Sync(); err != nil {
		return fmt.Errorf("%w: sync log: %w", store.ErrUnavailable, err)
	}
	e.w.walDirty = false
	return nil
}

// runDelete persists a deletion rule, then applies it to the index.
func (e *Engine) runDelete(r *request) {
	rule := r.rule
	rule.MaxSeq = e.w.lastSeq
	next := rulesFile{LastSeq: e.w.lastSeq}
	for _, old := range e.w.rules.Rules {
		// The new rule hides everything an older one of the same company
		// with an earlier cut-off hid, since it also covers every Seq so far.
		if old.CompanyID == rule.CompanyID && old.Before <= rule.Before {
			continue
		}
		next.Rules = append(next.Rules, old)
	}
	next.Rules = append(next.Rules, rule)
	if err := writeFileAtomic(filepath.Join(e.opts.Dir, rulesName), mustJSON(next)); err != nil {
		r.done <- fmt.Errorf("%w: persist deletion: %w", store.ErrUnavailable, err)
		return
	}
	e.w.rules = next
	e.mu.Lock()
	e.ix.rules = next.Rules
	e.ix.rulesVer++
	var err error
	r.deleted, err = e.applyRule(&rule)
	e.mu.Unlock()
	if err != nil {
		r.done <- fmt.Errorf("embedded: apply deletion: %w", err)
		return
	}
	r.done <- nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers always marshal
	}
	return b
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}
