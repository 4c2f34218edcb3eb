package ledgertest_test

import (
	"testing"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgertest"
)

func TestMem(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) *ledgertest.Harness {
		m := ledgertest.NewMem()
		h := &ledgertest.Harness{Store: m}
		h.Reopen = func(*testing.T) ledger.TreeStore {
			h.Store.Close()
			h.Store = m.Reopen()
			return h.Store
		}
		return h
	})
}
