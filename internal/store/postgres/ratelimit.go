package postgres

import (
	"context"
	"time"

	"github.com/audittrail/audittrail/internal/ratelimit"
)

// Limiter is a sliding-log rate limiter kept in the rate_limits table. One
// statement per call, serialised per key by a row lock and timed by the
// database's clock, so every instance on the database shares the limit.
type Limiter struct {
	db *DB
}

var _ ratelimit.Limiter = (*Limiter)(nil)

func (l *Limiter) Allow(ctx context.Context, key string, limit int, per time.Duration) (ratelimit.Decision, error) {
	if limit <= 0 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	var d ratelimit.Decision
	err := l.db.pool.QueryRow(ctx, "SELECT allowed, retry_after FROM audittrail_rate_allow($1, $2, $3)",
		key, limit, per).Scan(&d.Allowed, &d.RetryAfter)
	if err != nil {
		return ratelimit.Decision{}, classify(ctx, "rate limit", err)
	}
	if !d.Allowed && d.RetryAfter <= 0 {
		// The window moved between the lock and the answer; never tell a
		// caller to retry "now" while refusing it.
		d.RetryAfter = time.Millisecond
	}
	if d.Allowed {
		d.RetryAfter = 0
	}
	return d, nil
}
