package postgres

import (
	"context"
	"testing"

	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/tenancy"
	"github.com/audittrail/audittrail/internal/tenancy/tenancytest"
)

func TestDirectoryConformance(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	tenancytest.Run(t, func(t *testing.T) tenancy.Directory {
		return openTest(t, Options{}).Directory()
	})
}

func TestDirectoryReopen(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	tenancytest.RunReopen(t, func(t *testing.T) (tenancy.Directory, func(t *testing.T) tenancy.Directory) {
		url := newDatabase(t)
		open := func(t *testing.T) tenancy.Directory {
			db, err := Open(context.Background(), Options{URL: url, MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(db.Close)
			return db.Directory()
		}
		return open(t), open
	})
}
