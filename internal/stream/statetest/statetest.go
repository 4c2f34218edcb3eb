// Package statetest is the conformance suite of stream.StateStore: what the
// file, memory and PostgreSQL implementations must all do, including the
// guarantees a fleet relies on (control and delivery writes never overwrite
// each other, Update is atomic, a superseded deliverer is fenced off).
package statetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// Harness builds the implementation under test.
type Harness struct {
	// New returns an empty store, released when t ends.
	New func(t *testing.T) stream.StateStore
	// Reopen, when set, returns a new instance on the same durable state
	// as s (a file reopened, a second connection pool), to check that
	// writes outlive the instance that made them.
	Reopen func(t *testing.T, s stream.StateStore) stream.StateStore
}

// Run runs every case as a subtest, each on a fresh store.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness, s stream.StateStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"Update", testUpdate},
		{"SaveProgress", testSaveProgress},
		{"Fencing", testFencing},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"SplitWriters", testSplitWriters},
		{"ConcurrentCreates", testConcurrentCreates},
		{"Delete", testDelete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := h.New(t)
			if recs, err := s.Load(context.Background()); err != nil || len(recs) != 0 {
				t.Fatalf("new store: %d records, err %v", len(recs), err)
			}
			c.fn(t, h, s)
		})
	}
}

// sample is a record with every field set, times at millisecond precision.
func sample(id string) stream.Record {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return stream.Record{
		Spec: stream.Spec{ID: id, CompanyID: "C1", ProjectID: "P1", Name: "n-" + id, Description: "d", Type: "webhook",
			Level:   stream.LevelProject,
			Filters: []stream.Filter{{FilterType: "actions", Operator: "includes", Values: []string{"A", "B"}}},
			MaskPII: true,
			// Key order and spacing as the sender wrote them must survive.
			Config:  json.RawMessage(`{"url":"https://x", "hmacSecret":"s","a":1}`),
			Created: now, Updated: now},
		Cursor:     12,
		AutoPaused: true,
		Counters: stream.Counters{Delivered: 5, Batches: 2, FailedAttempts: 1, FailedEvents: 3,
			LastSuccess: now, LastError: "boom ünïcode", LastErrorAt: now, FailingSince: now},
		Revision: 3,
		Epoch:    2,
	}
}

// same compares records by their JSON form (time.Time values may differ in
// location but not in instant).
func same(t *testing.T, what string, got, want stream.Record) {
	t.Helper()
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("%s:\n got %s\nwant %s", what, a, b)
	}
}

func get(t *testing.T, s stream.StateStore, id string) stream.Record {
	t.Helper()
	r, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return r
}

func create(t *testing.T, s stream.StateStore, r stream.Record) {
	t.Helper()
	if err := s.Create(context.Background(), r); err != nil {
		t.Fatalf("Create %s: %v", r.Spec.ID, err)
	}
}

func testRoundTrip(t *testing.T, h Harness, s stream.StateStore) {
	ctx := context.Background()
	rec := sample("c1")
	create(t, s, rec)
	same(t, "Get after Create", get(t, s, "c1"), rec)
	recs, err := s.Load(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Load: %d records, err %v", len(recs), err)
	}
	same(t, "Load after Create", recs[0], rec)
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("Get of an unknown id: %v, want ErrNotFound", err)
	}
	dup := sample("c1")
	dup.Cursor = 999
	if err := s.Create(ctx, dup); !errors.Is(err, stream.ErrExists) {
		t.Fatalf("Create of a taken id: %v, want ErrExists", err)
	}
	same(t, "record after a refused Create", get(t, s, "c1"), rec)
	if h.Reopen != nil {
		same(t, "record after reopening", get(t, h.Reopen(t, s), "c1"), rec)
	}
}

func testUpdate(t *testing.T, h Harness, s stream.StateStore) {
	ctx := context.Background()
	rec := sample("c1")
	create(t, s, rec)
	got, err := s.Update(ctx, "c1", func(r *stream.Record) error {
		r.Spec.Description = "changed"
		r.Spec.ID = "hijack" // must be ignored
		r.Paused = true
		r.Cursor = 7
		r.Revision++
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := rec
	want.Spec.Description, want.Paused, want.Cursor, want.Revision = "changed", true, 7, rec.Revision+1
	same(t, "Update's result", got, want)
	same(t, "Get after Update", get(t, s, "c1"), want)
	if _, err := s.Get(ctx, "hijack"); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("Update moved the record to the id its change set: %v", err)
	}

	refuse := errors.New("refused by the change")
	_, err = s.Update(ctx, "c1", func(r *stream.Record) error {
		r.Spec.Description = "never stored"
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("Update whose change failed: %v, want the change's error", err)
	}
	same(t, "record after a failed change", get(t, s, "c1"), want)

	called := false
	if _, err := s.Update(ctx, "nope", func(*stream.Record) error { called = true; return nil }); !errors.Is(err, stream.ErrNotFound) || called {
		t.Fatalf("Update of an unknown id: %v (change called: %v), want ErrNotFound", err, called)
	}
	if h.Reopen != nil {
		same(t, "record after reopening", get(t, h.Reopen(t, s), "c1"), want)
	}
}

func testSaveProgress(t *testing.T, h Harness, s stream.StateStore) {
	ctx := context.Background()
	rec := sample("c1")
	create(t, s, rec)
	later := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
	p := stream.Progress{Epoch: rec.Epoch, Cursor: 500, Counters: stream.Counters{Delivered: 90, Batches: 9, LastSuccess: later}}
	if err := s.SaveProgress(ctx, "c1", p); err != nil {
		t.Fatalf("SaveProgress: %v", err)
	}
	want := rec
	want.Cursor, want.Counters = p.Cursor, p.Counters
	same(t, "record after SaveProgress", get(t, s, "c1"), want)
	if err := s.SaveProgress(ctx, "nope", p); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("SaveProgress of an unknown id: %v, want ErrNotFound", err)
	}
	if h.Reopen != nil {
		same(t, "record after reopening", get(t, h.Reopen(t, s), "c1"), want)
	}
}

// testFencing: once another deliverer claims the record (a new Epoch), or
// a replay rewinds it, progress saved under the old epoch is refused and
// leaves the record alone.
func testFencing(t *testing.T, _ Harness, s stream.StateStore) {
	ctx := context.Background()
	rec := sample("c1")
	create(t, s, rec)
	old := rec.Epoch
	claimed, err := s.Update(ctx, "c1", func(r *stream.Record) error { r.Epoch++; return nil })
	if err != nil || claimed.Epoch != old+1 {
		t.Fatalf("claim: epoch %d, err %v", claimed.Epoch, err)
	}
	err = s.SaveProgress(ctx, "c1", stream.Progress{Epoch: old, Cursor: 1000, Counters: stream.Counters{Delivered: 1}})
	if !errors.Is(err, stream.ErrStale) {
		t.Fatalf("SaveProgress under a superseded epoch: %v, want ErrStale", err)
	}
	same(t, "record after a fenced-off save", get(t, s, "c1"), claimed)
	if err := s.SaveProgress(ctx, "c1", stream.Progress{Epoch: old + 1, Cursor: 40}); err != nil {
		t.Fatalf("SaveProgress under the current epoch: %v", err)
	}
	if r := get(t, s, "c1"); r.Cursor != 40 {
		t.Fatalf("cursor %d, want 40", r.Cursor)
	}
}

// testConcurrentUpdates: Update is an atomic read-modify-write, so no
// increment is lost when many run at once.
func testConcurrentUpdates(t *testing.T, _ Harness, s stream.StateStore) {
	ctx := context.Background()
	create(t, s, stream.Record{Spec: stream.Spec{ID: "c1", CompanyID: "C1"}})
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := s.Update(ctx, "c1", func(r *stream.Record) error { r.Revision++; return nil }); err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	if r := get(t, s, "c1"); r.Revision != n {
		t.Fatalf("%d concurrent increments left Revision at %d: updates were lost", n, r.Revision)
	}
}

// testSplitWriters is the fleet case: one instance saves progress while
// others change the spec and pause flags through Update. Neither may undo
// the other's writes.
func testSplitWriters(t *testing.T, _ Harness, s stream.StateStore) {
	ctx := context.Background()
	create(t, s, stream.Record{Spec: stream.Spec{ID: "c1", CompanyID: "C1", Name: "v0"}})
	// Both writers go on until each has written a while with the other one
	// running, so their writes interleave whatever each costs.
	const minRounds, minTime = 20, 150 * time.Millisecond
	start := time.Now()
	more := func(i int) bool { return i < minRounds || time.Since(start) < minTime }
	var progressN, controlN int
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; more(i); i++ {
			p := stream.Progress{Cursor: uint64(i), Counters: stream.Counters{Delivered: uint64(10 * i), Batches: uint64(i)}}
			if err := s.SaveProgress(ctx, "c1", p); err != nil {
				t.Errorf("SaveProgress: %v", err)
				return
			}
			progressN = i
		}
	})
	wg.Go(func() {
		for i := 1; more(i); i++ {
			_, err := s.Update(ctx, "c1", func(r *stream.Record) error {
				r.Spec.Name = fmt.Sprintf("v%d", i)
				r.Paused = i%2 == 1
				r.Revision++
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
				return
			}
			controlN = i
		}
	})
	wg.Wait()
	r := get(t, s, "c1")
	n := uint64(progressN)
	if r.Cursor != n || r.Counters.Delivered != 10*n || r.Counters.Batches != n {
		t.Fatalf("progress overwritten by control writes: cursor %d, delivered %d, batches %d; want %d, %d, %d",
			r.Cursor, r.Counters.Delivered, r.Counters.Batches, n, 10*n, n)
	}
	if r.Spec.Name != fmt.Sprintf("v%d", controlN) || r.Revision != uint64(controlN) || r.Paused != (controlN%2 == 1) {
		t.Fatalf("control fields overwritten by progress: name %q, revision %d, paused %v after %d updates", r.Spec.Name, r.Revision, r.Paused, controlN)
	}
}

func testConcurrentCreates(t *testing.T, _ Harness, s stream.StateStore) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			r := stream.Record{Spec: stream.Spec{ID: fmt.Sprintf("p%02d", i), CompanyID: "C1"}, Cursor: uint64(i)}
			if err := s.Create(ctx, r); err != nil {
				t.Errorf("concurrent Create: %v", err)
			}
		})
	}
	wg.Wait()
	recs, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]stream.Record{}
	for _, r := range recs {
		if _, dup := byID[r.Spec.ID]; dup {
			t.Fatalf("Load returned %s twice", r.Spec.ID)
		}
		byID[r.Spec.ID] = r
	}
	if len(byID) != 20 || byID["p07"].Cursor != 7 {
		t.Fatalf("after 20 concurrent creates: %d records", len(byID))
	}
}

func testDelete(t *testing.T, h Harness, s stream.StateStore) {
	ctx := context.Background()
	create(t, s, sample("c1"))
	create(t, s, sample("c2"))
	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Fatalf("Delete of an unknown id: %v", err)
	}
	if _, err := s.Get(ctx, "c1"); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("Get of a deleted record: %v", err)
	}
	if err := s.SaveProgress(ctx, "c1", stream.Progress{Epoch: 2, Cursor: 1}); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("SaveProgress of a deleted record: %v, want ErrNotFound (a deliverer must learn it is gone)", err)
	}
	if _, err := s.Update(ctx, "c1", func(*stream.Record) error { return nil }); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("Update of a deleted record: %v", err)
	}
	check := func(s stream.StateStore) {
		t.Helper()
		recs, err := s.Load(ctx)
		if err != nil || len(recs) != 1 || recs[0].Spec.ID != "c2" {
			t.Fatalf("Load after Delete: %v, err %v", recs, err)
		}
	}
	check(s)
	if h.Reopen != nil {
		check(h.Reopen(t, s))
	}
}
