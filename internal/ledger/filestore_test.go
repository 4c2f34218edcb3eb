package ledger_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgertest"
)

func openFileHarness(t *testing.T) *ledgertest.Harness {
	dir := t.TempDir()
	s, err := ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &ledgertest.Harness{Store: s}
	h.Reopen = func(t *testing.T) ledger.TreeStore {
		if err := h.Store.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s, err := ledger.OpenFileStore(dir)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		h.Store = s
		return s
	}
	return h
}

func TestFileStoreConformance(t *testing.T) { ledgertest.Run(t, openFileHarness) }

// The manifest is replaced by a snapshot as it grows; a store reopened
// from snapshot + log holds every commit.
func TestFileStoreSnapshots(t *testing.T) {
	defer ledger.SetManifestLimitForTest(600)()
	dir := t.TempDir()
	s, err := ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := ledgertest.NewBuilder()
	trees := []ledger.TreeID{{CompanyID: "c1", ProjectID: "P1"}, {CompanyID: "c1"}, {CompanyID: "c2", ProjectID: "P9"}}
	for i := range 40 {
		if err := s.Commit(context.Background(), b.Next(map[ledger.TreeID]int{trees[i%3]: 1 + i%4})); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if fi, err := os.Stat(filepath.Join(dir, "manifest.snap")); err != nil || fi.Size() == 0 {
		t.Fatalf("no snapshot written: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "manifest.log")); fi.Size() > 600+400 {
		t.Fatalf("manifest.log is %d bytes; the snapshot should have emptied it", fi.Size())
	}
	s, err = ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b.Check(t, s)
}
