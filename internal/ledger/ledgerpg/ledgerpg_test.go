package ledgerpg_test

import (
	"context"
	"testing"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgerpg"
	"github.com/audittrail/audittrail/internal/ledger/ledgertest"
	"github.com/audittrail/audittrail/internal/store/postgres"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

// TestConformance runs the TreeStore suite on a fresh database per case,
// migrated by postgres.Open like a server would (AUDITTRAIL_INTEGRATION=1).
func TestConformance(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	ledgertest.Run(t, func(t *testing.T) *ledgertest.Harness {
		url := pgtest.NewDatabase(t)
		db, err := postgres.Open(context.Background(), postgres.Options{URL: url, MaintenanceInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		h := &ledgertest.Harness{Store: ledgerpg.New(db.Pool())}
		h.Reopen = func(*testing.T) ledger.TreeStore {
			h.Store.Close()
			h.Store = ledgerpg.New(db.Pool())
			return h.Store
		}
		return h
	})
}
