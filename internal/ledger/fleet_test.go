package ledger_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// checkTrees compares every tree with the store's events in Seq order.
func checkTrees(t *testing.T, st store.Store, trees ledger.TreeStore) int {
	t.Helper()
	n := 0
	for tr, lines := range byTree(t, st) {
		ts, err := trees.Tree(context.Background(), tr)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Size != uint64(len(lines)) || !bytes.Equal(ts.Root, ledger.RootFromLeaves(leavesOf(t, lines))) {
			t.Fatalf("tree %s: size %d, store has %d events (or roots differ)", tr, ts.Size, len(lines))
		}
		n += len(lines)
	}
	return n
}

// Two appenders without a lease (a misconfigured fleet): commits are
// fenced by the position, so the loser of each race reloads and the trees
// still hold every event once, in order.
func TestTwoAppendersNeverCorrupt(t *testing.T) {
	st := storetest.NewMemStore()
	trees := ledgertestMem()
	a := newEnv(t, st, trees)
	b := newEnvWithKey(t, st, trees, a.signer, a.vkey, func(o *ledger.Options) { o.RetryInterval = 5 * time.Millisecond })
	for i := range 20 {
		appendEvents(t, st, storetest.Generate(uint64(100+i), 40, storetest.GenOptions{}))
		a.l.Notify()
		b.l.Notify()
	}
	a.sync(t)
	b.sync(t)
	if n := checkTrees(t, st, trees); n != 800 {
		t.Fatalf("%d events in trees, want 800", n)
	}
}

// handoverLease grants the lease to one holder at a time and can take it
// away, like PostgreSQL advisory locks in a fleet.
type handoverLease struct {
	mu     sync.Mutex
	holder string
	lost   chan struct{}
	free   chan struct{}
}

type handoverHeld struct {
	l    *handoverLease
	lost chan struct{}
}

func (h handoverHeld) Lost() <-chan struct{} { return h.lost }
func (h handoverHeld) Release() {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	if h.l.lost == h.lost {
		h.l.holder, h.l.lost = "", nil
		close(h.l.free)
		h.l.free = make(chan struct{})
	}
}

func (l *handoverLease) acquire(who string) ledger.Lease {
	return ledger.LeaseFunc(func(ctx context.Context, _ string) (ledger.Held, error) {
		for {
			l.mu.Lock()
			if l.holder == "" {
				l.holder, l.lost = who, make(chan struct{})
				h := handoverHeld{l, l.lost}
				l.mu.Unlock()
				return h, nil
			}
			free := l.free
			l.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-free:
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// revoke takes the lease from its holder.
func (l *handoverLease) revoke() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		close(l.lost)
	}
}

func TestLeaseHandover(t *testing.T) {
	st := storetest.NewMemStore()
	trees := ledgertestMem()
	lease := &handoverLease{free: make(chan struct{})}
	a := newEnv(t, st, trees, func(o *ledger.Options) { o.Lease = lease.acquire("a") })
	appendEvents(t, st, storetest.Generate(1, 200, storetest.GenOptions{}))
	a.l.Notify()
	a.sync(t)
	b := newEnvWithKey(t, st, trees, a.signer, a.vkey, func(o *ledger.Options) { o.Lease = lease.acquire("b") })
	// a holds the lease: stop it, so b (waiting) takes over.
	a.l.Close()
	appendEvents(t, st, storetest.Generate(2, 200, storetest.GenOptions{}))
	b.l.Notify()
	b.sync(t)
	if n := checkTrees(t, st, trees); n != 400 {
		t.Fatalf("%d events after handover, want 400", n)
	}
	// Taking the lease from b stops its appending until it is granted again.
	lease.mu.Lock()
	holder := lease.holder
	lease.mu.Unlock()
	if holder != "b" {
		t.Fatalf("lease held by %q, want b", holder)
	}
	lease.revoke()
	appendEvents(t, st, storetest.Generate(3, 100, storetest.GenOptions{}))
	b.l.Notify()
	b.sync(t) // b re-acquires (nobody else wants it) and catches up
	if n := checkTrees(t, st, trees); n != 500 {
		t.Fatalf("%d events after the lease came back, want 500", n)
	}
}
