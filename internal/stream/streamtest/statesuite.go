package streamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// StateStoreSuite is the conformance suite every stream.StateStore passes
// (file, memory, and the PostgreSQL one to come). s must start empty.
func StateStoreSuite(t *testing.T, s stream.StateStore) {
	t.Helper()
	ctx := context.Background()
	load := func() map[string]stream.Record {
		t.Helper()
		recs, err := s.Load(ctx)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		m := map[string]stream.Record{}
		for _, r := range recs {
			if _, dup := m[r.Spec.ID]; dup {
				t.Fatalf("Load returned %s twice", r.Spec.ID)
			}
			m[r.Spec.ID] = r
		}
		return m
	}
	if n := len(load()); n != 0 {
		t.Fatalf("store not empty at start: %d records", n)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := stream.Record{
		Spec: stream.Spec{ID: "c1", CompanyID: "C1", ProjectID: "P1", Name: "n", Type: "webhook", Level: stream.LevelProject,
			Filters: []stream.Filter{{FilterType: "actions", Operator: "includes", Values: []string{"A"}}},
			MaskPII: true, Config: json.RawMessage(`{"url":"https://x","hmacSecret":"s"}`), Created: now, Updated: now},
		Cursor: 12,
		Counters: stream.Counters{Delivered: 5, Batches: 2, FailedAttempts: 1, FailedEvents: 3,
			LastSuccess: now, LastError: "boom", LastErrorAt: now, FailingSince: now},
	}
	if err := s.Put(ctx, rec); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got := load()["c1"]
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(rec)
	if string(a) != string(b) {
		t.Fatalf("record changed on its way through the store:\n got %s\nwant %s", a, b)
	}

	rec.Cursor, rec.Paused, rec.AutoPaused = 99, true, true
	if err := s.Put(ctx, rec); err != nil {
		t.Fatalf("Put (replace): %v", err)
	}
	if got := load(); len(got) != 1 || got["c1"].Cursor != 99 || !got["c1"].Paused || !got["c1"].AutoPaused {
		t.Fatalf("replace: %+v", got)
	}

	// Concurrent Puts of different connectors all land.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := stream.Record{Spec: stream.Spec{ID: fmt.Sprintf("p%02d", i), CompanyID: "C1"}, Cursor: uint64(i)}
			if err := s.Put(ctx, r); err != nil {
				t.Errorf("concurrent Put: %v", err)
			}
		}()
	}
	wg.Wait()
	all := load()
	if len(all) != 21 || all["p07"].Cursor != 7 {
		t.Fatalf("after concurrent puts: %d records", len(all))
	}

	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Fatalf("Delete of an unknown id: %v", err)
	}
	if _, ok := load()["c1"]; ok {
		t.Fatal("deleted record still loads")
	}
}
