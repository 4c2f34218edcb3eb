package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/audittrail/audittrail/internal/query"
)

// TestConcurrentAppendDeleteSearch runs writers, deletions, searches and
// stream reads at once over a tiny memtable (constant freezing and
// flushing), then requires a clean Check and exact bookkeeping: every
// appended event is either deleted (counted by DeleteBefore) or live, also
// after a restart.
func TestConcurrentAppendDeleteSearch(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir, func(o *Options) { o.MemtableEvents = 200 })
	ctx := context.Background()
	var appended, deleted atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen(uint64(w) + 40)
			for i := range 60 {
				b := g.batch(1 + i%25)
				for j := range b {
					b[j].ID = fmt.Sprintf("w%d-%d-%d", w, i, j)
				}
				if err := e.Append(ctx, b); err != nil {
					t.Error(err)
					return
				}
				appended.Add(int64(len(b)))
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // retention sweeps with a cut-off that moves forward
		defer bg.Done()
		for cut := int64(1_700_000_000_000); ; cut += 60_000 {
			select {
			case <-stop:
				return
			default:
			}
			for _, c := range []string{"c1", "c2"} {
				n, err := e.DeleteBefore(ctx, c, cut)
				if err != nil {
					t.Error(err)
					return
				}
				deleted.Add(n)
			}
		}
	}()
	go func() { // readers: searches must never fail, ReadFrom must stay ordered
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			q := query.Query{CompanyID: "c1", ProjectID: "P1", IncludeProject: true, IncludeCompany: true, Size: 50, Page: 1,
				TextTokens: query.TextTokens("john")}
			if _, err := e.Search(ctx, q); err != nil {
				t.Error(err)
				return
			}
			evs, err := e.ReadFrom(ctx, 0, 1<<20)
			if err != nil {
				t.Error(err)
				return
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Seq <= evs[i-1].Seq {
					t.Errorf("ReadFrom out of order at %d", i)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	live := int(appended.Load() - deleted.Load())
	checkT(t, e, live)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openT(t, dir)
	defer e.Close()
	checkT(t, e, live)
	t.Logf("%d appended, %d deleted", appended.Load(), deleted.Load())
}
