package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMergeMemory measures what a merge holds per merged row: the heap's
// growth while Compact merges one day of rows into one segment. Set
// AUDITTRAIL_MERGE_MEM=<rows> to run it.
func TestMergeMemory(t *testing.T) {
	rows, _ := strconv.Atoi(os.Getenv("AUDITTRAIL_MERGE_MEM"))
	if rows <= 0 {
		t.Skip("set AUDITTRAIL_MERGE_MEM=<rows>")
	}
	dir := t.TempDir()
	e := openT(t, dir, func(o *Options) {
		o.MemtableEvents = 100_000
		o.MergeRows = rows
		o.noBackgroundMerge = true
	})
	defer e.Close()
	g := &daysGen{gen: newGen(21), at: testDay0}
	step := int64(dayMs / 2 / rows) // all in one day
	pad := strings.Repeat("x", 300)
	for n := 0; n < rows; n += 1000 {
		b := g.batch(1000, max(step, 1))
		for i := range b {
			b[i].Data = json.RawMessage(fmt.Sprintf(`{"ua":"Mozilla/5.0 %d","pad":%q,"request_details":{"id":"%d-%d"}}`, i, pad, n, g.r.Int64()))
			b[i].UserID = fmt.Sprintf("user-%d@example.com", g.r.IntN(rows/4))
			b[i].RemoteAddress = fmt.Sprintf("10.%d.%d.%d", g.r.IntN(256), g.r.IntN(256), g.r.IntN(256))
		}
		appendT(t, e, b)
	}
	if err := e.flushNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	t0 := time.Now()
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(done)
	merged, flushed := checkPartitions(t, e)
	p := peak.Load()
	t.Logf("%d rows: %d merged + %d flushed segments in %v; heap in use %d MiB before, peak %d MiB: %.0f B per merged row",
		rows, merged, flushed, time.Since(t0).Round(time.Millisecond), base>>20, p>>20, float64(p-base)/float64(rows))
}
