package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// recordingSink counts, across every instance, how often each event id
// was delivered and by which instance.
type recordingSink struct {
	mu    sync.Mutex
	count map[string]int
	by    map[string]int // instance name → events delivered
}

func (r *recordingSink) dest(instance string) stream.Destination {
	return stream.Destination{New: func(json.RawMessage) (stream.Sink, error) { return sinkOf{r, instance}, nil }}
}

type sinkOf struct {
	r        *recordingSink
	instance string
}

func (s sinkOf) Connect(context.Context) error { return nil }
func (s sinkOf) Close(context.Context) error   { return nil }
func (s sinkOf) Write(_ context.Context, b stream.Batch) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, e := range b.Events {
		s.r.count[e.ID]++
	}
	s.r.by[s.instance] += len(b.Events)
	return nil
}

func (r *recordingSink) snapshot() (distinct, dups int, by map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	by = map[string]int{}
	for k, v := range r.by {
		by[k] = v
	}
	for _, n := range r.count {
		distinct++
		dups += n - 1
	}
	return distinct, dups, by
}

// TestStreamFleet runs two stream managers on one database, as two
// instances would: a connector created through one is delivered once
// across both; pause, resume, replay and delete through the instance that
// does not deliver take effect on the one that does.
func TestStreamFleet(t *testing.T) {
	url := newDatabase(t)
	ctx := context.Background()
	rec := &recordingSink{count: map[string]int{}, by: map[string]int{}}
	var st *EventStore
	managers := map[string]*stream.Manager{}
	for _, name := range []string{"A", "B"} {
		db, err := Open(ctx, Options{URL: url, MaxConns: 6})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		if st == nil {
			st = db.Events()
		}
		lease := db.StreamLease(LeaseOptions{Heartbeat: 100 * time.Millisecond, Poll: 50 * time.Millisecond})
		t.Cleanup(func() { lease.Close() })
		o := streamtest.FastOptions(db.Store(), map[string]stream.Destination{"rec": rec.dest(name)})
		o.State, o.Lease, o.ReloadInterval = db.StreamState(), lease, 100*time.Millisecond
		m, err := stream.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(context.Background()) })
		managers[name] = m
	}
	a, b := managers["A"], managers["B"]
	appended := 0
	appendN := func(prefix string, n int) {
		t.Helper()
		if err := st.Append(ctx, streamtest.Events("C1", "P1", prefix, n)); err != nil {
			t.Fatal(err)
		}
		appended += n
	}
	waitDistinct := func(n int) {
		t.Helper()
		streamtest.Eventually(t, 20*time.Second, fmt.Sprintf("%d distinct events delivered", n), func() bool {
			d, _, _ := rec.snapshot()
			return d >= n
		})
	}

	v, err := a.Create(ctx, stream.Spec{CompanyID: "C1", Name: "siem", Type: "rec", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	// B knows it at once (lookup asks the database) and lists it.
	if _, err := b.Get(ctx, "C1", v.ID); err != nil {
		t.Fatalf("connector created on A, Get on B: %v", err)
	}
	if l, err := b.List(ctx, "C1", ""); err != nil || len(l) != 1 {
		t.Fatalf("List on B: %d connectors, %v", len(l), err)
	}
	appendN("a", 300)
	waitDistinct(appended)
	time.Sleep(300 * time.Millisecond) // a second deliverer would show up as duplicates now
	d, dups, by := rec.snapshot()
	if dups != 0 || len(by) != 1 {
		t.Fatalf("delivered %d events with %d duplicates by %v: want one instance, no duplicates", d, dups, by)
	}
	holder := "A"
	if by["B"] > 0 {
		holder = "B"
	}
	other := map[string]string{"A": "B", "B": "A"}[holder]
	t.Logf("instance %s delivers", holder)

	// Pause through the other instance: the holder stops within a reload.
	if _, err := managers[other].Pause(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	before, _, _ := rec.snapshot()
	appendN("p", 50)
	time.Sleep(600 * time.Millisecond)
	if after, _, _ := rec.snapshot(); after != before {
		t.Fatalf("paused through %s, %s still delivered %d events", other, holder, after-before)
	}
	if _, err := managers[other].Resume(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	waitDistinct(appended)

	// Replay through the other instance: everything is delivered again.
	if _, err := managers[other].Replay(ctx, "C1", v.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 20*time.Second, "replayed events", func() bool {
		_, dups, _ := rec.snapshot()
		return dups >= appended
	})
	_, dups, _ = rec.snapshot()
	if dups != appended {
		t.Fatalf("replay delivered %d events again, want %d (each once)", dups, appended)
	}

	// Health through either instance shows the delivery.
	streamtest.Eventually(t, 5*time.Second, "counters on the other instance", func() bool {
		h, err := managers[other].Health(ctx, "C1", v.ID)
		return err == nil && h.Delivered >= uint64(2*appended)
	})

	// Delete through the other instance: the holder stops delivering.
	if err := managers[other].Delete(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	total := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, c := range rec.count {
			n += c
		}
		return n
	}
	n0 := total()
	appendN("d", 20)
	time.Sleep(600 * time.Millisecond)
	if n := total(); n != n0 {
		t.Fatalf("deleted through %s, %s delivered %d more events", other, holder, n-n0)
	}
	if _, err := managers[holder].Get(ctx, "C1", v.ID); err == nil {
		t.Fatal("the holder still shows a connector deleted elsewhere")
	}

	// Takeover: the instance that delivers a new connector shuts down
	// (releasing its lease); the other continues from the durable cursor
	// with nothing missing and nothing repeated.
	v2, err := managers[other].Create(ctx, stream.Spec{CompanyID: "C1", Name: "second", Type: "rec", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	rec.count, rec.by = map[string]int{}, map[string]int{}
	rec.mu.Unlock()
	appendN("t1", 100)
	streamtest.Eventually(t, 20*time.Second, "second connector delivering", func() bool { d, _, _ := rec.snapshot(); return d == 100 })
	_, _, by = rec.snapshot()
	first := "A"
	if by["B"] > 0 {
		first = "B"
	}
	if err := managers[first].Close(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	appendN("t2", 100)
	survivor := map[string]string{"A": "B", "B": "A"}[first]
	streamtest.Eventually(t, 20*time.Second, "takeover", func() bool { d, _, _ := rec.snapshot(); return d == 200 })
	d, dups, by = rec.snapshot()
	if dups != 0 || by[survivor] != 100 {
		t.Fatalf("after %s shut down: %d duplicates, delivered by %v", first, dups, by)
	}
	t.Logf("%s took over %s in %v", survivor, v2.ID, time.Since(start).Round(time.Millisecond))
}
