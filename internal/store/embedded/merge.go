package embedded

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/store"
)

// Merging. Every full memtable becomes a segment of MemtableEvents rows;
// left alone, a store of 10M events is ~100 segments and a selective query
// pays a dictionary lookup and bitmap work in each. A background merger
// rewrites runs of adjacent segments (adjacent in Seq order, so that
// segments keep disjoint, increasing Seq ranges) into partitions: a merged
// segment holds the events of one UTC day of Occurred (a trail follows
// time, nearly) and at most MergeRows rows. Retention then drops whole
// files, and rewriting leaves out deleted rows, reclaiming their space.
//
// A merge cuts the inputs' live rows, in Seq order, into outputs (reading
// only their columns), then writes each output straight from the inputs
// (segment_stream.go): rows copied still encoded, postings merged from
// the inputs' dictionaries. The outputs are written under staging names (generation
// mergeStagingBit|n, which Open deletes), then a manifest naming outputs
// and inputs is written atomically: that is the commit. After it the
// outputs are renamed to their final names (<gen>-<n>.seg, gen being the
// newest log generation the inputs covered), swapped into the index under
// the lock, and the inputs deleted. Open finishes a committed merge from
// its manifest (renames, deletions; all idempotent) and deletes the
// outputs of one that had not committed, whose inputs are all still there.
// So a kill at any point loses and duplicates nothing.

const (
	// mergeStagingBit marks the generation of a merge output not yet
	// committed; log generations never come near it.
	mergeStagingBit  = 1 << 62
	mergeManifest    = "merge.json"
	dayMs            = 24 * 60 * 60 * 1000
	mergeRecheck     = 30 * time.Second
	mergeRetryAfter  = time.Minute
	mergeDecodeChunk = 1024 // rows between stop checks and CPU throttling
)

type mergeState struct {
	// mu lets one merge run at a time (the merger or Compact).
	mu   sync.Mutex
	next uint64 // number of the next merge output
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// crashAt, for tests: the merge stops right after this step, leaving
	// the files as a kill -9 there would.
	crashAt string
	// rowsWritten counts the rows merges have written (their write
	// amplification, against the rows ingested).
	rowsWritten int
	// committed counts the events the writer has filed, for the append
	// rate that MergeCPUShareBusy follows.
	committed atomic.Int64
	// compacting counts Compact calls running: the background merger
	// starts no merge meanwhile and its merge in progress stops sleeping,
	// since the two take turns on mu and Compact would otherwise wait out
	// every throttled merge in between (a 10M-event Compact took 7 minutes
	// that way, for about 70 s of merging).
	compacting atomic.Int32
}

// errMergeStopped: the engine is closing; the merge was abandoned cleanly.
var errMergeStopped = errors.New("embedded: merge stopped")

// errMergeCrashed is returned by a merge stopped by the crashAt test hook.
var errMergeCrashed = errors.New("embedded: merge stopped by test hook")

func mergedName(gen, n uint64) string { return fmt.Sprintf("%016x-%016x%s", gen, n, segSuffix) }

func parseMergedName(name string) (gen, n uint64, ok bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	gen, err1 := strconv.ParseUint(a, 16, 64)
	n, err2 := strconv.ParseUint(b, 16, 64)
	return gen, n, err1 == nil && err2 == nil
}

// segGen is the newest log generation s covers, from its file name.
func segGen(s *segment) uint64 {
	name := filepath.Base(s.path)
	if g, ok := parseSegName(name); ok {
		return g
	}
	g, _, _ := parseMergedName(name)
	return g
}

// utcDay is the day number (since the epoch) of a time in epoch ms.
func utcDay(ms int64) int64 {
	d := ms / dayMs
	if ms%dayMs < 0 {
		d--
	}
	return d
}

type manifest struct {
	Outputs []manifestOutput `json:"outputs"`
	Inputs  []string         `json:"inputs"`
}

type manifestOutput struct {
	Staged string `json:"staged"`
	Final  string `json:"final"`
}

// recoverMerge finishes a merge whose manifest was written (Open, before
// the segments are read).
func (e *Engine) recoverMerge() error {
	path := filepath.Join(e.opts.Dir, mergeManifest)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded: read merge manifest: %w", err)
	}
	var mf manifest
	if err := json.Unmarshal(b, &mf); err != nil {
		// Written atomically, so this is damage, not a torn write: the
		// inputs may be gone already, so the outputs must be kept.
		return fmt.Errorf("embedded: merge manifest: %w", err)
	}
	for _, o := range mf.Outputs {
		staged, final := filepath.Join(e.segDir, o.Staged), filepath.Join(e.segDir, o.Final)
		if err := os.Rename(staged, final); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("embedded: finish merge: %w", err)
		}
	}
	for _, in := range mf.Inputs {
		if err := os.Remove(filepath.Join(e.segDir, in)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("embedded: finish merge: %w", err)
		}
	}
	if err := syncDir(e.segDir); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	e.log.Info("embedded: finished an interrupted merge", "outputs", len(mf.Outputs), "inputs", len(mf.Inputs))
	return syncDir(e.opts.Dir)
}

func (e *Engine) startMerger() {
	e.mg.kick = make(chan struct{}, 1)
	e.mg.stop = make(chan struct{})
	e.mg.done = make(chan struct{})
	if e.opts.MergeCPUShare < 0 || e.opts.noBackgroundMerge {
		close(e.mg.done)
		return
	}
	go e.merger()
}

// stopMerger stops the merger, abandoning a merge in progress (its staged
// files are removed; the inputs stay).
func (e *Engine) stopMerger() {
	if e.mg.stop == nil {
		return
	}
	e.mg.once.Do(func() { close(e.mg.stop) })
	<-e.mg.done
}

func (e *Engine) kickMerger() {
	select {
	case e.mg.kick <- struct{}{}:
	default:
	}
}

// merger runs merges while the policy wants some, at most
// MergeCPUShare of one core, after each flush and deletion and every
// mergeRecheck.
func (e *Engine) merger() {
	defer close(e.mg.done)
	// The CPU share is measured on this thread's own clock: wall time would
	// count the other processes' load as the merge's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tick := time.NewTicker(mergeRecheck)
	defer tick.Stop()
	for {
		select {
		case <-e.mg.stop:
			return
		case <-e.mg.kick:
		case <-tick.C:
		}
		for e.mg.compacting.Load() == 0 {
			err := e.mergeOnce(false, e.opts.MergeCPUShare)
			if errors.Is(err, errNothingToMerge) {
				break
			}
			if errors.Is(err, errMergeStopped) || errors.Is(err, errMergeCrashed) {
				return
			}
			if err != nil {
				e.log.Error("embedded: merge failed; segments stay as they are", "err", err, "retryIn", mergeRetryAfter)
				select {
				case <-e.mg.stop:
					return
				case <-time.After(mergeRetryAfter):
				}
			}
		}
	}
}

var errNothingToMerge = errors.New("embedded: nothing to merge")

// Compact writes the memtable out as a segment and runs merges until the
// policy wants none, treating the newest day as complete (the background
// merger waits for a day to end before partitioning it). It runs on the
// caller's goroutine at full speed. Benchmarks and tests use it to measure
// or test the settled state. With merging off (MergeCPUShare < 0) it only
// flushes.
func (e *Engine) Compact(ctx context.Context) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	if err := e.flushNow(ctx); err != nil {
		return err
	}
	if e.opts.MergeCPUShare < 0 {
		return nil // merging is off
	}
	e.mg.compacting.Add(1)
	defer e.mg.compacting.Add(-1)
	// The merge's CPU figure reads this thread's clock.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := e.mergeOnce(true, 1)
		if errors.Is(err, errNothingToMerge) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// mergeOnce plans and runs one merge.
func (e *Engine) mergeOnce(force bool, share float64) error {
	e.mg.mu.Lock()
	defer e.mg.mu.Unlock()
	select {
	case <-e.mg.stop:
		return errMergeStopped
	default:
	}
	inputs := e.planMerge(force)
	if len(inputs) == 0 {
		return errNothingToMerge
	}
	return e.runMerge(inputs, share, !force)
}

// damagedSegments names the segments a read found damaged since Open: a
// merge would have to drop or launder their unreadable rows, so they are
// left alone until the next start repairs them.
func (e *Engine) damagedSegments() map[string]bool {
	e.damageMu.Lock()
	defer e.damageMu.Unlock()
	out := map[string]bool{}
	for _, d := range e.damage {
		if d.File != "" && d.Kind == "read" {
			out[filepath.Base(d.File)] = true
		}
	}
	return out
}

// live is the number of rows of s not deleted.
func live(s *segment) int { return s.n - int(s.deleted.GetCardinality()) }

// startDay is the UTC day of the first row of s in Seq order: where the
// trail was when s began (a late event does not move it).
func startDay(s *segment) int64 { return utcDay(s.occurred(int(s.bySeq(0)))) }

// planMerge picks the next run of adjacent segments to merge, or none.
// force treats the newest day as complete (Compact).
//
// Wanted: a flushed segment once the trail has moved past the day it
// starts in (so that a day is rewritten about once, not once per flush); a merged one with
// deleted rows (their space comes back); two neighbouring merged segments
// of the same day that fit in MergeRows together. A run starting at a
// wanted segment takes in the following wanted ones, and a merged
// neighbour of the same day on either side, up to 2×MergeRows input rows.
func (e *Engine) planMerge(force bool) []*segment {
	damaged := e.damagedSegments()
	e.mu.RLock()
	defer e.mu.RUnlock()
	segs := e.ix.segs
	if len(segs) == 0 {
		return nil
	}
	limit := e.opts.MergeRows
	newest := utcDay(segs[len(segs)-1].meta.MaxOccurred)
	ok := func(i int) bool { return !damaged[filepath.Base(segs[i].path)] }
	merged := func(i int) bool { return e.ix.merged[segs[i].id] }
	want := func(i int) bool {
		s := segs[i]
		if !ok(i) {
			return false
		}
		if !merged(i) {
			// Once the trail has moved past the day a flushed segment
			// starts in, that day is complete: merged now, the segment
			// completes it and starts the next day's partition, which
			// takes in the rest of that day later. Waiting until the
			// trail had moved past the segment's last day wrote most of
			// every day twice (a partial partition of the segments
			// before the one crossing midnight, then the whole day).
			return force || startDay(s) < newest
		}
		return !s.deleted.IsEmpty()
	}
	// sameDay: merged segment j continues the day segment i ends with.
	sameDay := func(i, j int) bool {
		return ok(i) && ok(j) && merged(j) && utcDay(segs[j].meta.MaxOccurred) == utcDay(segs[i].meta.MaxOccurred) &&
			live(segs[i])+live(segs[j]) <= limit
	}
	damagedSkipped := 0
	for i := range segs {
		if !ok(i) {
			damagedSkipped++
			continue
		}
		start := -1
		switch {
		case want(i):
			start = i
			if i > 0 && merged(i-1) && ok(i-1) && utcDay(segs[i-1].meta.MaxOccurred) == utcDay(segs[i].meta.MinOccurred) &&
				live(segs[i-1])+live(segs[i]) <= limit {
				start = i - 1
			}
		case merged(i) && i+1 < len(segs) && sameDay(i, i+1):
			start = i
		}
		if start < 0 {
			continue
		}
		run := []*segment{segs[start]}
		rows := live(segs[start])
		for j := start + 1; j < len(segs) && ok(j) && (j == i || want(j) || sameDay(j-1, j)); j++ {
			if j > i && rows+live(segs[j]) > 2*limit {
				break
			}
			run = append(run, segs[j])
			rows += live(segs[j])
		}
		if len(run) == 1 && !want(start) {
			continue
		}
		if damagedSkipped > 0 {
			e.log.Warn("embedded: not merging segments a read found damaged; the next start repairs them", "segments", damagedSkipped)
		}
		return run
	}
	return nil
}

// runMerge merges inputs (adjacent, in Seq order) into day partitions.
// share bounds the CPU it takes, as a fraction of one core; a background
// merge takes MergeCPUShareBusy instead while appends arrive fast.
func (e *Engine) runMerge(inputs []*segment, share float64, background bool) (err error) {
	start := time.Now()
	e.mu.Lock()
	dels := make([]*roaring.Bitmap, len(inputs))
	for i, s := range inputs {
		e.ix.merging[s] = true
		dels[i] = s.deleted.Clone()
	}
	e.mu.Unlock()
	var staged []*segment
	committed := false
	defer func() {
		if committed || errors.Is(err, errMergeCrashed) {
			return
		}
		for _, s := range staged {
			s.close()
			os.Remove(s.path)
		}
		e.mu.Lock()
		var orphans []*segment
		for _, s := range inputs {
			delete(e.ix.merging, s)
			if e.ix.mergeDropped[s] {
				delete(e.ix.mergeDropped, s)
				orphans = append(orphans, s)
			}
		}
		e.mu.Unlock()
		for _, s := range orphans {
			s.close()
			os.Remove(s.path)
		}
	}()

	th := newThrottle(share, e.mg.stop)
	if background {
		th.compacting = &e.mg.compacting
		th.followIngest(e.opts.MergeCPUShareBusy, float64(e.opts.MergeBusyEventsPerSec), &e.mg.committed)
	}
	var gen uint64
	for _, s := range inputs {
		gen = max(gen, segGen(s))
	}
	// Outputs: the live rows in Seq order (each input's through its bySeq
	// column; the inputs' Seq ranges follow one another), cut where the
	// trail reaches the next UTC day or an output is full. Only columns
	// are read here.
	ins := make([]*mergeIn, len(inputs))
	var outs [][]mref
	var cur []mref
	var partDay int64
	for i, s := range inputs {
		ins[i] = newMergeIn(s, e.zdec)
		for j := range s.n {
			if j%(64*mergeDecodeChunk) == 0 {
				select {
				case <-e.mg.stop:
					return errMergeStopped
				default:
				}
			}
			row := s.bySeq(j)
			if int(row) >= s.n {
				err := corruptf("segment %s: bad Seq-order column", filepath.Base(s.path))
				e.noteReadDamage(err)
				return err
			}
			if dels[i].Contains(row) {
				continue
			}
			day := utcDay(s.occurred(int(row)))
			if len(cur) > 0 && (day > partDay || len(cur) >= e.opts.MergeRows) {
				outs = append(outs, cur)
				cur = nil
			}
			if len(cur) == 0 {
				partDay = day
			}
			cur = append(cur, mref{uint32(i), row})
		}
	}
	if len(cur) > 0 {
		outs = append(outs, cur)
	}
	pause := func() error {
		select {
		case <-e.mg.stop:
			return errMergeStopped
		default:
		}
		return th.pause()
	}
	for _, rows := range outs {
		g := mergeStagingBit | e.mg.next
		e.mg.next++
		path, err := writeMergedSegment(e.segDir, g, ins, rows, e.zenc, pause)
		if err != nil {
			if errors.Is(err, store.ErrCorrupt) {
				e.noteReadDamage(err)
			}
			return fmt.Errorf("merge: %w", err)
		}
		s, err := openSegment(path)
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("reopen merged segment: %w", err)
		}
		staged = append(staged, s)
		for _, in := range inputs {
			in.release()
		}
		if err := pause(); err != nil {
			return err
		}
	}
	if err := e.mergeStep("staged"); err != nil {
		return err
	}

	mf := manifest{}
	for _, s := range staged {
		c := uint64(0)
		if g, ok := parseSegName(filepath.Base(s.path)); ok {
			c = g &^ mergeStagingBit
		}
		mf.Outputs = append(mf.Outputs, manifestOutput{Staged: filepath.Base(s.path), Final: mergedName(gen, c)})
	}
	for _, s := range inputs {
		mf.Inputs = append(mf.Inputs, filepath.Base(s.path))
	}
	mfPath := filepath.Join(e.opts.Dir, mergeManifest)
	if err := writeFileAtomic(mfPath, mustJSON(mf)); err != nil {
		return fmt.Errorf("write merge manifest: %w", err)
	}
	committed = true
	if err := e.mergeStep("committed"); err != nil {
		return err
	}
	// From here the merge is done whatever happens: a failure below leaves
	// the manifest, and the next Open finishes the job.
	for i, s := range staged {
		final := filepath.Join(e.segDir, mf.Outputs[i].Final)
		if err := os.Rename(s.path, final); err != nil {
			return fmt.Errorf("rename merged segment (the next start finishes the merge): %w", err)
		}
		s.path = final // the mapping does not care
	}
	if err := syncDir(e.segDir); err != nil {
		return err
	}
	if err := e.mergeStep("renamed"); err != nil {
		return err
	}
	keys := make([][]keyEntry, len(staged))
	for i, s := range staged {
		keys[i] = segKeyIndex(s)
		s.release()
		e.addToFilter(keys[i])
	}
	if err := e.swapMerged(inputs, staged, keys); err != nil {
		return err
	}
	if err := e.mergeStep("swapped"); err != nil {
		return err
	}
	for _, s := range inputs {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove merged input (the next start finishes the merge): %w", err)
		}
	}
	if err := syncDir(e.segDir); err != nil {
		return err
	}
	if err := e.mergeStep("inputs-removed"); err != nil {
		return err
	}
	if err := os.Remove(mfPath); err != nil {
		return err
	}
	outRows := 0
	for _, s := range staged {
		outRows += s.n
	}
	e.mg.rowsWritten += outRows
	e.log.Info("embedded: merged segments", "inputs", len(inputs), "outputs", len(staged), "rows", outRows,
		"took", time.Since(start).Round(time.Millisecond), "cpu", th.used.Round(time.Millisecond))
	return nil
}

func (e *Engine) mergeStep(step string) error {
	if e.mg.crashAt == step {
		return errMergeCrashed
	}
	return nil
}

// swapMerged replaces inputs by outputs in the index: one hold of the
// write lock, the outputs' deletion bitmaps computed before it (again
// inside only if a DeleteBefore ran meanwhile).
func (e *Engine) swapMerged(inputs, outputs []*segment, keys [][]keyEntry) error {
	e.mu.RLock()
	rules, ver := e.ix.rules, e.ix.rulesVer
	e.mu.RUnlock()
	dels := make([]*roaring.Bitmap, len(outputs))
	for i, s := range outputs {
		d, err := rulesDeleted(s, rules)
		if err != nil {
			return err
		}
		dels[i] = d
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ix.rulesVer != ver {
		for i, s := range outputs {
			d, err := rulesDeleted(s, e.ix.rules)
			if err != nil {
				return err
			}
			dels[i] = d
		}
	}
	ix := &e.ix
	gone := make(map[*segment]bool, len(inputs))
	for _, s := range inputs {
		gone[s] = true
		delete(ix.merging, s)
		delete(ix.mergeDropped, s)
		delete(ix.keyIdx, s.id)
		delete(ix.merged, s.id)
		delete(ix.segByID, s.id)
	}
	ix.segs = slices.DeleteFunc(ix.segs, func(s *segment) bool { return gone[s] })
	var empty []*segment
	for i, s := range outputs {
		s.deleted = dels[i]
		s.id = ix.nextSegID
		ix.nextSegID++
		ix.segByID[s.id] = s
		ix.keyIdx[s.id] = keys[i]
		ix.merged[s.id] = true
		ix.segs = append(ix.segs, s)
		if int(dels[i].GetCardinality()) == s.n {
			empty = append(empty, s)
		}
	}
	slices.SortFunc(ix.segs, func(a, b *segment) int { return cmp.Compare(a.meta.MinSeq, b.meta.MinSeq) })
	for _, s := range inputs {
		s.close() // no search holds it: they run under the read lock
	}
	for _, s := range empty {
		e.dropSegment(s)
	}
	return nil
}

// flushNow freezes the memtable (through the writer, which owns it) and
// waits until no frozen memtable is left.
func (e *Engine) flushNow(ctx context.Context) error {
	for {
		r := &request{kind: reqFreeze}
		if err := e.submit(ctx, r); err != nil {
			return err
		}
		if r.deleted == 1 { // frozen (or nothing to freeze)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	for {
		e.mu.RLock()
		busy := e.ix.frozen != nil
		e.mu.RUnlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// throttle keeps a goroutine (locked to its thread) at share of one core:
// pause sleeps so that the thread's CPU time since the last pause is
// share of the time elapsed.
type throttle struct {
	stop    <-chan struct{}
	share   float64
	lastCPU time.Duration
	used    time.Duration
	// busyShare, when positive, replaces share while events are
	// committed at busyRate per second or more (committed counts them;
	// the rate is taken over windows of rateWindow).
	// compacting, when set and positive, lifts the throttle (a Compact is
	// waiting for this merge).
	compacting *atomic.Int32
	busyShare  float64
	busyRate   float64
	committed  *atomic.Int64
	rateFrom   time.Time
	rateBase   int64
	busy       bool
}

func newThrottle(share float64, stop <-chan struct{}) *throttle {
	return &throttle{stop: stop, share: share, lastCPU: threadCPU()}
}

// maxPause bounds one sleep, so that a tiny share still makes progress.
const maxPause = 2 * time.Second

// rateWindow is how long the append rate is averaged over: long enough
// to span several group commits, short enough that merges resume soon
// after a burst.
const rateWindow = time.Second

// followIngest makes the throttle take busyShare while events are
// committed (counted by committed) at busyRate per second or more.
func (t *throttle) followIngest(busyShare, busyRate float64, committed *atomic.Int64) {
	t.busyShare, t.busyRate, t.committed = busyShare, busyRate, committed
}

// sleepFor is how long to sleep after d of CPU time, at the share that
// applies now.
func (t *throttle) sleepFor(d time.Duration, now time.Time) time.Duration {
	if t.compacting != nil && t.compacting.Load() > 0 {
		return 0
	}
	share := t.share
	if t.busyShare > 0 && t.committed != nil {
		n := t.committed.Load()
		switch el := now.Sub(t.rateFrom); {
		case t.rateFrom.IsZero():
			t.rateFrom, t.rateBase = now, n
		case el >= rateWindow:
			t.busy = float64(n-t.rateBase)/el.Seconds() >= t.busyRate
			t.rateFrom, t.rateBase = now, n
		}
		if t.busy {
			share = t.busyShare
		}
	}
	if share <= 0 || share >= 1 || d <= 0 {
		return 0
	}
	return min(maxPause, time.Duration(float64(d)*(1-share)/share))
}

func (t *throttle) pause() error {
	now := threadCPU()
	d := now - t.lastCPU
	t.used += d
	t.lastCPU = now
	sleep := t.sleepFor(d, time.Now())
	if sleep <= 0 {
		return nil
	}
	select {
	case <-t.stop:
		return errMergeStopped
	case <-time.After(sleep):
	}
	t.lastCPU = threadCPU()
	return nil
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
