package ledger_test

import (
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
