package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// mountSmallFS mounts a tmpfs of size bytes on a fresh directory, or skips
// the test where mounting is not allowed (not root, no CAP_SYS_ADMIN).
func mountSmallFS(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill the disk (%v); needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestDiskFull fills the disk: Append must fail with ErrUnavailable,
// leave nothing of the failed batch, and work again once space returns;
// after a restart exactly the acknowledged events are there.
func TestDiskFull(t *testing.T) {
	dir := mountSmallFS(t, 2<<20)
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	e := openT(t, filepath.Join(dir, "data"))
	g := newGen(21)
	pad := strings.Repeat("x", 3000)
	var acked []event.Event
	var failed []event.Event
	for i := 0; i < 1000 && failed == nil; i++ {
		b := g.batch(20)
		for j := range b {
			b[j].Data = []byte(fmt.Sprintf(`{"pad":%q}`, pad))
		}
		err := e.Append(context.Background(), b)
		switch {
		case err == nil:
			acked = append(acked, b...)
		case errors.Is(err, store.ErrUnavailable):
			failed = b
		default:
			t.Fatalf("Append on a full disk: %v, want ErrUnavailable", err)
		}
	}
	if failed == nil || len(acked) == 0 {
		t.Fatalf("disk never filled (%d acknowledged)", len(acked))
	}
	for _, ev := range failed {
		if ev.Seq != 0 {
			t.Fatalf("failed batch left Seq %d", ev.Seq)
		}
		if _, err := e.Get(context.Background(), ev.CompanyID, ev.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("event of the failed batch is visible: %v", err)
		}
	}
	if n := len(allOf(t, e)); n != len(acked) {
		t.Fatalf("%d events visible, want %d acknowledged", n, len(acked))
	}

	// Space returns: the same batch goes in, with the next Seq.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := e.Append(context.Background(), failed); err != nil {
		t.Fatalf("Append after space returned: %v", err)
	}
	if failed[0].Seq != acked[len(acked)-1].Seq+1 {
		t.Fatalf("Seq after recovery %d, want %d", failed[0].Seq, acked[len(acked)-1].Seq+1)
	}
	acked = append(acked, failed...)
	e.crash() // the log alone must hold everything
	e = openT(t, filepath.Join(dir, "data"))

	// A Close that cannot write its segment keeps the log instead.
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int(st.Bavail) * int(st.Bsize)
	if err := os.WriteFile(filler, make([]byte, max(0, free-8192)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close on a full disk: %v", err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "data", segDirName, "*"+segSuffix)); len(segs) != 0 {
		t.Fatalf("a segment was written on a full disk: %v", segs)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e = openT(t, filepath.Join(dir, "data"))
	defer e.Close()
	got := allOf(t, e)
	if len(got) != len(acked) {
		t.Fatalf("after restart %d events, want %d", len(got), len(acked))
	}
	for i := range got {
		if got[i].ID != acked[i].ID || got[i].Seq != acked[i].Seq {
			t.Fatalf("after restart event %d is %s/%d, want %s/%d", i, got[i].ID, got[i].Seq, acked[i].ID, acked[i].Seq)
		}
	}
	checkT(t, e, len(acked))
}
