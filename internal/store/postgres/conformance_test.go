package postgres

import (
	"context"
	"testing"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

func TestStoreConformance(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	storetest.Run(t, func(t *testing.T) *storetest.Harness {
		url := newDatabase(t)
		open := func(t *testing.T) store.Store {
			db, err := Open(context.Background(), Options{URL: url, MaxConns: 8})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(db.Close)
			return db.Store()
		}
		return &storetest.Harness{Store: open(t), Reopen: open}
	})
}
