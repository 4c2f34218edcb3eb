package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// crash stops e as kill -9 would: nothing is flushed beyond what Append
// already made durable.
func (e *Engine) crash() {
	e.closeMu.Lock()
	e.closed.Store(true)
	close(e.reqs)
	e.closeMu.Unlock()
	<-e.writerDone
	e.stopMerger()
	close(e.stopFlusher)
	<-e.flusherDone
	e.mu.Lock()
	e.ix.released = true
	e.releaseAll()
	e.mu.Unlock()
}

func small(o *Options) { o.MemtableEvents = 64 }

func noMode(*Options) {}

// forModes runs a test with everything in the memtable, and with a tiny
// memtable so that data spreads over many segments, a frozen memtable and
// the tail.
func forModes(t *testing.T, fn func(t *testing.T, mode func(*Options))) {
	t.Run("tail", func(t *testing.T) { fn(t, noMode) })
	t.Run("segments", func(t *testing.T) { fn(t, small) })
}

func openT(t testing.TB, dir string, mut ...func(*Options)) *Engine {
	t.Helper()
	o := Options{Dir: dir, Logger: quiet}
	for _, m := range mut {
		m(&o)
	}
	e, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return e
}

// gen produces varied events; the small value pools make filters collide.
type gen struct {
	r *rand.Rand
	n int
}

func newGen(seed uint64) *gen { return &gen{r: rand.New(rand.NewPCG(seed, 7))} }

func (g *gen) pick(vals ...string) string { return vals[g.r.IntN(len(vals))] }

func (g *gen) event() event.Event {
	g.n++
	ev := event.Event{
		ID:            fmt.Sprintf("id-%d", g.n),
		CompanyID:     g.pick("c1", "c1", "c2"),
		ProjectID:     g.pick("P1", "P1", "P2"),
		Level:         event.LevelProject,
		UserID:        g.pick("u1", "u2", "u3", "John.Doe@example.com", ""),
		Action:        g.pick("LoginSucceed", "LoginFailed", "UserModified", "Logout"),
		Type:          g.pick("info", "warn", "error"),
		ActorID:       g.pick("a1", "a2", ""),
		Occurred:      1_700_000_000_000 + int64(g.r.IntN(50))*60_000, // many ties on purpose
		Device:        g.pick("Desktop", "Mobile", ""),
		Method:        g.pick("otp", "oauth", ""),
		Geo:           g.pick("US", "DE", "IL"),
		RemoteAddress: g.pick("10.0.0.1", "10.0.0.2", "192.168.1.1"),
	}
	if g.r.IntN(7) == 0 {
		ev.Level, ev.ProjectID = event.LevelCompany, ""
	}
	for range g.r.IntN(3) {
		ev.LoginIDs = append(ev.LoginIDs, g.pick("john@x.io", "Zoë@x.io", "+1555"))
	}
	for range g.r.IntN(3) {
		ev.Tenants = append(ev.Tenants, g.pick("t1", "t2", "T-Acme", "東京"))
	}
	switch g.r.IntN(3) {
	case 0:
		ev.Data = json.RawMessage(fmt.Sprintf(`{"Change":{%q:1},"ua":%q}`,
			g.pick("email", "added_roles", "phone"), g.pick("Mozilla Chrome/120", "curl/8", "Firefox Größe")))
	case 1:
		ev.Data = json.RawMessage(`{"request_details":{"headers":{"X-Quetzal":"yes"}}}`)
	}
	return ev
}

func (g *gen) batch(n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = g.event()
	}
	return out
}

func appendT(t testing.TB, e *Engine, evs []event.Event) {
	t.Helper()
	if err := e.Append(context.Background(), evs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func allOf(t testing.TB, e *Engine) []event.Event {
	t.Helper()
	evs, err := e.ReadFrom(context.Background(), 0, 1<<30)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return evs
}

func TestRestartKeepsEverything(t *testing.T) { forModes(t, testRestartKeepsEverything) }

func testRestartKeepsEverything(t *testing.T, mode func(*Options)) {
	dir := t.TempDir()
	e := openT(t, dir, mode)
	g := newGen(1)
	var want []event.Event
	for range 5 {
		b := g.batch(40)
		appendT(t, e, b)
		want = append(want, b...)
	}
	// A retry of stored ids stores nothing and leaves Seq 0.
	retry := slices.Clone(want[:10])
	appendT(t, e, retry)
	for _, ev := range retry {
		if ev.Seq != 0 {
			t.Fatalf("duplicate got Seq %d", ev.Seq)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Append(context.Background(), g.batch(1)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	e = openT(t, dir, mode)
	defer e.Close()
	got := allOf(t, e)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart: %d events, want %d (or contents differ)", len(got), len(want))
	}
	appendT(t, e, slices.Clone(want[:3])) // still duplicates after restart
	if n := len(allOf(t, e)); n != len(want) {
		t.Fatalf("duplicates stored after restart: %d events", n)
	}
	next := g.batch(1)
	appendT(t, e, next)
	if next[0].Seq != want[len(want)-1].Seq+1 {
		t.Fatalf("Seq after restart = %d, want %d", next[0].Seq, want[len(want)-1].Seq+1)
	}
	got1, err := e.Get(context.Background(), want[7].CompanyID, want[7].ID)
	if err != nil || !reflect.DeepEqual(got1, want[7]) {
		t.Fatalf("Get = %+v, %v", got1, err)
	}
	if _, err := e.Get(context.Background(), "nope", want[7].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get in other company: %v", err)
	}
}

func TestBatchDedupeWithinBatch(t *testing.T) {
	e := openT(t, t.TempDir())
	defer e.Close()
	g := newGen(2)
	b := g.batch(3)
	b = append(b, b[1])
	b[3].Action = "Other"
	appendT(t, e, b)
	if b[0].Seq == 0 || b[1].Seq == 0 || b[2].Seq == 0 || b[3].Seq != 0 {
		t.Fatalf("seqs %d %d %d %d", b[0].Seq, b[1].Seq, b[2].Seq, b[3].Seq)
	}
	// Same id in another company is another event.
	other := b[0]
	other.CompanyID = "c9"
	one := []event.Event{other}
	appendT(t, e, one)
	if one[0].Seq == 0 {
		t.Fatal("same id in another company was treated as duplicate")
	}
}

func TestTornTailIsDroppedOnOpen(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, path string, size int64){
		"truncated mid-record": func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-5); err != nil {
				t.Fatal(err)
			}
		},
		"garbage appended": func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte{0xff, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5})
			f.Close()
		},
		"flipped byte in last record": func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			f.WriteAt([]byte{0x5a}, size-3)
			f.Close()
		},
		"header only": func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte{10, 0})
			f.Close()
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := openT(t, dir)
			g := newGen(3)
			first := g.batch(20)
			appendT(t, e, first)
			last := g.batch(20)
			appendT(t, e, last)
			e.crash()
			path := newestWAL(t, dir)
			st, _ := os.Stat(path)
			damage(t, path, st.Size())

			e = openT(t, dir)
			got := allOf(t, e)
			wantN := 40
			if name != "garbage appended" && name != "header only" {
				wantN = 20 // the damaged last batch goes, whole
			}
			if len(got) != wantN || !reflect.DeepEqual(got[:20], first) {
				t.Fatalf("after torn tail: %d events, want %d", len(got), wantN)
			}
			more := g.batch(5)
			appendT(t, e, more)
			if more[0].Seq != got[len(got)-1].Seq+1 {
				t.Fatalf("Seq after recovery %d", more[0].Seq)
			}
			e.Close()
			e = openT(t, dir)
			defer e.Close()
			if n := len(allOf(t, e)); n != wantN+5 {
				t.Fatalf("second restart: %d events, want %d", n, wantN+5)
			}
			if gens, _ := listWAL(filepath.Join(dir, walDirName)); len(gens) != 1 {
				t.Fatalf("after a clean Close %d log files remain, want only the new empty one", len(gens))
			}
		})
	}
}

func newestWAL(t *testing.T, dir string) string {
	t.Helper()
	gens, err := listWAL(filepath.Join(dir, walDirName))
	if err != nil || len(gens) == 0 {
		t.Fatalf("no log files: %v", err)
	}
	// The newest file was created empty by the last Open; the data is in
	// the newest non-empty one.
	for i := len(gens) - 1; i >= 0; i-- {
		p := filepath.Join(dir, walDirName, walName(gens[i]))
		if st, _ := os.Stat(p); st != nil && st.Size() > 0 {
			return p
		}
	}
	t.Fatal("all log files empty")
	return ""
}

func TestGroupCommitConcurrentAppends(t *testing.T) { forModes(t, testGroupCommitConcurrentAppends) }

func testGroupCommitConcurrentAppends(t *testing.T, mode func(*Options)) {
	dir := t.TempDir()
	e := openT(t, dir, mode)
	const writers, perWriter = 64, 15
	var wg sync.WaitGroup
	seqs := make([][]uint64, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				ev := newGen(uint64(w)).event()
				ev.ID = fmt.Sprintf("w%d-%d", w, i)
				b := []event.Event{ev}
				if err := e.Append(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
				// Acknowledged means visible.
				if _, err := e.Get(context.Background(), ev.CompanyID, ev.ID); err != nil {
					t.Errorf("acknowledged event not visible: %v", err)
				}
				seqs[w] = append(seqs[w], b[0].Seq)
			}
		}()
	}
	wg.Wait()
	syncs := e.syncs.Load()
	all := slices.Concat(seqs...)
	slices.Sort(all)
	for i, s := range all {
		if s != uint64(i+1) {
			t.Fatalf("seqs not 1..n: position %d has %d", i, s)
		}
	}
	if syncs >= writers*perWriter {
		t.Errorf("%d fsyncs for %d appends: no group commit", syncs, writers*perWriter)
	}
	t.Logf("%d appends shared %d fsyncs", writers*perWriter, syncs)
	e.Close()
	e = openT(t, dir, mode)
	defer e.Close()
	if n := len(allOf(t, e)); n != writers*perWriter {
		t.Fatalf("after restart %d events", n)
	}
}

func TestDeleteBeforePersists(t *testing.T) { forModes(t, testDeleteBeforePersists) }

func testDeleteBeforePersists(t *testing.T, mode func(*Options)) {
	dir := t.TempDir()
	e := openT(t, dir, mode)
	g := newGen(4)
	evs := g.batch(300)
	appendT(t, e, evs)
	cut := int64(1_700_000_000_000 + 20*60_000)
	var want int64
	for _, ev := range evs {
		if ev.CompanyID == "c1" && ev.Occurred < cut {
			want++
		}
	}
	n, err := e.DeleteBefore(context.Background(), "c1", cut)
	if err != nil || n != want || want == 0 {
		t.Fatalf("DeleteBefore = %d, %v; want %d", n, err, want)
	}
	if n, _ := e.DeleteBefore(context.Background(), "c1", cut); n != 0 {
		t.Fatalf("second DeleteBefore removed %d", n)
	}
	// An event appended after the deletion with an old Occurred stays.
	late := g.batch(1)
	late[0].CompanyID, late[0].Occurred = "c1", cut-1
	appendT(t, e, late)
	check := func(e *Engine) {
		t.Helper()
		for _, ev := range allOf(t, e) {
			if ev.CompanyID == "c1" && ev.Occurred < cut && ev.ID != late[0].ID {
				t.Fatalf("deleted event %s still there", ev.ID)
			}
		}
		if _, err := e.Get(context.Background(), "c1", late[0].ID); err != nil {
			t.Fatalf("late event: %v", err)
		}
		if got := len(allOf(t, e)); got != len(evs)-int(want)+1 {
			t.Fatalf("%d events left, want %d", got, len(evs)-int(want)+1)
		}
	}
	check(e)
	checkT(t, e, len(evs)-int(want)+1)
	e.Close()
	e = openT(t, dir, mode)
	defer e.Close()
	check(e)
	checkT(t, e, len(evs)-int(want)+1)
	next := g.batch(1)
	appendT(t, e, next)
	if next[0].Seq != late[0].Seq+1 {
		t.Fatalf("Seq %d after delete+restart, want %d", next[0].Seq, late[0].Seq+1)
	}
}

// TestSearchDifferential checks Search against the reference: every event
// through query.Match, sorted by query.Less, paged.
func TestSearchDifferential(t *testing.T) { forModes(t, testSearchDifferential) }

func testSearchDifferential(t *testing.T, mode func(*Options)) {
	dir := t.TempDir()
	e := openT(t, dir, mode)
	defer e.Close()
	g := newGen(5)
	var all []event.Event
	for range 20 {
		b := g.batch(50)
		appendT(t, e, b)
		all = append(all, b...)
	}
	// A deletion in the middle: the reference forgets the same events.
	cut := int64(1_700_000_000_000 + 10*60_000)
	n, err := e.DeleteBefore(context.Background(), "c2", cut)
	if err != nil {
		t.Fatal(err)
	}
	kept := all[:0]
	for _, ev := range all {
		if !(ev.CompanyID == "c2" && ev.Occurred < cut) {
			kept = append(kept, ev)
		}
	}
	if int(n) != len(all)-len(kept) {
		t.Fatalf("DeleteBefore removed %d, want %d", n, len(all)-len(kept))
	}
	all = kept
	for range 10 {
		b := g.batch(50)
		appendT(t, e, b)
		all = append(all, b...)
	}
	e.mu.RLock()
	t.Logf("%d segments, frozen %v, tail %d", len(e.ix.segs), e.ix.frozen != nil, e.ix.mem.len())
	e.mu.RUnlock()
	r := rand.New(rand.NewPCG(9, 9))
	some := func(vals ...string) []string {
		var out []string
		for _, v := range vals {
			if r.IntN(3) == 0 {
				out = append(out, v)
			}
		}
		return out
	}
	for i := range 400 {
		q := query.Query{
			CompanyID: []string{"c1", "c2"}[r.IntN(2)], ProjectID: []string{"P1", "P2"}[r.IntN(2)],
			IncludeProject: r.IntN(4) != 0, IncludeCompany: r.IntN(4) != 0,
			Size: []int{1, 5, 20, 1000}[r.IntN(4)], OldestFirst: r.IntN(3) == 0,
		}
		if !q.IncludeProject && !q.IncludeCompany {
			q.IncludeProject = true
		}
		q.Page = r.IntN(4)
		if r.IntN(2) == 0 {
			q.UserIDs = some("u1", "u2", "John.Doe@example.com", "")
			q.Actions = some("LoginSucceed", "Logout", "Nope")
			q.ExcludedActions = some("LoginFailed")
			q.Geos = some("US", "IL")
		} else {
			q.ActorIDs = some("a1", "")
			q.Devices = some("Desktop", "")
			q.Methods = some("otp")
			q.RemoteAddresses = some("10.0.0.1", "192.168.1.1")
			q.LoginIDs = some("john@x.io", "Zoë@x.io")
		}
		q.Tenants = some("t1", "東京", "zz")
		q.NoTenants = r.IntN(4) == 0
		q.ChangedFields = some("email", "phone")
		q.TextTokens = query.TextTokens(g.pick("", "", "john", "chrom", "quetzal", "zo", "größe ie", "10 0", "東"))
		if r.IntN(3) == 0 {
			q.From = 1_700_000_000_000 + int64(r.IntN(30))*60_000
		}
		if r.IntN(3) == 0 {
			q.To = 1_700_000_000_000 + int64(20+r.IntN(30))*60_000
		}
		want := reference(all, q)
		got, err := e.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		off := min(q.Offset(), len(want))
		wantPage := want[off:min(off+q.Size, len(want))]
		if got.Total != len(want) || !sameIDs(got.Events, wantPage) {
			t.Fatalf("query %d %+v: total %d want %d; page %v want %v", i, q, got.Total, len(want),
				ids(got.Events), ids(wantPage))
		}
		for j := range got.Events {
			if !reflect.DeepEqual(got.Events[j], wantPage[j]) {
				t.Fatalf("query %d: event %s differs: %+v vs %+v", i, wantPage[j].ID, got.Events[j], wantPage[j])
			}
		}
	}
	checkT(t, e, len(all))
}

// checkT runs the full consistency check and expects live events.
func checkT(t *testing.T, e *Engine, live int) {
	t.Helper()
	rep, err := e.Check(context.Background())
	if err != nil {
		t.Fatalf("Check: %v\n%v", err, rep.Problems)
	}
	if rep.LiveEvents != live {
		t.Fatalf("Check counts %d live events, want %d", rep.LiveEvents, live)
	}
}

func reference(all []event.Event, q query.Query) []event.Event {
	var out []event.Event
	for i := range all {
		if q.Match(&all[i]) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(a, b event.Event) int {
		if q.Less(&a, &b) {
			return -1
		}
		if q.Less(&b, &a) {
			return 1
		}
		return 0
	})
	return out
}

func ids(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].ID
	}
	return out
}

func sameIDs(a, b []event.Event) bool { return slices.Equal(ids(a), ids(b)) }

// BenchmarkOpenAfterCrash measures the restart after kill -9 with a full
// memtable to replay and segments to load: ns/op is one Open.
func BenchmarkOpenAfterCrash(b *testing.B) {
	dir := b.TempDir()
	e := openT(b, dir)
	const n = 250_000
	for i := 0; i < n; i += 5000 {
		evs := storetest.Generate(uint64(i), 5000, storetest.GenOptions{Companies: []string{"c1"}})
		appendT(b, e, evs)
	}
	e.crash()
	b.ResetTimer()
	for range b.N {
		e := openT(b, dir)
		b.StopTimer()
		e.crash()
		b.StartTimer()
	}
}

// A deletion rule records the Seq current when it was made; that Seq may
// belong to events only in the log. Reopening after a crash must still
// replay those events (a restart once failed with "seq 1 after N").
func TestCrashAfterDeleteRuleReplaysLog(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir)
	g := newGen(11)
	kept := g.batch(30)
	appendT(t, e, kept)
	if _, err := e.DeleteBefore(context.Background(), "c1", 1); err != nil {
		t.Fatal(err)
	}
	e.crash()

	e = openT(t, dir)
	if got := allOf(t, e); len(got) != len(kept) {
		t.Fatalf("after reopen: %d events, want %d", len(got), len(kept))
	}
	more := g.batch(3)
	appendT(t, e, more)
	if more[0].Seq <= kept[len(kept)-1].Seq {
		t.Fatalf("Seq went back: %d after %d", more[0].Seq, kept[len(kept)-1].Seq)
	}
	e.crash()
	e = openT(t, dir)
	if got := allOf(t, e); len(got) != len(kept)+3 {
		t.Fatalf("after second reopen: %d events, want %d", len(got), len(kept)+3)
	}
	e.Close()
}
