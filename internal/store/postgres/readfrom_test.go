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
	r := readWhileWriting(t, db.Events())
	if r.inversions == 0 {
		t.Fatal("no batch committed after one with a larger seq: the test exercised nothing")
	}
	if len(r.skipped) > 0 {
		t.Fatalf("%d acknowledged events never read (skipped), e.g. seq %d (%d of %d read)", len(r.skipped), r.skipped[0], r.read, r.acked)
	}
	if r.read != r.acked {
		t.Fatalf("read %d events, %d acknowledged", r.read, r.acked)
	}
	t.Logf("%d events from %d writers, %d out-of-order commits, none skipped", r.acked, readWriters, r.inversions)
}

// TestReadFromWithoutHorizonSkips plants the bug the horizon prevents (a
// reader exposing every committed seq): the same scenario must then catch
// skipped events, or TestReadFromNeverSkips would prove nothing.
func TestReadFromWithoutHorizonSkips(t *testing.T) {
	for attempt := 1; attempt <= 3; attempt++ {
		db := openTest(t, Options{MaxConns: 20})
		st := db.Events()
		st.ignoreHorizon = true
		r := readWhileWriting(t, st)
		if len(r.skipped) > 0 {
			t.Logf("without the horizon the reader skipped %d of %d events (%d out-of-order commits)", len(r.skipped), r.acked, r.inversions)
			return
		}
		t.Logf("attempt %d: no skip without the horizon (%d out-of-order commits)", attempt, r.inversions)
	}
	t.Fatal("the concurrent reader never skipped an event even without the read horizon: the scenario is too weak")
}

const readWriters, readBatches = 16, 12

type readResult struct {
	acked, read, inversions int
	skipped                 []uint64 // acknowledged seqs the reader moved past without reading
}

// readWhileWriting runs readWriters writers that append readBatches
// batches each with a random pause before each commit, and one reader
// that polls ReadFrom from its last seq meanwhile and for a while after.
func readWhileWriting(t *testing.T, st *EventStore) readResult {
	t.Helper()
	ctx := context.Background()
	st.beforeCommit = func() { time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond) }

	var (
		mu       sync.Mutex
		acked    = map[uint64]string{}
		finished []uint64 // the first seq of each batch, in commit order
	)
	var wg sync.WaitGroup
	for w := range readWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range readBatches {
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
			if st.ignoreHorizon {
				break // a naive reader never goes back: what it skipped is lost
			}
			time.Sleep(10 * time.Millisecond) // another transaction on the server may hold the horizon back
		}
	}
	r := readResult{acked: len(acked), read: len(seen)}
	for seq, id := range acked {
		if seen[seq] != id {
			r.skipped = append(r.skipped, seq)
		}
	}
	for i := 1; i < len(finished); i++ {
		if finished[i] < finished[i-1] {
			r.inversions++
		}
	}
	return r
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
