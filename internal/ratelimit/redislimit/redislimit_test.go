package redislimit

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/ratelimit/ratelimittest"
)

func redisURL(t *testing.T) string {
	t.Helper()
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("Redis integration test: set AUDITTRAIL_INTEGRATION=1 (server from AUDITTRAIL_TEST_REDIS_URL, default redis://127.0.0.1:6379/0)")
	}
	if u := os.Getenv("AUDITTRAIL_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func newLimiter(t *testing.T, url string) *Limiter {
	t.Helper()
	l, err := New(Options{URL: url, Prefix: "audittrail-test:" + t.Name() + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	url := redisURL(t)
	ratelimittest.Run(t, func(t *testing.T) ratelimit.Limiter { return newLimiter(t, url) })
}

// TestSharedAcrossInstances: two clients (two instances) share one limit
// under concurrent requests.
func TestSharedAcrossInstances(t *testing.T) {
	url := redisURL(t)
	a, b := newLimiter(t, url), newLimiter(t, url)
	key := "search:" + time.Now().Format(time.RFC3339Nano)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.Allow(context.Background(), key, 10, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 10 {
		t.Fatalf("%d of 60 concurrent requests allowed, want 10", n)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := New(Options{URL: "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, err = l.Allow(context.Background(), "k", 1, time.Second)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Allow against a closed port: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Allow against a closed port took %v: searches would wait that long", took)
	}
	if _, err := New(Options{}); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("New without URL: %v", err)
	}
}
