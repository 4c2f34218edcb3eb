package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadWindow: Allow was called with a window that is not positive.
var ErrBadWindow = errors.New("ratelimit: window must be positive")

// MemoryOptions configure a Memory limiter. The zero value is usable.
type MemoryOptions struct {
	// Now is the clock; nil means time.Now (whose monotonic reading makes
	// the limiter immune to wall-clock steps). Tests move it.
	Now func() time.Time
	// SweepEvery is how many Allow calls pass between sweeps of one shard
	// (in turn) that forget idle keys; default 256.
	SweepEvery int
}

// Memory is a Limiter local to one process: a sliding log per key, the
// times of the requests it admitted in the last window. Unlike a token
// bucket or a fixed window, a log admits at most limit requests in every
// rolling window, and tells exactly when the next one will be admitted.
// Memory is O(limit) per active key; a key whose newest admission is older
// than its window holds no information and is forgotten by a sweep.
type Memory struct {
	now        func() time.Time
	start      time.Time
	sweepEvery int
	seed       maphash.Seed
	calls      atomic.Uint64
	shards     [memShards]memShard
}

// memShards spreads keys over locks so that searches of different
// projects rarely wait on each other.
const memShards = 32

type memShard struct {
	mu   sync.Mutex
	logs map[string]*slidingLog
}

// slidingLog is a ring of admission times (ns since Memory.start),
// oldest first.
type slidingLog struct {
	times []int64 // capacity = the limit it was made for
	head  int     // index of the oldest entry
	n     int
	per   int64
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-process limiter with default options.
func NewMemory() *Memory { return NewMemoryWithOptions(MemoryOptions{}) }

// NewMemoryWithOptions returns an in-process limiter.
func NewMemoryWithOptions(opts MemoryOptions) *Memory {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = 256
	}
	m := &Memory{now: opts.Now, sweepEvery: opts.SweepEvery, seed: maphash.MakeSeed()}
	m.start = m.now()
	for i := range m.shards {
		m.shards[i].logs = map[string]*slidingLog{}
	}
	return m
}

// Allow admits the request if fewer than limit were admitted for key in the
// window (now−per, now]. A refused request is not recorded, so a client
// that keeps retrying is admitted as soon as the window allows.
func (m *Memory) Allow(_ context.Context, key string, limit int, per time.Duration) (Decision, error) {
	if limit <= 0 {
		return Decision{Allowed: true}, nil
	}
	if per <= 0 {
		return Decision{}, ErrBadWindow
	}
	// Shards are swept in turn, driven by traffic on any key, so a shard
	// whose keys all went quiet is still emptied.
	if c := m.calls.Add(1); c%uint64(m.sweepEvery) == 0 {
		m.shards[(c/uint64(m.sweepEvery))%memShards].sweep(int64(m.now().Sub(m.start)))
	}
	sh := &m.shards[maphash.String(m.seed, key)%memShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := int64(m.now().Sub(m.start))

	l := sh.logs[key]
	if l == nil {
		l = &slidingLog{times: make([]int64, limit)}
		sh.logs[key] = l
	}
	l.per = int64(per)
	l.expire(now)
	if len(l.times) < limit || (len(l.times) > limit && l.n <= limit) {
		l.resize(limit)
	}
	if l.n < limit {
		l.push(now)
		return Decision{Allowed: true}, nil
	}
	// Full: admission waits until only limit−1 remain, that is until the
	// (n−limit+1)-th oldest leaves at its time + per. The window is
	// half-open, so that instant is the first that admits.
	leaving := l.times[(l.head+l.n-limit)%len(l.times)]
	return Decision{RetryAfter: time.Duration(leaving + l.per - now)}, nil
}

// expire drops admissions at or before now−per.
func (l *slidingLog) expire(now int64) {
	for l.n > 0 && l.times[l.head] <= now-l.per {
		l.head = (l.head + 1) % len(l.times)
		l.n--
	}
}

func (l *slidingLog) push(t int64) {
	l.times[(l.head+l.n)%len(l.times)] = t
	l.n++
}

// resize fits the ring to a new limit (a company's setting may change
// while its window is full) without forgetting admissions still in the
// window: they count against the new limit too.
func (l *slidingLog) resize(limit int) {
	times := make([]int64, max(limit, l.n))
	for i := range l.n {
		times[i] = l.times[(l.head+i)%len(l.times)]
	}
	l.times, l.head = times, 0
}

// sweep forgets keys with no admission inside their window.
func (sh *memShard) sweep(now int64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k, l := range sh.logs {
		l.expire(now)
		if l.n == 0 {
			delete(sh.logs, k)
		}
	}
}

// Len returns the number of keys remembered, for metrics and tests.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.logs)
		sh.mu.Unlock()
	}
	return n
}
