package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/statetest"
)

func TestStreamStateConformance(t *testing.T) {
	urls := map[stream.StateStore]string{}
	statetest.Run(t, statetest.Harness{
		New: func(t *testing.T) stream.StateStore {
			db := openTest(t, Options{MaxConns: 12})
			s := db.StreamState()
			urls[s] = db.opts.URL
			return s
		},
		// Another instance: its own pool on the same database.
		Reopen: func(t *testing.T, s stream.StateStore) stream.StateStore {
			db, err := Open(context.Background(), Options{URL: urls[s], MaxConns: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(db.Close)
			return db.StreamState()
		},
	})
}

// leaseOpts are fast timings so a test sees a takeover within a second.
var leaseOpts = LeaseOptions{Heartbeat: 100 * time.Millisecond, Poll: 50 * time.Millisecond}

func acquireWithin(t *testing.T, l *StreamLease, id string, d time.Duration) (stream.Held, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.Acquire(ctx, id)
}

// TestStreamLeaseExclusive: two instances (two lease managers, each with
// its own lock session) never hold one connector's lease at once; a
// release hands it over, and other connectors are independent.
func TestStreamLeaseExclusive(t *testing.T) {
	db := openTest(t, Options{})
	a, b := db.StreamLease(leaseOpts), db.StreamLease(leaseOpts)
	defer a.Close()
	defer b.Close()
	ha, err := acquireWithin(t, a, "c1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireWithin(t, b, "c1", 400*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second instance acquired a held lease: %v", err)
	}
	if _, err := acquireWithin(t, a, "c1", 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the holder acquired its own lease twice: %v", err)
	}
	hb2, err := acquireWithin(t, b, "c2", 2*time.Second)
	if err != nil {
		t.Fatalf("another connector's lease: %v", err)
	}
	defer hb2.Release()
	ha.Release()
	hb, err := acquireWithin(t, b, "c1", 2*time.Second)
	if err != nil {
		t.Fatalf("lease not handed over after release: %v", err)
	}
	select {
	case <-hb.Lost():
		t.Fatal("a fresh lease reports lost")
	default:
	}
	hb.Release()
}

// TestStreamLeaseLostWhenSessionEnds: the server ends the holder's lock
// session (as when its instance dies or the server restarts): Lost
// closes on the holder, and the other instance takes the lease.
func TestStreamLeaseLostWhenSessionEnds(t *testing.T) {
	db := openTest(t, Options{})
	a, b := db.StreamLease(leaseOpts), db.StreamLease(leaseOpts)
	defer a.Close()
	defer b.Close()
	ha, err := acquireWithin(t, a, "c1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	pid := a.conn.PgConn().PID()
	a.mu.Unlock()
	if _, err := db.pool.Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ha.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("Lost did not close after the lock session ended")
	}
	hb, err := acquireWithin(t, b, "c1", 3*time.Second)
	if err != nil {
		t.Fatalf("other instance did not take over: %v", err)
	}
	hb.Release()
	// The holder reconnects by itself and can lead again.
	ha.Release()
	if _, err := acquireWithin(t, a, "c1", 3*time.Second); err != nil {
		t.Fatalf("first instance after reconnecting: %v", err)
	}
}

// TestStreamLeaseSessionTimeout: an instance that stops heartbeating (here
// its heartbeat is slower than the session timeout, as for a frozen
// process) loses its locks on the server without any TCP reset.
func TestStreamLeaseSessionTimeout(t *testing.T) {
	db := openTest(t, Options{})
	frozen := db.StreamLease(LeaseOptions{Heartbeat: time.Hour, Poll: 50 * time.Millisecond, SessionTimeout: 500 * time.Millisecond})
	defer frozen.Close()
	b := db.StreamLease(leaseOpts)
	defer b.Close()
	if _, err := acquireWithin(t, frozen, "c1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	hb, err := acquireWithin(t, b, "c1", 5*time.Second)
	if err != nil {
		t.Fatalf("a silent holder kept its lease: %v", err)
	}
	t.Logf("taken over %v after the holder fell silent", time.Since(start).Round(10*time.Millisecond))
	hb.Release()
}
