package streamtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Arrivals notes when each event id first reached a receiver, for
// throughput and latency measurements.
type Arrivals struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func NewArrivals() *Arrivals { return &Arrivals{seen: map[string]time.Time{}} }

// Note records ids as arrived at now, unless they arrived before.
func (a *Arrivals) Note(now time.Time, ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if _, dup := a.seen[id]; !dup {
			a.seen[id] = now
		}
	}
}

// Count is how many distinct ids arrived.
func (a *Arrivals) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

// Latencies returns, for each id of sent that arrived, the time from its
// sending to its arrival, and how many of sent have not arrived.
func (a *Arrivals) Latencies(sent map[string]time.Time) (lat []time.Duration, missing int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, t0 := range sent {
		if t1, ok := a.seen[id]; ok {
			lat = append(lat, t1.Sub(t0))
		} else {
			missing++
		}
	}
	return lat, missing
}

// ConsumeKafka reads topic from its start in the background until the
// test ends, noting the id each record carries in header idHeader.
func ConsumeKafka(t testing.TB, addr, topic, idHeader string) *Arrivals {
	t.Helper()
	a := NewArrivals()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ids []string
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			ids = ids[:0]
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == idHeader {
						ids = append(ids, string(h.Value))
					}
				}
			})
			a.Note(now, ids...)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return a
}
