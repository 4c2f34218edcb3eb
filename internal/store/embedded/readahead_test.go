package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/audittrail/audittrail/internal/store"
)

// TestPrefetchedBlocks: blocks a page prefetches decode to the same events
// as blocks read one by one, whether the probing read got them (cached) or
// the kernel was only told to read them (RWF_NOWAIT unavailable); a block
// damaged on disk is reported either way.
func TestPrefetchedBlocks(t *testing.T) {
	e := openT(t, t.TempDir(), func(o *Options) { o.MemtableEvents = 1000; o.noBackgroundMerge = true })
	defer e.Close()
	g := newGen(11)
	for range 3 {
		appendT(t, e, g.batch(1000))
	}
	if err := e.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.ix.segs[0]
	want := decodeEveryRow(t, e, s)
	// Every third row, as a page of scattered rows would be.
	page := func(t *testing.T, wantProbed bool) {
		bc := newBlockCache(nil)
		defer bc.reset()
		for row := 0; row < s.n; row += 3 {
			bc.prefetch(s, row/s.rpb)
		}
		switch probed := len(bc.comp); {
		case !wantProbed && probed != 0:
			t.Fatalf("%d blocks read by the probe without RWF_NOWAIT", probed)
		case wantProbed && probed == 0 && !noWaitUnsupported.Load():
			t.Fatal("no block read by the probe of a file just written")
		case wantProbed && probed == 0:
			t.Log("RWF_NOWAIT unsupported here: only the fallback was tested")
		}
		for row := 0; row < s.n; row += 3 {
			ev, err := bc.event(s, row, e.zdec)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%+v", ev); got != want[row] {
				t.Fatalf("row %d: %s, want %s", row, got, want[row])
			}
		}
	}
	withoutNoWait := func(f func()) {
		was := noWaitUnsupported.Swap(true)
		defer noWaitUnsupported.Store(was)
		f()
	}
	t.Run("probed", func(t *testing.T) { page(t, true) })
	t.Run("fallback", func(t *testing.T) { withoutNoWait(func() { page(t, false) }) })

	// Damage the middle of block 1 in the file; the mapping shows it too.
	lo, hi, err := s.blockRange(1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(s.secOff[secBlocks] + (lo+hi)/2)
	orig := []byte{s.mm[off]}
	if _, err := f.WriteAt([]byte{orig[0] ^ 0x5a}, off); err != nil {
		t.Fatal(err)
	}
	defer func() {
		f.WriteAt(orig, off)
		f.Close()
	}()
	damaged := func(t *testing.T) {
		bc := newBlockCache(nil)
		defer bc.reset()
		bc.prefetch(s, 1)
		if _, err := bc.event(s, 1*s.rpb, e.zdec); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("damaged block: %v, want ErrCorrupt", err)
		}
	}
	t.Run("damaged probed", damaged)
	t.Run("damaged fallback", func(t *testing.T) { withoutNoWait(func() { damaged(t) }) })
}
