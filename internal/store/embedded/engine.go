// Package embedded is the default storage engine, needing no other service.
//
// Writes go to a write-ahead log with group commit (one fsync for every
// batch queued meanwhile) and then into an in-memory tail (memtable) with an
// inverted index, which search sees at once. A full memtable is frozen, a
// new log generation starts, and a background flusher writes the frozen
// rows as an immutable, memory-mapped segment: rows sorted newest first,
// roaring-bitmap postings per field value and text token, event bodies in
// zstd blocks decoded only for the page returned, a checksum on every
// section, block and posting. Once the segment is durable the logs it
// covers are deleted. Deletion is a persisted rule applied as a bitmap;
// a segment whose rows are all deleted is removed.
//
// It implements store.Store with exactly the semantics of query.Query.Match
// and query.Query.Less.
package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

var _ store.Store = (*Engine)(nil)

// ErrInvalidEvent is returned by Append for an event the store cannot key:
// no ID or no CompanyID. Full validation is the caller's job.
var ErrInvalidEvent = errors.New("embedded: invalid event")

// ErrLocked: another process has the directory open.
var ErrLocked = errors.New("embedded: data directory in use by another process")

const (
	walDirName   = "wal"
	segDirName   = "segments"
	rulesName    = "deletes.json"
	lockName     = "LOCK"
	reqQueueSize = 4096
)

// Engine is an open embedded store. All methods are safe for concurrent use.
type Engine struct {
	opts   Options
	log    *slog.Logger
	walDir string
	segDir string
	lock   *os.File

	reqs       chan *request
	closeMu    sync.RWMutex // held for writing only while closing, so no Append enqueues after
	closed     atomic.Bool
	writerDone chan struct{}

	flushKick   chan struct{}
	stopFlusher chan struct{}
	flusherDone chan struct{}

	zenc  *zstd.Encoder
	zdec  *zstd.Decoder
	cache *blockLRU
	res   residency // mapped pages searches leave resident (residency.go)

	// Owned by the writer goroutine after Open.
	w writerState

	// mg is the merger's state (merge.go).
	mg mergeState

	// syncs counts log fsyncs, so tests can see group commit at work.
	syncs atomic.Int64

	// damage lists what Open repaired or set aside and what reads found
	// damaged since (see Damage).
	damageMu sync.Mutex
	damage   []Damage

	mu sync.RWMutex // guards everything below
	ix index
}

// index is what searches read: segments oldest first (so in Seq order),
// then the frozen memtable being flushed, then the active memtable.
type index struct {
	segs   []*segment
	frozen *memtable
	mem    *memtable
	// rules mirrors the writer's deletion rules for the flusher; rulesVer
	// counts their changes.
	rules    []deleteRule
	rulesVer uint64
	// keyIdx holds each segment's sorted key entries (keyindex.go), and
	// filter every segment row's key hash, for the dedupe checks.
	keyIdx map[uint32][]keyEntry
	filter *keyFilter
	// merged marks segments written by a merge (their file names differ).
	merged map[uint32]bool
	// merging marks segments a merge is reading: a deletion that hides all
	// of one takes it out of the index but leaves its file and mapping to
	// the merge (mergeDropped).
	merging      map[*segment]bool
	mergeDropped map[*segment]bool
	segByID      map[uint32]*segment
	nextSegID    uint32
	// released: Close has unmapped the segments.
	released bool
}

var hashSeed = maphash.MakeSeed()

// keyHash hashes company, 0x00, id: the bytes of a segment's key column.
// The bytes are put together on the stack (for the usual short keys): the
// writer hashes every appended event's key for its dedupe check.
func keyHash(company, id string) uint64 {
	var buf [128]byte
	b := append(append(append(buf[:0], company...), 0), id...)
	return maphash.Bytes(hashSeed, b)
}

type writerState struct {
	wal     *os.File
	walGen  uint64
	walSize int64
	// walDirty: a failed write may have left bytes past walSize that the
	// truncate after it could not remove; they are cut before the next write.
	walDirty bool
	lastSeq  uint64
	// replaySeq is the last Seq read during Open: log Seqs must strictly
	// increase, and exceed every segment's.
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

type span struct{ lo, hi int }

type requestKind int

const (
	reqAppend requestKind = iota
	reqDelete
	// reqFreeze asks the writer to hand the memtable to the flusher now
	// (Compact); deleted is set to 1 if it did or the memtable was empty.
	reqFreeze
)

type request struct {
	kind   requestKind
	events []event.Event // append
	keys   []eventKeys   // posting keys of events, computed by the caller
	rule   deleteRule    // delete
	// stored is what the request added, filled by the writer, and spans
	// where each stored event's encoding lies in the group's log buffer.
	stored  []int
	spans   []span
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
		opts:        opts,
		log:         opts.Logger,
		walDir:      filepath.Join(opts.Dir, walDirName),
		segDir:      filepath.Join(opts.Dir, segDirName),
		reqs:        make(chan *request, reqQueueSize),
		writerDone:  make(chan struct{}),
		flushKick:   make(chan struct{}, 1),
		stopFlusher: make(chan struct{}),
		flusherDone: make(chan struct{}),
		cache:       newBlockLRU(opts.BlockCacheBytes),
		res:         residency{budget: opts.ResidentSegmentBytes},
		ix: index{
			mem:          newMemtable(),
			keyIdx:       make(map[uint32][]keyEntry),
			filter:       newKeyFilter(0),
			merged:       make(map[uint32]bool),
			merging:      make(map[*segment]bool),
			mergeDropped: make(map[*segment]bool),
			segByID:      make(map[uint32]*segment),
			nextSegID:    1,
		},
	}
	for _, d := range []string{e.walDir, e.segDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("embedded: create %s: %w", d, err)
		}
	}
	if err := e.lockDir(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			e.releaseAll()
		}
	}()
	var err error
	if e.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault)); err != nil {
		return nil, err
	}
	if e.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0))); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := e.loadRules(); err != nil {
		return nil, err
	}
	covered, err := e.loadSegments()
	if err != nil {
		return nil, err
	}
	if err := e.replay(covered); err != nil {
		return nil, err
	}
	if err := e.openWAL(max(e.w.walGen, covered) + 1); err != nil {
		return nil, err
	}
	e.log.Info("embedded: opened", "dir", opts.Dir, "segments", len(e.ix.segs),
		"tailEvents", e.ix.mem.live, "lastSeq", e.w.lastSeq, "took", time.Since(start).Round(time.Millisecond))
	go e.writer()
	go e.flusher()
	e.startMerger()
	ok = true
	return e, nil
}

func (e *Engine) lockDir() error {
	f, err := os.OpenFile(filepath.Join(e.opts.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("embedded: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("%w: %s: %w", ErrLocked, e.opts.Dir, err)
	}
	e.lock = f
	return nil
}

// releaseAll unmaps segments and releases files; used by Close and by a
// failed Open.
func (e *Engine) releaseAll() {
	for _, s := range e.ix.segs {
		s.close()
	}
	e.ix.segs = nil
	if e.w.wal != nil {
		e.w.wal.Close()
	}
	if e.zenc != nil {
		e.zenc.Close()
	}
	if e.zdec != nil {
		e.zdec.Close()
	}
	if e.lock != nil {
		e.lock.Close() // releases the flock
	}
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
	e.ix.rules = e.w.rules.Rules
	return nil
}

// loadSegments finishes a merge that had committed, opens every segment
// and returns the newest log generation they cover. A segment whose rows
// are all deleted is removed.
func (e *Engine) loadSegments() (uint64, error) {
	if err := e.recoverMerge(); err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(e.segDir)
	if err != nil {
		return 0, fmt.Errorf("embedded: list segments: %w", err)
	}
	var (
		covered   uint64
		segMaxSeq uint64
		segs      []*segment
		merged    = map[*segment]bool{}
	)
	defer func() {
		for _, s := range segs {
			if s.mm != nil && !e.installed(s) {
				s.close()
			}
		}
	}()
	for _, ent := range ents {
		name := ent.Name()
		path := filepath.Join(e.segDir, name)
		if filepath.Ext(name) == ".tmp" {
			os.Remove(path) // an interrupted flush; its log is still there
			continue
		}
		gen, ok := parseSegName(name)
		metaGen, isMerged := gen, false
		if ok && gen&mergeStagingBit != 0 {
			// The output of a merge that never committed: its inputs are
			// all still here.
			os.Remove(path)
			continue
		}
		if !ok {
			var c uint64
			if gen, c, ok = parseMergedName(name); !ok {
				continue
			}
			metaGen, isMerged = mergeStagingBit|c, true
			e.mg.next = max(e.mg.next, c+1)
		}
		s, err := openSegment(path)
		if err == nil {
			// Blocks and postings are otherwise checked only when read:
			// checked here, damage is repaired before anything is served.
			if err = s.verifyLazy(); err != nil {
				s.close()
			} else {
				// The check read the whole file through the mapping: released
				// now, a big store's files are not all resident at once.
				s.release()
			}
		}
		if errors.Is(err, store.ErrCorrupt) {
			covered = max(covered, gen) // its logs are gone whatever is left of it
			e.log.Error("embedded: segment damaged; keeping its intact rows", "file", path, "err", err)
			if s, err = e.repairSegment(path, metaGen); err != nil {
				return 0, fmt.Errorf("embedded: repair %s: %w", name, err)
			}
			if s == nil {
				continue
			}
		}
		if err != nil {
			return 0, fmt.Errorf("embedded: %w", err)
		}
		segs = append(segs, s)
		if s.meta.Gen != metaGen {
			return 0, fmt.Errorf("embedded: segment %s: %w: names generation %d", name, store.ErrCorrupt, s.meta.Gen)
		}
		merged[s] = isMerged
		covered = max(covered, gen)
		segMaxSeq = max(segMaxSeq, s.meta.MaxSeq)
		e.w.lastSeq = max(e.w.lastSeq, s.meta.MaxSeq)
	}
	// Merged files are named by the generation they cover, which several
	// share: Seq order is the order searches and ReadFrom rely on.
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Compare(a.meta.MinSeq, b.meta.MinSeq) })
	for i := 1; i < len(segs); i++ {
		if segs[i].meta.MinSeq <= segs[i-1].meta.MaxSeq {
			return 0, fmt.Errorf("embedded: segments %s and %s: %w: overlapping Seq ranges",
				filepath.Base(segs[i-1].path), filepath.Base(segs[i].path), store.ErrCorrupt)
		}
	}
	// Hashing every key is most of the start-up time of a big store: it
	// runs on all cores.
	keys := make([][]keyEntry, len(segs))
	total := 0
	for _, s := range segs {
		total += s.n
	}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(segs); i = int(next.Add(1)) - 1 {
				keys[i] = segKeyIndex(segs[i])
				segs[i].release()
			}
		}()
	}
	wg.Wait()
	e.ix.filter = newKeyFilter(2 * total)
	for i, s := range segs {
		if err := e.installSegment(s, keys[i]); err != nil {
			return 0, err
		}
		if e.installed(s) && merged[s] {
			e.ix.merged[s.id] = true
		}
		keys[i] = nil
		s.release()
	}
	// Only segments bound what the log may still hold: a deletion rule
	// records the Seq current when it was made, which can belong to events
	// still only in the log.
	e.w.replaySeq = segMaxSeq
	return covered, nil
}

// installed reports whether s is in the index (for cleanup after a failed
// Open).
func (e *Engine) installed(s *segment) bool {
	return s.id != 0 && e.ix.segByID[s.id] == s
}

// replay reads the logs not covered by a segment into the memtable, in
// parallel where it can (tokenising is the costly part).
func (e *Engine) replay(covered uint64) error {
	gens, err := listWAL(e.walDir)
	if err != nil {
		return fmt.Errorf("embedded: list log: %w", err)
	}
	var (
		pending []event.Event
		encs    [][]byte
	)
	replayed := 0
	for i, gen := range gens {
		path := filepath.Join(e.walDir, walName(gen))
		if gen <= covered {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("embedded: remove flushed log: %w", err)
			}
			continue
		}
		last := i == len(gens)-1
		damage, err := replayWAL(path, last, func(p []byte) error {
			return e.replayRecord(p, &pending, &encs)
		})
		for _, d := range damage {
			e.reportDamage(d)
		}
		if err != nil {
			return fmt.Errorf("embedded: replay: %w", err)
		}
		e.w.walGen = gen
		replayed++
	}
	keys := parallelKeys(pending)
	m := e.ix.mem
	for i := range pending {
		ev := &pending[i]
		e.w.lastSeq = max(e.w.lastSeq, ev.Seq)
		if e.ruleCovers(ev) || m.has(ev.CompanyID, ev.ID) || e.segHas(ev.CompanyID, ev.ID) {
			continue
		}
		m.add(ev, encs[i], keys[i])
	}
	e.log.Info("embedded: replayed log", "files", replayed, "events", len(pending))
	return nil
}

// parallelKeysMin is the batch size from which tokenising is spread over
// all cores; below it the goroutines cost more than they save.
const parallelKeysMin = 256

// parallelKeys computes the posting keys of every event on all cores.
func parallelKeys(evs []event.Event) []eventKeys {
	keys := make([]eventKeys, len(evs))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	chunk := (len(evs) + workers - 1) / workers
	for w := 0; w < workers && w*chunk < len(evs); w++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			indexEvents(evs[lo:hi], keys[lo:hi], nil)
		}(w*chunk, min(len(evs), (w+1)*chunk))
	}
	wg.Wait()
	return keys
}

func (e *Engine) replayRecord(p []byte, pending *[]event.Event, encs *[][]byte) error {
	if len(p) == 0 || p[0] != recordBatch {
		return fmt.Errorf("%w: unknown record kind", store.ErrCorrupt)
	}
	p = bytes.Clone(p) // the reader reuses its buffer; the memtable keeps slices of this
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
		*pending = append(*pending, ev)
		*encs = append(*encs, b)
	}
	if d.err != nil {
		return fmt.Errorf("%w: %w", store.ErrCorrupt, d.err)
	}
	return nil
}

func (e *Engine) ruleCovers(ev *event.Event) bool {
	for i := range e.ix.rules {
		if e.ix.rules[i].covers(ev) {
			return true
		}
	}
	return false
}

func (e *Engine) openWAL(gen uint64) error {
	path := filepath.Join(e.walDir, walName(gen))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("embedded: create log: %w", err)
	}
	if err := syncDir(e.walDir); err != nil {
		f.Close()
		os.Remove(path)
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
	// Index keys are computed here, on the caller's goroutine, so that
	// concurrent writers tokenise in parallel and the single writer only
	// files the results. Their memory is reused once submit returns: the
	// writer is then done with them (or never saw them).
	ak := appendKeysPool.Get().(*appendKeys)
	err := e.submit(ctx, &request{kind: reqAppend, events: events, keys: ak.index(events)})
	appendKeysPool.Put(ak)
	return err
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
	if err := e.checkOpen(); err != nil {
		return 0, err
	}
	r := &request{kind: reqDelete, rule: deleteRule{CompanyID: companyID, Before: before}}
	if err := e.submit(ctx, r); err != nil {
		return 0, err
	}
	return r.deleted, nil
}

// Close waits for queued writes, writes the memtable out as a segment (so
// that the next start has no log to replay), and releases everything.
// Later calls get store.ErrClosed.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	if e.closed.Swap(true) {
		e.closeMu.Unlock()
		return store.ErrClosed
	}
	close(e.reqs)
	e.closeMu.Unlock()
	<-e.writerDone
	e.stopMerger()
	close(e.stopFlusher)
	<-e.flusherDone

	var errs []error
	if err := e.w.wal.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("embedded: sync log: %w", err))
	}
	// The log stays the source of truth if this fails; the next start
	// replays it.
	if len(errs) == 0 {
		if e.ix.frozen != nil {
			if err := e.flushFrozen(); err != nil {
				e.log.Warn("embedded: flush at close failed; the log keeps the events", "err", err)
			}
		}
		if e.ix.frozen == nil && e.ix.mem.len() > 0 {
			e.mu.Lock() // searches that started before Close may still run
			e.ix.mem.gen = e.w.walGen
			e.ix.frozen, e.ix.mem = e.ix.mem, newMemtable()
			e.mu.Unlock()
			if err := e.flushFrozen(); err != nil {
				e.log.Warn("embedded: flush at close failed; the log keeps the events", "err", err)
			}
		}
	}
	e.mu.Lock()
	e.ix.released = true
	e.releaseAll()
	e.mu.Unlock()
	return errors.Join(errs...)
}

func (e *Engine) checkOpen() error {
	if e.closed.Load() {
		return store.ErrClosed
	}
	return nil
}
