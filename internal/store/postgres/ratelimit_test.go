package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/ratelimit/ratelimittest"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

func TestLimiterConformance(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	db := openTest(t, Options{})
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter { return db.Limiter() })
}

// TestLimiterSharedAcrossInstances: two DBs on one database (two
// instances) share one limit, even when asked at the same moment.
func TestLimiterSharedAcrossInstances(t *testing.T) {
	url := newDatabase(t)
	open := func() *DB {
		db, err := Open(context.Background(), Options{URL: url, MaxConns: 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	a, b := open(), open()
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		l := a.Limiter()
		if i%2 == 1 {
			l = b.Limiter()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.Allow(context.Background(), "search:P1", 10, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			} else if d.RetryAfter <= 0 || d.RetryAfter > time.Minute {
				t.Errorf("refused with RetryAfter %v", d.RetryAfter)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 10 {
		t.Fatalf("%d of 40 concurrent requests allowed through two instances, want 10", n)
	}
}
