package bench

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// TestWarmReadsFilesIntoPageCache: after the kernel drops a directory's
// files from the page cache, StoreEngine.Warm reads every byte of them
// back, and the cache holds them again (mincore on a mapping).
func TestWarmReadsFilesIntoPageCache(t *testing.T) {
	dir := t.TempDir()
	sizes := map[string]int{"a.seg": 3<<20 + 123, "sub/b.wal": 64 << 10, "sub/deeper/c": 1}
	var want int64
	for name, n := range sizes {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, n), 0o644); err != nil {
			t.Fatal(err)
		}
		want += int64(n)
	}
	big := filepath.Join(dir, "a.seg")
	f, err := os.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Written pages are dirty: they leave the cache only once on disk.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if got := residentPages(t, f); got == pageCount(sizes["a.seg"]) {
		t.Skip("the kernel kept the pages after FADV_DONTNEED: cannot observe warming here")
	}

	eng := &StoreEngine{Dir: dir}
	n, err := eng.Warm(context.Background())
	if err != nil || n != want {
		t.Fatalf("Warm read %d B (err %v), want %d", n, err, want)
	}
	if got, all := residentPages(t, f), pageCount(sizes["a.seg"]); got != all {
		t.Fatalf("after Warm %d of %d pages of a.seg are in the page cache", got, all)
	}
	if n, err := (&StoreEngine{}).Warm(context.Background()); n != 0 || err != nil {
		t.Fatalf("an engine without a directory warmed %d B, %v", n, err)
	}
}

func pageCount(size int) int {
	ps := os.Getpagesize()
	return (size + ps - 1) / ps
}

// residentPages counts f's pages in the page cache.
func residentPages(t *testing.T, f *os.File) int {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, pageCount(int(st.Size())))
	// x/sys/unix has no wrapper for mincore(2).
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// countingWarmer is an engine with nothing stored that counts its warmings.
type countingWarmer struct {
	StoreEngine
	warms int
}

func (c *countingWarmer) Warm(context.Context) (int64, error) { c.warms++; return 7, nil }

// TestShapesRewarmAfterInterval: the page cache is warmed before the first
// shape, and before a later one only once rewarmAfter has passed since;
// never without Options.Warm.
func TestShapesRewarmAfterInterval(t *testing.T) {
	sets := []QuerySet{{Shape: "a", Queries: []query.Query{{}}}, {Shape: "b", Queries: []query.Query{{}}}, {Shape: "c", Queries: []query.Query{{}}}}
	defer func(d time.Duration) { rewarmAfter = d }(rewarmAfter)
	for _, tc := range []struct {
		warm  bool
		after time.Duration
		want  int
	}{{true, time.Hour, 1}, {true, 0, 3}, {false, 0, 0}} {
		rewarmAfter = tc.after
		eng := &countingWarmer{StoreEngine: StoreEngine{Store: storetest.NewMemStore()}}
		var er EngineReport
		if _, err := runShapes(context.Background(), eng, sets, Options{Warm: tc.warm}, &er, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		if eng.warms != tc.want || er.Warmings != tc.want || (tc.want > 0) != (er.WarmBytes == 7) || len(er.Shapes) != 3 {
			t.Errorf("warm %v, rewarm after %v: %d warmings (report %d, %d B), %d shapes; want %d", tc.warm, tc.after, eng.warms, er.Warmings, er.WarmBytes, len(er.Shapes), tc.want)
		}
	}
}
