package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

// TestReadFromNeverSkips runs many concurrent writers whose transactions
// commit out of seq order (a random pause before commit) and a reader that
// polls ReadFrom from its last seq. The reader must end with exactly the
// acknowledged events, each once, in ascending seq.
func TestReadFromNeverSkips(t *testing.T) {
	db := openTest(t, Options{MaxConns: 20})
	ctx := context.Background()
	st := db.Events()
	st.beforeCommit = func() { time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond) }

	const writers, batches = 16, 12
	var (
		mu       sync.Mutex
		acked    = map[uint64]string{}
		finished []uint64 // the first seq of each batch, in commit order
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				n := 1 + rand.IntN(40)
				evs := make([]event.Event, n)
				for i := range evs {
					evs[i] = event.Event{ID: fmt.Sprintf("w%d-b%d-%d", w, b, i), CompanyID: []string{"c1", "c2"}[i%2],
						ProjectID: "p", Level: event.LevelProject, Action: "A", Type: event.TypeInfo, Occurred: time.Now().UnixMilli()}
				}
				if err := st.Append(ctx, evs); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					acked[e.Seq] = e.ID
				}
				finished = append(finished, evs[0].Seq)
				mu.Unlock()
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	seen := map[uint64]string{}
	var last uint64
	read := func() int {
		evs, err := st.ReadFrom(ctx, last, 50)
		if err != nil {
			t.Fatalf("read from %d: %v", last, err)
		}
		for _, e := range evs {
			if e.Seq <= last {
				t.Fatalf("ReadFrom(%d) returned seq %d out of order", last, e.Seq)
			}
			if _, dup := seen[e.Seq]; dup {
				t.Fatalf("seq %d returned twice", e.Seq)
			}
			seen[e.Seq] = e.ID
			last = e.Seq
		}
		return len(evs)
	}
	for done := false; !done; {
		select {
		case <-writersDone:
			done = true
		default:
			read()
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < len(acked) && time.Now().Before(deadline) {
		if read() == 0 {
			time.Sleep(10 * time.Millisecond) // another transaction on the server may hold xmin back
		}
	}
	for seq, id := range acked {
		if seen[seq] != id {
			t.Fatalf("acknowledged event %s (seq %d) never read: skipped (%d of %d read)", id, seq, len(seen), len(acked))
		}
	}
	if len(seen) != len(acked) {
		t.Fatalf("read %d events, %d acknowledged", len(seen), len(acked))
	}
	// The test only proves something if commits did land out of seq order.
	inversions := 0
	for i := 1; i < len(finished); i++ {
		if finished[i] < finished[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatal("no batch committed after one with a larger seq: the test exercised nothing")
	}
	t.Logf("%d events from %d writers, %d out-of-order commits, none skipped", len(acked), writers, inversions)
}

// TestReadHorizon: the horizon is the smallest in-flight Append's key, read
// back from pg_locks whole (keys over 2^32 split across two columns).
func TestReadHorizon(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	horizon := func() int64 {
		t.Helper()
		var h int64
		if err := db.pool.QueryRow(ctx, "SELECT audittrail_read_horizon()").Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := horizon(); h != 0 {
		t.Fatalf("horizon of an empty store %d, want 0", h)
	}
	if _, err := db.pool.Exec(ctx, "SELECT setval('event_seq', 6000000000)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1::bigint)", readHorizonLockBase+5000000123); err != nil {
		t.Fatal(err)
	}
	if h := horizon(); h != 5000000123 {
		t.Fatalf("horizon with an Append in flight %d, want 5000000123", h)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if h := horizon(); h != 6000000000 {
		t.Fatalf("horizon after it ended %d, want 6000000000", h)
	}
}
