package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewMemStore()
	trees := ledgertestMem()
	// Not started: nobody appends, so WaitFor ends only with its context.
	idle, err := ledger.New(ledger.Options{Store: st, Trees: trees})
	if err != nil {
		t.Fatal(err)
	}
	evs := storetest.Generate(77, 30, storetest.GenOptions{})
	appendEvents(t, st, evs)
	last := evs[len(evs)-1].Seq
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := idle.WaitFor(short, last); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor without an appender: %v, want the context's deadline", err)
	}
	if _, err := idle.LocateEvent(ctx, &evs[0]); !errors.Is(err, ledger.ErrNotYetAppended) {
		t.Fatalf("LocateEvent before the appender ran: %v, want ErrNotYetAppended", err)
	}
	// Started elsewhere (another instance in a fleet): the idle one sees
	// the shared TreeStore move.
	e := newEnv(t, st, trees)
	e.l.Notify()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := idle.WaitFor(wctx, last); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	for i := range evs {
		if _, err := idle.LocateEvent(ctx, &evs[i]); err != nil {
			t.Fatalf("LocateEvent(%s) after WaitFor: %v", evs[i].ID, err)
		}
	}
}
