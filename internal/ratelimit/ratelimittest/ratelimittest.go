// Package ratelimittest is the conformance suite every ratelimit.Limiter
// must pass:
//
//	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter { return newLimiter(t) })
//
// It uses short windows (200 ms) and real time, so a shared limiter
// (Redis, PostgreSQL) is tested with its own clock. Every subtest uses keys
// no earlier run used, so state left in a shared server does not matter.
// Timing checks allow Slack for a round trip to a server.
package ratelimittest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ratelimit"
)

// Window is the rolling window the suite uses.
const Window = 200 * time.Millisecond

// Slack is how far a limiter's own clock and round trip may put a decision
// from the suite's measurement of it.
const Slack = 15 * time.Millisecond

// Run runs the suite. newLimiter is called once per subtest.
func Run(t *testing.T, newLimiter func(t *testing.T) ratelimit.Limiter) {
	run := time.Now().UnixNano()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, l ratelimit.Limiter, key func(string) string)
	}{
		{"ExactLimit", testExactLimit},
		{"RetryAfter", testRetryAfter},
		{"Rolling", testRolling},
		{"NoBurstAtBoundary", testNoBurstAtBoundary},
		{"KeysIndependent", testKeysIndependent},
		{"Unlimited", testUnlimited},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t)
			key := func(s string) string { return fmt.Sprintf("ratelimittest:%d:%s:%s", run, tc.name, s) }
			tc.fn(t, l, key)
		})
	}
}

func allow(t *testing.T, l ratelimit.Limiter, key string, limit int, per time.Duration) ratelimit.Decision {
	t.Helper()
	d, err := l.Allow(t.Context(), key, limit, per)
	if err != nil {
		t.Fatalf("Allow(%q, %d, %v): %v", key, limit, per, err)
	}
	if d.Allowed && d.RetryAfter != 0 {
		t.Fatalf("Allow(%q): allowed with RetryAfter %v", key, d.RetryAfter)
	}
	if !d.Allowed && d.RetryAfter <= 0 {
		t.Fatalf("Allow(%q): refused with RetryAfter %v, want > 0", key, d.RetryAfter)
	}
	if d.RetryAfter > per+Slack {
		t.Fatalf("Allow(%q): RetryAfter %v longer than the window %v", key, d.RetryAfter, per)
	}
	return d
}

// testExactLimit: exactly limit requests in a window, then refusals.
func testExactLimit(t *testing.T, l ratelimit.Limiter, key func(string) string) {
	for _, limit := range []int{1, 5} {
		k := key(fmt.Sprint(limit))
		for i := range limit {
			if d := allow(t, l, k, limit, time.Minute); !d.Allowed {
				t.Fatalf("limit %d: request %d refused (RetryAfter %v)", limit, i+1, d.RetryAfter)
			}
		}
		for i := range 3 {
			if d := allow(t, l, k, limit, time.Minute); d.Allowed {
				t.Fatalf("limit %d: request %d over the limit allowed", limit, limit+i+1)
			}
		}
	}
}

// testRetryAfter: the refusal says exactly when the oldest admission leaves
// the window, and a request then is admitted.
func testRetryAfter(t *testing.T, l ratelimit.Limiter, k func(string) string) {
	const limit = 3
	key := k("a")
	before := time.Now()
	allow(t, l, key, limit, Window)
	firstDone := time.Now()
	allow(t, l, key, limit, Window)
	allow(t, l, key, limit, Window)
	refusedAt := time.Now()
	d := allow(t, l, key, limit, Window)
	refusedDone := time.Now()
	if d.Allowed {
		t.Fatal("request over the limit allowed")
	}
	// The first admission happened in [before, firstDone]; it leaves the
	// window Window later. The refusal was decided in [refusedAt, refusedDone].
	lo := before.Add(Window).Sub(refusedDone) - Slack
	hi := firstDone.Add(Window).Sub(refusedAt) + Slack
	if d.RetryAfter < lo || d.RetryAfter > hi {
		t.Fatalf("RetryAfter %v, want between %v and %v", d.RetryAfter, lo, hi)
	}

	// Halfway through the wait: still refused, and the wait has shrunk.
	half := d.RetryAfter / 2
	time.Sleep(half)
	d2 := allow(t, l, key, limit, Window)
	if time.Since(refusedDone) < d.RetryAfter-Slack { // else too late to tell
		if d2.Allowed {
			t.Fatalf("allowed %v into a %v wait", time.Since(refusedDone), d.RetryAfter)
		}
		if d2.RetryAfter >= d.RetryAfter {
			t.Fatalf("RetryAfter did not shrink: %v then %v", d.RetryAfter, d2.RetryAfter)
		}
	}
	time.Sleep(d.RetryAfter - half + Slack)
	if d3 := allow(t, l, key, limit, Window); !d3.Allowed {
		t.Fatalf("refused after waiting the RetryAfter (%v more)", d3.RetryAfter)
	}
}

// testRolling: admissions leave the window one by one, by their own time,
// not all at a boundary. Each step's timing is measured; an attempt the
// machine was too slow to make conclusive is repeated.
func testRolling(t *testing.T, l ratelimit.Limiter, k func(string) string) {
	const limit = 4
	for attempt := range 3 {
		key := k(fmt.Sprint(attempt))
		start := time.Now()
		for i := range 2 {
			if d := allow(t, l, key, limit, Window); !d.Allowed {
				t.Fatalf("request %d of an empty window refused", i+1)
			}
		}
		firstDone := time.Now()
		time.Sleep(Window / 2)
		secondStart := time.Now()
		for i := range 2 {
			if d := allow(t, l, key, limit, Window); !d.Allowed {
				t.Fatalf("request %d of 4 in one window refused (RetryAfter %v)", i+3, d.RetryAfter)
			}
		}
		d := allow(t, l, key, limit, Window)
		if time.Since(start) >= Window {
			continue // the first pair may have left: inconclusive
		}
		if d.Allowed {
			t.Fatal("fifth request in one window allowed")
		}
		// Once the first pair has left, exactly two more fit: the second
		// pair is still inside the window.
		time.Sleep(time.Until(firstDone.Add(Window)))
		for i := range 2 {
			if d := allow(t, l, key, limit, Window); !d.Allowed {
				t.Fatalf("request %d after the first pair left refused (RetryAfter %v)", i+1, d.RetryAfter)
			}
		}
		d = allow(t, l, key, limit, Window)
		if time.Since(secondStart) >= Window {
			continue
		}
		if d.Allowed {
			t.Fatal("a third request allowed while the second pair is still in the window: not a rolling window")
		}
		return
	}
	t.Skip("machine too slow: three attempts were inconclusive")
}

// testNoBurstAtBoundary hammers one key for three windows and checks that
// no window of length per, anywhere, saw more than limit admissions. An
// admission happened somewhere between the call and its return, so only
// admissions certainly closer than the window count together.
func testNoBurstAtBoundary(t *testing.T, l ratelimit.Limiter, k func(string) string) {
	const limit = 5
	key := k("a")
	type span struct{ before, after time.Time }
	var admitted []span
	end := time.Now().Add(3 * Window)
	for time.Now().Before(end) {
		before := time.Now()
		d := allow(t, l, key, limit, Window)
		if d.Allowed {
			admitted = append(admitted, span{before, time.Now()})
		}
		time.Sleep(time.Millisecond)
	}
	for i := range admitted {
		n := 0
		for j := i; j < len(admitted) && admitted[j].after.Sub(admitted[i].before) < Window; j++ {
			n++
		}
		if n > limit {
			t.Fatalf("%d admissions within one %v window starting at admission %d: limit is %d", n, Window, i, limit)
		}
	}
	// And it keeps admitting: about limit per window over three windows.
	if len(admitted) < 2*limit {
		t.Fatalf("only %d admissions in three windows of limit %d", len(admitted), limit)
	}
}

func testKeysIndependent(t *testing.T, l ratelimit.Limiter, k func(string) string) {
	const limit = 3
	for range limit {
		allow(t, l, k("a"), limit, time.Minute)
	}
	if d := allow(t, l, k("a"), limit, time.Minute); d.Allowed {
		t.Fatal("key a over its limit allowed")
	}
	for i := range limit {
		if d := allow(t, l, k("b"), limit, time.Minute); !d.Allowed {
			t.Fatalf("key b request %d refused because key a is full", i+1)
		}
	}
	if d := allow(t, l, k("b"), limit, time.Minute); d.Allowed {
		t.Fatal("key b over its limit allowed")
	}
}

func testUnlimited(t *testing.T, l ratelimit.Limiter, k func(string) string) {
	for _, limit := range []int{0, -1} {
		for i := range 200 {
			if d := allow(t, l, k(fmt.Sprint(limit)), limit, Window); !d.Allowed {
				t.Fatalf("limit %d (unlimited): request %d refused", limit, i+1)
			}
		}
	}
}

// testConcurrent: many goroutines racing on one key get exactly limit
// admissions in a window, never more (lost updates) and never fewer.
func testConcurrent(t *testing.T, l ratelimit.Limiter, k func(string) string) {
	const limit, workers, each = 25, 16, 10
	key := k("a")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				d, err := l.Allow(t.Context(), key, limit, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := allowed.Load(); n != limit {
		t.Fatalf("%d goroutines × %d requests: %d allowed, want exactly %d", workers, each, n, limit)
	}
}
