package ratelimittest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ratelimit"
)

// fixedWindow is the classic wrong limiter: counts per calendar window,
// so it admits 2×limit around a boundary.
type fixedWindow struct {
	mu     sync.Mutex
	counts map[string]int
}

func (f *fixedWindow) Allow(_ context.Context, key string, limit int, per time.Duration) (ratelimit.Decision, error) {
	if limit <= 0 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	slot := now.Truncate(per)
	k := key + slot.String()
	if f.counts[k] < limit {
		f.counts[k]++
		return ratelimit.Decision{Allowed: true}, nil
	}
	return ratelimit.Decision{RetryAfter: slot.Add(per).Sub(now)}, nil
}

// tokenBucket refills continuously: smooth, but lets a burst of limit plus
// the refill through in one window.
type tokenBucket struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) Allow(_ context.Context, key string, limit int, per time.Duration) (ratelimit.Decision, error) {
	if limit <= 0 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	bk := b.buckets[key]
	if bk == nil {
		bk = &bucket{tokens: float64(limit), last: now}
		b.buckets[key] = bk
	}
	rate := float64(limit) / float64(per)
	bk.tokens = min(float64(limit), bk.tokens+rate*float64(now.Sub(bk.last)))
	bk.last = now
	if bk.tokens >= 1 {
		bk.tokens--
		return ratelimit.Decision{Allowed: true}, nil
	}
	return ratelimit.Decision{RetryAfter: time.Duration((1 - bk.tokens) / rate)}, nil
}

// racy reads and writes its count under a lock but not in one critical
// section (as a GET then SET against a server would): concurrent callers
// overshoot the limit.
type racy struct {
	mu sync.Mutex
	m  map[string]int
}

func (r *racy) Allow(_ context.Context, key string, limit int, _ time.Duration) (ratelimit.Decision, error) {
	if limit <= 0 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	r.mu.Lock()
	n := r.m[key]
	r.mu.Unlock()
	time.Sleep(50 * time.Microsecond)
	if n < limit {
		r.mu.Lock()
		r.m[key] = n + 1
		r.mu.Unlock()
		return ratelimit.Decision{Allowed: true}, nil
	}
	return ratelimit.Decision{RetryAfter: time.Second}, nil
}

var wrongLimiters = map[string]struct {
	make    func() ratelimit.Limiter
	subtest string
}{
	"fixed-window": {func() ratelimit.Limiter { return &fixedWindow{counts: map[string]int{}} }, "NoBurstAtBoundary"},
	"token-bucket": {func() ratelimit.Limiter { return &tokenBucket{buckets: map[string]*bucket{}} }, "NoBurstAtBoundary"},
	"racy":         {func() ratelimit.Limiter { return &racy{m: map[string]int{}} }, "Concurrent"},
}

// TestSuiteCatchesWrongLimiters runs the suite, in a child process, on
// limiters that are wrong in well-known ways, and requires it to fail.
func TestSuiteCatchesWrongLimiters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per wrong limiter")
	}
	for name, w := range wrongLimiters {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestWrongLimiter$/^"+w.subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "RATELIMITTEST_WRONG="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed the %s limiter:\n%s", name, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestWrongLimiter/"+w.subtest+" ") {
				t.Fatalf("%s: subtest %s did not fail:\n%s", name, w.subtest, out)
			}
		})
	}
}

// TestWrongLimiter is the child of TestSuiteCatchesWrongLimiters.
func TestWrongLimiter(t *testing.T) {
	w, ok := wrongLimiters[os.Getenv("RATELIMITTEST_WRONG")]
	if !ok {
		t.Skip("only run by TestSuiteCatchesWrongLimiters")
	}
	Run(t, func(*testing.T) ratelimit.Limiter { return w.make() })
}
