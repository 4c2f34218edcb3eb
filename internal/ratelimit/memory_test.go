package ratelimit_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/ratelimit/ratelimittest"
)

func TestMemoryConformance(t *testing.T) {
	ratelimittest.Run(t, func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory() })
}

// clock is a manual clock for exact checks.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClocked(c *clock, sweep int) *ratelimit.Memory {
	return ratelimit.NewMemoryWithOptions(ratelimit.MemoryOptions{Now: c.now, SweepEvery: sweep})
}

func TestMemoryExactRetryAfter(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := newClocked(c, 0)
	ctx := t.Context()
	step := func(d time.Duration, wantAllowed bool, wantRetry time.Duration) {
		t.Helper()
		c.add(d)
		got, err := m.Allow(ctx, "k", 2, time.Minute)
		if err != nil || got.Allowed != wantAllowed || got.RetryAfter != wantRetry {
			t.Fatalf("Allow = %+v, %v; want allowed=%v retry=%v", got, err, wantAllowed, wantRetry)
		}
	}
	step(0, true, 0)                           // t=0
	step(10*time.Second, true, 0)              // t=10s
	step(5*time.Second, false, 45*time.Second) // t=15s: first leaves at 60s
	step(44*time.Second+999*time.Millisecond, false, time.Millisecond)
	step(time.Millisecond, true, 0) // t=60s exactly: the window is (0s, 60s]
	step(0, false, 10*time.Second)  // second (10s) and third (60s) inside
	step(10*time.Second, true, 0)
}

func TestMemoryLimitChange(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := newClocked(c, 0)
	ctx := t.Context()
	for i := range 5 {
		c.add(time.Second)
		if d, _ := m.Allow(ctx, "k", 5, time.Minute); !d.Allowed {
			t.Fatalf("request %d refused", i)
		}
	}
	// Lowered to 2 at t=5s: the window holds admissions at 1…5s, and one
	// more fits once only one is left, when the 4th (4s) leaves at 64s.
	d, _ := m.Allow(ctx, "k", 2, time.Minute)
	if d.Allowed || d.RetryAfter != 59*time.Second {
		t.Fatalf("after lowering the limit: %+v, want refused for 59s", d)
	}
	// Raised to 7: the five admissions still count, so two more fit.
	for i := range 2 {
		if d, _ := m.Allow(ctx, "k", 7, time.Minute); !d.Allowed {
			t.Fatalf("after raising the limit, request %d refused", i)
		}
	}
	if d, _ := m.Allow(ctx, "k", 7, time.Minute); d.Allowed || d.RetryAfter != 56*time.Second {
		t.Fatalf("eighth request in the window: %+v, want refused for 56s", d)
	}
}

func TestMemoryForgetsIdleKeys(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := newClocked(c, 16)
	ctx := t.Context()
	for i := range 5000 {
		if _, err := m.Allow(ctx, fmt.Sprint("key-", i), 3, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Len(); n != 5000 {
		t.Fatalf("%d keys remembered within the window, want 5000", n)
	}
	c.add(time.Second)
	// Traffic on one key sweeps every shard in turn.
	for range 32 * 16 {
		m.Allow(ctx, "busy", 1000, time.Second)
	}
	if n := m.Len(); n != 1 {
		t.Fatalf("%d keys remembered after every other one went idle, want 1", n)
	}
}

func TestMemoryBadWindow(t *testing.T) {
	m := ratelimit.NewMemory()
	if _, err := m.Allow(t.Context(), "k", 1, 0); !errors.Is(err, ratelimit.ErrBadWindow) {
		t.Fatalf("window 0: %v", err)
	}
	if d, err := m.Allow(t.Context(), "k", 0, 0); err != nil || !d.Allowed {
		t.Fatalf("unlimited with window 0: %+v %v", d, err)
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := ratelimit.NewMemory()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("project-", i)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Allow(b.Context(), keys[i%len(keys)], 10, time.Minute)
			i++
		}
	})
}
