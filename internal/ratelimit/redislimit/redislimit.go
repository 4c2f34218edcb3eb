// Package redislimit is a ratelimit.Limiter kept in Redis, shared by every
// instance that uses the same Redis: a sliding log per key in a sorted set,
// trimmed, counted and added to by one Lua script on Redis's own clock.
package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/audittrail/audittrail/internal/ratelimit"
)

var (
	// ErrUnavailable: Redis could not be reached or answered an error.
	ErrUnavailable = errors.New("redislimit: unavailable")
	// ErrBadOptions: Options failed validation.
	ErrBadOptions = errors.New("redislimit: invalid options")
)

// Options configure New. URL is required.
type Options struct {
	// URL is redis://[user:password@]host:port/db or rediss://….
	URL string
	// Prefix starts every key this limiter writes; default "audittrail:rl:".
	Prefix string
}

// Limiter is the Redis limiter. Close it when done.
type Limiter struct {
	client *redis.Client
	prefix string
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New connects lazily: a Redis that is down makes Allow fail, not New.
func New(opts Options) (*Limiter, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("%w: URL is required", ErrBadOptions)
	}
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	// A rate limit check sits in front of every search: when Redis is
	// unreachable it must fail within about a second, not after go-redis's
	// default 5 s dial timeout and three retries. The URL may say otherwise
	// (dial_timeout, read_timeout, max_retries).
	if ro.DialTimeout == 0 {
		ro.DialTimeout = time.Second
	}
	if ro.ReadTimeout == 0 {
		ro.ReadTimeout = time.Second
	}
	if ro.WriteTimeout == 0 {
		ro.WriteTimeout = time.Second
	}
	if ro.MaxRetries == 0 {
		ro.MaxRetries = 1
	}
	if opts.Prefix == "" {
		opts.Prefix = "audittrail:rl:"
	}
	return &Limiter{client: redis.NewClient(ro), prefix: opts.Prefix}, nil
}

// Close releases the connections.
func (l *Limiter) Close() error { return l.client.Close() }

// allowScript admits a request when fewer than limit admissions lie in the
// window (now-per, now]. Time comes from Redis (TIME), so instances with
// skewed clocks still share one window. It answers {allowed, retry_us}.
//
// KEYS[1] the log; ARGV[1] limit, ARGV[2] window in µs, ARGV[3] a member
// unique to this request (two requests in one microsecond both count).
var allowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(per / 1000) + 1000)
  return {1, 0}
end
-- The (n-limit+1)-th oldest admission must leave before one more fits.
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return {0, tonumber(oldest[2]) + per - now}
`)

func (l *Limiter) Allow(ctx context.Context, key string, limit int, per time.Duration) (ratelimit.Decision, error) {
	if limit <= 0 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	res, err := allowScript.Run(ctx, l.client, []string{l.prefix + key},
		limit, per.Microseconds(), hex.EncodeToString(b[:])).Int64Slice()
	if err != nil {
		if ctx.Err() != nil {
			return ratelimit.Decision{}, fmt.Errorf("rate limit %s: %w", key, ctx.Err())
		}
		return ratelimit.Decision{}, fmt.Errorf("rate limit %s: %w: %w", key, ErrUnavailable, err)
	}
	if len(res) != 2 {
		return ratelimit.Decision{}, fmt.Errorf("rate limit %s: %w: unexpected script answer %v", key, ErrUnavailable, res)
	}
	if res[0] == 1 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	// A refusal always waits a little, even when the oldest admission is
	// leaving this very microsecond.
	return ratelimit.Decision{RetryAfter: max(time.Duration(res[1])*time.Microsecond, time.Microsecond)}, nil
}
