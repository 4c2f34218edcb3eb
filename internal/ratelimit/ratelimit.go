// Package ratelimit limits searches per project. The limiter is shared by
// every instance of a fleet (PostgreSQL or Redis), or local to one process.
package ratelimit

import (
	"context"
	"time"
)

// Decision is the outcome of one Allow call.
type Decision struct {
	Allowed bool
	// RetryAfter is how long until a request would be allowed; > 0 when
	// Allowed is false.
	RetryAfter time.Duration
}

// Limiter admits at most limit requests per key in any rolling window of
// length per (never a calendar window that lets 2×limit through at a
// boundary). limit <= 0 means unlimited.
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, per time.Duration) (Decision, error)
}
