// Package embedded is the default storage engine: a write-ahead log with
// group commit in front of an in-memory tail, so that it needs no other
// service. It implements store.Store with exactly the semantics of
// query.Query.Match and query.Query.Less.
package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

var _ store.Store = (*Engine)(nil)

// ErrInvalidEvent is returned by Append for an event the store cannot key:
// no ID or no CompanyID. Full validation is the caller's job.
var ErrInvalidEvent = errors.New("embedded: invalid event")

const (
	walDirName   = "wal"
	rulesName    = "deletes.json"
	reqQueueSize = 4096
)

// Engine is an open embedded store. All methods are safe for concurrent use.
type Engine struct {
	opts Options
	log  *slog.Logger

	reqs       chan *request
	closeMu    sync.RWMutex // held for writing only while closing, so no Append enqueues after
	closed     atomic.Bool
	writerDone chan struct{}
	closeErr   error

	// Owned by the writer goroutine after Open.
	w writerState

	// syncs counts log fsyncs, so tests can see group commit at work.
	syncs atomic.Int64

	mu  sync.RWMutex // guards the index below
	mem *memtable
}

type writerState struct {
	wal     *os.File
	walGen  uint64
	walSize int64
	// walDirty: a failed write may have left bytes past walSize that the
	// truncate after it could not remove; they are cut before the next write.
	walDirty bool
	lastSeq  uint64
	// replaySeq is the last Seq read from the log during Open: log Seqs
	// must strictly increase.
	replaySeq uint64
	rules     rulesFile
	buf       []byte
}

// rulesFile is the persisted list of DeleteBefore calls. A rule hides the
// company's events older than Before that existed when it was made
// (Seq ≤ MaxSeq); keeping it as a rule rather than rewriting data makes
// deletion one small atomic file write.
type rulesFile struct {
	// LastSeq is the highest Seq ever assigned when the file was written,
	// so that Seq never goes back even once every event is deleted.
	LastSeq uint64       `json:"lastSeq"`
	Rules   []deleteRule `json:"rules"`
}

type deleteRule struct {
	CompanyID string `json:"companyId"`
	Before    int64  `json:"before"`
	MaxSeq    uint64 `json:"maxSeq"`
}

func (r *deleteRule) covers(e *event.Event) bool {
	return e.CompanyID == r.CompanyID && e.Occurred < r.Before && e.Seq <= r.MaxSeq
}

type requestKind int

const (
	reqAppend requestKind = iota
	reqDelete
)

type request struct {
	kind   requestKind
	events []event.Event // append
	rule   deleteRule    // delete
	// stored is what the request added, filled by the writer.
	stored  []int
	deleted int64
	done    chan error
}

// Open opens or creates the store in opts.Dir, replaying the log. A torn
// record at the end of the log (a crash mid-write) is dropped and logged;
// it never stops the store from opening.
func Open(opts Options) (*Engine, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		opts:       opts,
		log:        opts.Logger,
		reqs:       make(chan *request, reqQueueSize),
		writerDone: make(chan struct{}),
		mem:        newMemtable(),
	}
	walDir := filepath.Join(opts.Dir, walDirName)
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: create %s: %w", walDir, err)
	}
	if err := e.loadRules(); err != nil {
		return nil, err
	}
	if err := e.replay(walDir); err != nil {
		return nil, err
	}
	if err := e.openWAL(walDir, e.w.walGen+1); err != nil {
		return nil, err
	}
	go e.writer()
	return e, nil
}

func (e *Engine) loadRules() error {
	b, err := os.ReadFile(filepath.Join(e.opts.Dir, rulesName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded: read deletion rules: %w", err)
	}
	if err := json.Unmarshal(b, &e.w.rules); err != nil {
		return fmt.Errorf("embedded: deletion rules: %w: %w", store.ErrCorrupt, err)
	}
	e.w.lastSeq = max(e.w.lastSeq, e.w.rules.LastSeq)
	return nil
}

func (e *Engine) replay(walDir string) error {
	gens, err := listWAL(walDir)
	if err != nil {
		return fmt.Errorf("embedded: list log: %w", err)
	}
	events := 0
	for i, gen := range gens {
		last := i == len(gens)-1
		err := replayWAL(filepath.Join(walDir, walName(gen)), last, e.log, func(p []byte) error {
			return e.replayRecord(p, &events)
		})
		if err != nil {
			if errors.Is(err, errTornTail) {
				err = fmt.Errorf("%w: %w", store.ErrCorrupt, err)
			}
			return fmt.Errorf("embedded: replay: %w", err)
		}
		e.w.walGen = gen
	}
	e.log.Info("embedded: recovered", "dir", e.opts.Dir, "logFiles", len(gens), "events", events,
		"live", e.mem.live, "lastSeq", e.w.lastSeq)
	return nil
}

func (e *Engine) replayRecord(p []byte, count *int) error {
	if len(p) == 0 || p[0] != recordBatch {
		return fmt.Errorf("%w: unknown record kind", store.ErrCorrupt)
	}
	d := decoder{b: p[1:]}
	n := d.uvarint()
	for range n {
		b := d.bytes(d.uvarint())
		if d.err != nil {
			break
		}
		ev, err := decodeEvent(b)
		if err != nil {
			return fmt.Errorf("%w: %w", store.ErrCorrupt, err)
		}
		if ev.Seq <= e.w.replaySeq {
			return fmt.Errorf("%w: seq %d after %d", store.ErrCorrupt, ev.Seq, e.w.replaySeq)
		}
		e.w.replaySeq = ev.Seq
		e.w.lastSeq = max(e.w.lastSeq, ev.Seq)
		*count++
		if e.ruleCovers(&ev) || e.mem.has(ev.CompanyID, ev.ID) {
			continue
		}
		e.mem.add(ev)
	}
	if d.err != nil {
		return fmt.Errorf("%w: %w", store.ErrCorrupt, d.err)
	}
	return nil
}

func (e *Engine) ruleCovers(ev *event.Event) bool {
	for i := range e.w.rules.Rules {
		if e.w.rules.Rules[i].covers(ev) {
			return true
		}
	}
	return false
}

func (e *Engine) openWAL(walDir string, gen uint64) error {
	path := filepath.Join(walDir, walName(gen))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("embedded: create log: %w", err)
	}
	if err := syncDir(walDir); err != nil {
		f.Close()
		return fmt.Errorf("embedded: sync log dir: %w", err)
	}
	e.w.wal, e.w.walGen, e.w.walSize, e.w.walDirty = f, gen, 0, false
	return nil
}

// Append implements store.Store. Once its batch is queued it waits for
// the outcome even if ctx ends, because returning early could report
// failure for a batch that is then committed.
func (e *Engine) Append(ctx context.Context, events []event.Event) error {
	for i := range events {
		if events[i].ID == "" || events[i].CompanyID == "" {
			return fmt.Errorf("%w: events[%d] lacks ID or CompanyID", ErrInvalidEvent, i)
		}
		events[i].Seq = 0
	}
	if len(events) == 0 {
		return nil
	}
	return e.submit(ctx, &request{kind: reqAppend, events: events})
}

func (e *Engine) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan error, 1)
	e.closeMu.RLock()
	if e.closed.Load() {
		e.closeMu.RUnlock()
		return store.ErrClosed
	}
	select {
	case e.reqs <- r:
	case <-ctx.Done():
		e.closeMu.RUnlock()
		return ctx.Err()
	}
	e.closeMu.RUnlock()
	return <-r.done
}

// DeleteBefore implements store.Store. It removes exactly the events asked
// for (it does not use the one-day slack the contract allows).
func (e *Engine) DeleteBefore(ctx context.Context, companyID string, before int64) (int64, error) {
	r := &request{kind: reqDelete, rule: deleteRule{CompanyID: companyID, Before: before}}
	if err := e.submit(ctx, r); err != nil {
		return 0, err
	}
	return r.deleted, nil
}

// Close waits for queued writes, then releases the log. Later calls get
// store.ErrClosed.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	if e.closed.Swap(true) {
		e.closeMu.Unlock()
		return store.ErrClosed
	}
	close(e.reqs)
	e.closeMu.Unlock()
	<-e.writerDone
	return e.closeErr
}

func (e *Engine) checkOpen() error {
	if e.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// writer is the only goroutine that writes the log and changes the index.
// It gathers every request queued while the previous fsync ran into one
// group: one write, one fsync, for all of them.
func (e *Engine) writer() {
	defer close(e.writerDone)
	group := make([]*request, 0, 256)
	for r := range e.reqs {
		if r.kind == reqDelete {
			e.runDelete(r)
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
				if r2.kind == reqDelete {
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
			e.runDelete(deleteAfter)
		}
	}
	if err := e.w.wal.Sync(); err != nil {
		e.closeErr = fmt.Errorf("embedded: sync log: %w", err)
	}
	if err := e.w.wal.Close(); err != nil && e.closeErr == nil {
		e.closeErr = fmt.Errorf("embedded: close log: %w", err)
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
		r.stored = r.stored[:0]
		for i := range r.events {
			ev := &r.events[i]
			k := dedupeKey{ev.CompanyID, ev.ID}
			if _, dup := batchKeys[k]; dup || e.mem.has(ev.CompanyID, ev.ID) {
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
		}
		if len(r.stored) == 0 {
			buf = buf[:start] // nothing new: no record at all
			continue
		}
		putFixedUvarint(buf[countAt:], uint64(len(r.stored)))
		finishRecord(buf, start)
	}
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
	e.mu.Lock()
	for _, r := range group {
		for _, i := range r.stored {
			e.mem.add(cloneEvent(&r.events[i]))
		}
	}
	e.mu.Unlock()
	for _, r := range group {
		r.done <- nil
	}
}

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
	r.deleted = e.mem.deleteWhere(&rule)
	e.mu.Unlock()
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
