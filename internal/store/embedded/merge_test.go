package embedded

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

const testDay0 = int64(1_700_006_400_000) // a UTC midnight (19675 days)

// mergeOpts: tiny flushes and merges, no background merger unless a test
// turns it on, so that Compact decides when merges run.
func mergeOpts(o *Options) {
	o.MemtableEvents = 64
	o.MergeRows = 300
	o.noBackgroundMerge = true
}

// daysGen makes events that follow time over several days, a few minutes
// out of order, as a live trail is.
type daysGen struct {
	*gen
	at int64
}

func (g *daysGen) batch(n int, step int64) []event.Event {
	out := g.gen.batch(n)
	for i := range out {
		g.at += step
		out[i].Occurred = g.at - int64(g.r.IntN(5))*60_000
	}
	return out
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, segDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// sameStore requires e to hold exactly want (by ReadFrom, Get and a set of
// searches against the reference), once each.
func sameStore(t *testing.T, e *Engine, want []event.Event) {
	t.Helper()
	got := allOf(t, e)
	if len(got) != len(want) {
		t.Fatalf("ReadFrom: %d events, want %d", len(got), len(want))
	}
	byID := map[string]event.Event{}
	for _, ev := range want {
		byID[ev.CompanyID+"/"+ev.ID] = ev
	}
	var prev uint64
	for _, ev := range got {
		w, ok := byID[ev.CompanyID+"/"+ev.ID]
		if !ok {
			t.Fatalf("ReadFrom returned %s/%s, not stored (or twice)", ev.CompanyID, ev.ID)
		}
		delete(byID, ev.CompanyID+"/"+ev.ID)
		if ev.Seq <= prev {
			t.Fatalf("ReadFrom out of Seq order at %s", ev.ID)
		}
		prev = ev.Seq
		w.Seq = ev.Seq
		if !reflect.DeepEqual(ev, w) {
			t.Fatalf("event %s changed: %+v vs %+v", ev.ID, ev, w)
		}
	}
	for i := 0; i < len(want); i += 97 {
		if _, err := e.Get(context.Background(), want[i].CompanyID, want[i].ID); err != nil {
			t.Fatalf("Get %s: %v", want[i].ID, err)
		}
	}
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 60 {
		q := query.Query{CompanyID: []string{"c1", "c2"}[r.IntN(2)], ProjectID: "P1",
			IncludeProject: true, IncludeCompany: r.IntN(2) == 0, Size: []int{5, 100}[r.IntN(2)], Page: r.IntN(3)}
		switch r.IntN(4) {
		case 0:
			q.UserIDs = []string{"u1", "John.Doe@example.com"}
		case 1:
			q.RemoteAddresses = []string{"10.0.0.2"}
			q.LoginIDs = []string{"john@x.io"}
		case 2:
			q.Tenants = []string{"t1", "東京"}
		}
		if r.IntN(2) == 0 {
			q.From = testDay0 + r.Int64N(4*dayMs)
			q.To = q.From + r.Int64N(2*dayMs)
		}
		ref := reference(want, q)
		res, err := e.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		off := min(q.Offset(), len(ref))
		page := ref[off:min(off+q.Size, len(ref))]
		if res.Total != len(ref) || !sameIDs(res.Events, page) {
			t.Fatalf("query %d %+v: total %d want %d", i, q, res.Total, len(ref))
		}
	}
	checkT(t, e, len(want))
}

// checkPartitions requires every merged segment to hold one UTC day (its
// rows may reach back a few minutes: the trail is that much out of
// order) and at most MergeRows rows, in Seq order.
func checkPartitions(t *testing.T, e *Engine) (merged, flushed int) {
	t.Helper()
	e.mu.RLock()
	defer e.mu.RUnlock()
	for i, s := range e.ix.segs {
		if i > 0 && s.meta.MinSeq <= e.ix.segs[i-1].meta.MaxSeq {
			t.Fatalf("segments out of Seq order at %s", s.path)
		}
		if !e.ix.merged[s.id] {
			flushed++
			continue
		}
		merged++
		if s.n > e.opts.MergeRows {
			t.Errorf("%s: %d rows > %d", filepath.Base(s.path), s.n, e.opts.MergeRows)
		}
		if utcDay(s.meta.MaxOccurred) > utcDay(s.meta.MinOccurred+10*60_000) {
			t.Errorf("%s spans %s .. %s", filepath.Base(s.path), time.UnixMilli(s.meta.MinOccurred).UTC(),
				time.UnixMilli(s.meta.MaxOccurred).UTC())
		}
	}
	return merged, flushed
}

func TestMergeKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir, mergeOpts)
	g := &daysGen{gen: newGen(11), at: testDay0}
	var all []event.Event
	for range 80 {
		b := g.batch(50, 60_000) // ~2.8 days
		appendT(t, e, b)
		all = append(all, b...)
	}
	before := len(segFiles(t, dir))
	sameStore(t, e, all)
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	merged, flushed := checkPartitions(t, e)
	// As few as the days and the row cap allow, plus one piece per day
	// boundary (rows a few minutes late start the next day's partition).
	perDay := map[int64]int{}
	for _, ev := range all {
		perDay[utcDay(ev.Occurred)]++
	}
	most := 0
	for _, n := range perDay {
		most += (n+e.opts.MergeRows-1)/e.opts.MergeRows + 1
	}
	t.Logf("%d segment files before, %d merged and %d flushed after (at most %d)", before, merged, flushed, most)
	if flushed != 0 || merged > most || merged < len(perDay) {
		t.Fatalf("%d merged, %d flushed segments from %d", merged, flushed, before)
	}
	sameStore(t, e, all)

	// Dedupe still sees every merged row.
	again := slices.Clone(all[:500])
	appendT(t, e, again)
	sameStore(t, e, all)

	// More of the last day, then merge again: the day's partial partition
	// takes in the new rows rather than leaving two small pieces.
	b := g.batch(50, 60_000)
	appendT(t, e, b)
	all = append(all, b...)
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkPartitions(t, e)
	sameStore(t, e, all)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openT(t, dir, mergeOpts)
	defer e.Close()
	checkPartitions(t, e)
	sameStore(t, e, all)
}

// TestMergeCrashAtEachStep leaves the files of each step of a merge, as a
// kill -9 there would, reopens, and requires every event exactly once.
func TestMergeCrashAtEachStep(t *testing.T) {
	for _, step := range []string{"staged", "committed", "renamed", "swapped", "inputs-removed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			e := openT(t, dir, mergeOpts)
			g := &daysGen{gen: newGen(12), at: testDay0}
			var all []event.Event
			for range 12 {
				b := g.batch(100, 5*60_000)
				appendT(t, e, b)
				all = append(all, b...)
			}
			// A deletion before the merge: merged output must not bring its
			// rows back.
			cut := testDay0 + dayMs/2
			if _, err := e.DeleteBefore(context.Background(), "c2", cut); err != nil {
				t.Fatal(err)
			}
			all = slices.DeleteFunc(all, func(ev event.Event) bool { return ev.CompanyID == "c2" && ev.Occurred < cut })
			if err := e.flushNow(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.mg.crashAt = step
			if err := e.Compact(context.Background()); !errors.Is(err, errMergeCrashed) {
				t.Fatalf("Compact: %v, want the crash hook", err)
			}
			e.crash()
			files := segFiles(t, dir)
			e = openT(t, dir, mergeOpts)
			sameStore(t, e, all)
			if _, err := os.Stat(filepath.Join(dir, mergeManifest)); !os.IsNotExist(err) {
				t.Fatalf("manifest left after Open: %v", err)
			}
			if err := e.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkPartitions(t, e)
			sameStore(t, e, all)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("files at the crash: %v", files)
		})
	}
}

// TestRetentionByPartition: a cut on a day boundary removes whole files;
// a cut inside a day leaves that day's partition partly deleted, and the
// next merge rewrites it without the deleted rows.
func TestRetentionByPartition(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir, func(o *Options) { mergeOpts(o); o.MergeRows = 10_000 })
	defer e.Close()
	g := &daysGen{gen: newGen(13), at: testDay0}
	var all []event.Event
	for range 30 {
		b := g.batch(100, 5*60_000) // 3000 events, ~10 days
		for i := range b {
			b[i].CompanyID = "c1" // retention is per company: one company here
		}
		appendT(t, e, b)
		all = append(all, b...)
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := segFiles(t, dir)
	// Whole days: a cut at a midnight, with the trail's few minutes of
	// disorder behind it, drops the older partitions' files.
	cut := testDay0 + 3*dayMs
	n, err := e.DeleteBefore(context.Background(), "c1", cut)
	if err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(ev event.Event) bool { return ev.Occurred < cut })
	after := segFiles(t, dir)
	t.Logf("cut at day 3: %d deleted, files %d -> %d", n, len(before), len(after))
	if len(after) > len(before)-3 {
		t.Fatalf("files %v remain after a cut at a day boundary (were %v)", after, before)
	}
	sameStore(t, e, all)

	// Half a day: that partition is partly deleted until the next merge.
	cut = testDay0 + 5*dayMs + dayMs/2
	if _, err := e.DeleteBefore(context.Background(), "c1", cut); err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(ev event.Event) bool { return ev.Occurred < cut })
	partly := func() (segs, deleted int, bytes int64) {
		e.mu.RLock()
		defer e.mu.RUnlock()
		for _, s := range e.ix.segs {
			segs++
			deleted += int(s.deleted.GetCardinality())
			bytes += int64(len(s.mm))
		}
		return
	}
	_, del1, bytes1 := partly()
	if del1 == 0 {
		t.Fatal("a cut inside a day deleted no row of a kept segment")
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, del2, bytes2 := partly()
	t.Logf("cut inside day 5: %d hidden rows, %d bytes -> %d hidden, %d bytes", del1, bytes1, del2, bytes2)
	if del2 != 0 || bytes2 >= bytes1 {
		t.Fatalf("partly deleted partition not rewritten: %d hidden rows, %d -> %d bytes", del2, bytes1, bytes2)
	}
	checkPartitions(t, e)
	sameStore(t, e, all)
}

// TestBackgroundMergeUnderLoad: the background merger runs while writers
// and readers do; nothing is lost or duplicated and searches stay right.
// (Run with -race.)
func TestBackgroundMergeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir, func(o *Options) { mergeOpts(o); o.noBackgroundMerge = false; o.MergeCPUShare = 0.5 })
	g := &daysGen{gen: newGen(14), at: testDay0}
	var (
		mu  sync.Mutex
		all []event.Event
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			q := query.Query{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, Size: 10, UserIDs: []string{"u1"}}
			if _, err := e.Search(context.Background(), q); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 60 {
		b := g.batch(50, 10*60_000) // ~20 days
		appendT(t, e, b)
		mu.Lock()
		all = append(all, b...)
		mu.Unlock()
		if i%20 == 19 {
			cut := testDay0 + int64(i/20)*dayMs
			if _, err := e.DeleteBefore(context.Background(), "c2", cut); err != nil {
				t.Fatal(err)
			}
			all = slices.DeleteFunc(all, func(ev event.Event) bool { return ev.CompanyID == "c2" && ev.Occurred < cut })
		}
	}
	// Let the merger catch up with the finished days.
	deadline := time.Now().Add(20 * time.Second)
	for {
		e.mg.mu.Lock()
		inputs := e.planMerge(false)
		e.mg.mu.Unlock()
		if inputs == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	merged, flushed := checkPartitions(t, e)
	t.Logf("%d merged, %d flushed segments", merged, flushed)
	if merged == 0 {
		t.Fatal("the background merger merged nothing")
	}
	sameStore(t, e, all)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openT(t, dir, mergeOpts)
	defer e.Close()
	sameStore(t, e, all)
}

// TestMergeSkipsDamagedSegment: a segment whose bytes went bad after Open
// is not merged (its unreadable rows would be dropped or laundered); the
// merge says so through Damage, the other segments still merge, and the
// damaged one keeps answering ErrCorrupt for its bad block only.
func TestMergeSkipsDamagedSegment(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir, mergeOpts)
	defer e.Close()
	g := &daysGen{gen: newGen(15), at: testDay0}
	for range 20 {
		appendT(t, e, g.batch(100, 5*60_000))
	}
	if err := e.flushNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mu.RLock()
	victim := e.ix.segs[len(e.ix.segs)/2]
	blocks := victim.sec[secBlocks]
	off := int64(victim.secOff[secBlocks]) + int64(len(blocks))/2
	e.mu.RUnlock()
	f, err := os.OpenFile(victim.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	name := filepath.Base(victim.path)
	err = e.Compact(context.Background())
	if err == nil {
		t.Fatal("Compact merged a damaged segment without noticing")
	}
	found := false
	for _, d := range e.Damage() {
		found = found || filepath.Base(d.File) == name
	}
	if !found {
		t.Fatalf("damage not recorded: %v", e.Damage())
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatalf("second Compact: %v", err)
	}
	e.mu.RLock()
	still := slices.Contains(e.ix.segs, victim)
	e.mu.RUnlock()
	if !still {
		t.Fatal("the damaged segment was merged away")
	}
	merged, flushed := checkPartitions(t, e)
	if merged == 0 || flushed != 1 {
		t.Fatalf("%d merged, %d flushed; want the others merged", merged, flushed)
	}
}

// TestMergeWritesADayAboutOnce: with the background policy (merges run as
// flushes arrive, the newest day left open), the rows merges write stay
// close to the rows ingested: a day is partitioned once, plus the part of
// the segment that crossed into the next day. Merging a flushed segment
// only once the trail had moved past its last day wrote most of every day
// twice (~1.7×).
func TestMergeWritesADayAboutOnce(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir, func(o *Options) { mergeOpts(o); o.MergeRows = 1000 })
	defer e.Close()
	g := &daysGen{gen: newGen(16), at: testDay0}
	total := 0
	for range 120 {
		b := g.batch(50, dayMs/170) // ~170 events a day: flushes cross midnight
		appendT(t, e, b)
		total += len(b)
		if err := e.flushNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		for {
			err := e.mergeOnce(false, 1)
			if errors.Is(err, errNothingToMerge) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	e.mg.mu.Lock()
	written := e.mg.rowsWritten
	e.mg.mu.Unlock()
	merged, flushed := checkPartitions(t, e)
	amp := float64(written) / float64(total)
	t.Logf("%d rows ingested, %d written by merges (%.2f×); %d merged and %d flushed segments", total, written, amp, merged, flushed)
	if amp > 1.35 || merged < 25 {
		t.Fatalf("merges wrote %.2f× the rows ingested", amp)
	}
}

// TestMergeYieldsToBusyWriter: the merger's sleeps follow
// MergeCPUShareBusy while events are committed at MergeBusyEventsPerSec or
// more over the last window, and MergeCPUShare otherwise.
func TestMergeYieldsToBusyWriter(t *testing.T) {
	e := openT(t, t.TempDir(), func(o *Options) {
		o.MergeCPUShare, o.MergeCPUShareBusy, o.MergeBusyEventsPerSec = 0.5, 0.1, 1000
	})
	defer e.Close()
	th := newThrottle(e.opts.MergeCPUShare, nil)
	th.followIngest(e.opts.MergeCPUShareBusy, float64(e.opts.MergeBusyEventsPerSec), &e.mg.committed)
	g := newGen(17) // one generator: its ids do not repeat
	d := 10 * time.Millisecond
	t0 := time.Now()
	if got := th.sleepFor(d, t0); got != d {
		t.Fatalf("no rate yet: sleep %v after %v of CPU, want %v (share 0.5)", got, d, d)
	}
	// 2,000 events in the first second: busy.
	for range 4 {
		appendT(t, e, g.batch(500))
	}
	if got := th.sleepFor(d, t0.Add(time.Second)); got != 9*d {
		t.Fatalf("2,000 events/s: sleep %v after %v of CPU, want %v (share 0.1)", got, d, 9*d)
	}
	// Within the window the decision holds.
	if got := th.sleepFor(d, t0.Add(1500*time.Millisecond)); got != 9*d {
		t.Fatalf("mid-window: sleep %v, want %v", got, 9*d)
	}
	// 500 events in the next second: below the rate, the normal share.
	appendT(t, e, g.batch(500))
	if got := th.sleepFor(d, t0.Add(2*time.Second)); got != d {
		t.Fatalf("500 events/s: sleep %v after %v of CPU, want %v (share 0.5)", got, d, d)
	}
	th.busyShare = -1 // MergeCPUShareBusy turned off
	for range 4 {
		appendT(t, e, g.batch(500))
	}
	if got := th.sleepFor(d, t0.Add(3*time.Second)); got != d {
		t.Fatalf("busy share off: sleep %v, want %v", got, d)
	}
}

// TestMergeThrottleLiftedByCompact: a background merge in progress stops
// sleeping while a Compact waits for it.
func TestMergeThrottleLiftedByCompact(t *testing.T) {
	var compacting atomic.Int32
	th := newThrottle(0.25, nil)
	th.compacting = &compacting
	d := 10 * time.Millisecond
	if got := th.sleepFor(d, time.Now()); got != 3*d {
		t.Fatalf("no Compact: sleep %v after %v of CPU, want %v (share 0.25)", got, d, 3*d)
	}
	compacting.Add(1)
	if got := th.sleepFor(d, time.Now()); got != 0 {
		t.Fatalf("Compact waiting: sleep %v, want none", got)
	}
	compacting.Add(-1)
	if got := th.sleepFor(d, time.Now()); got != 3*d {
		t.Fatalf("Compact done: sleep %v, want %v", got, 3*d)
	}
}
