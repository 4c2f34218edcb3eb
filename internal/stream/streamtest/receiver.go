package streamtest

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/stream"
)

// Outage is how a Receiver misbehaves.
type Outage int

const (
	Up        Outage = iota
	Status500        // answer 500 without taking the batch
	CloseConn        // close the connection without an answer
	// LoseAnswer takes the batch (its ids are recorded) and then closes
	// the connection without an answer: the sender must retry, so the
	// batch arrives again (at least once).
	LoseAnswer
)

// Receiver is an HTTP destination for tests: it checks each request's wire
// format with Decode and records the event ids of the requests it accepts.
// During a Status500 or CloseConn outage it takes nothing, so an
// exactly-once check is exact; LoseAnswer makes repeats.
type Receiver struct {
	// Decode checks one request and returns the event ids it carries, in
	// order. An error fails the request with 400 and is kept for Errors.
	Decode func(r *http.Request, body []byte) ([]string, error)
	// Status answers accepted requests; 0 means 200.
	Status int
	// Reply is the body of accepted requests; empty means {}.
	Reply string

	mu       sync.Mutex
	outage   Outage
	ids      []string
	failed   int
	accepted int
	errs     []error
}

func (rv *Receiver) SetOutage(o Outage) {
	rv.mu.Lock()
	rv.outage = o
	rv.mu.Unlock()
}

func (rv *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	rv.mu.Lock()
	outage := rv.outage
	if outage != Up {
		rv.failed++
	}
	rv.mu.Unlock()
	switch outage {
	case Status500:
		http.Error(w, "injected outage", http.StatusInternalServerError)
		return
	case CloseConn:
		dropConnection(w)
		return
	}
	ids, err := rv.Decode(r, body)
	if err != nil {
		rv.mu.Lock()
		rv.errs = append(rv.errs, err)
		rv.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rv.mu.Lock()
	rv.ids = append(rv.ids, ids...)
	rv.accepted++
	rv.mu.Unlock()
	if outage == LoseAnswer {
		dropConnection(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(cmp(rv.Status, http.StatusOK))
	io.WriteString(w, cmpStr(rv.Reply, "{}"))
}

// dropConnection ends the exchange without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2: abort the stream
}

func cmp(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Count is how many ids were accepted so far.
func (rv *Receiver) Count() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.ids)
}

// IDs returns the ids accepted so far, in arrival order.
func (rv *Receiver) IDs() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.ids)
}

// Failed counts requests refused by an outage.
func (rv *Receiver) Failed() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.failed
}

// Errors returns the wire-format errors Decode reported.
func (rv *Receiver) Errors() []error {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.errs)
}

// Eventually polls cond every 5 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// OpenStore opens the real embedded store in a temporary directory, closed
// when the test ends.
func OpenStore(t testing.TB) store.Store {
	t.Helper()
	st, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open embedded store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// FastOptions are manager options with retry and breaker timings short
// enough for tests.
func FastOptions(st store.Store, dests map[string]stream.Destination) stream.Options {
	return stream.Options{
		Store:           st,
		State:           stream.NewMemState(),
		Destinations:    dests,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		PollInterval:    20 * time.Millisecond,
		BatchMaxEvents:  20,
		BatchMaxWait:    5 * time.Millisecond,
		WriteTimeout:    2 * time.Second,
		RetryMin:        5 * time.Millisecond,
		RetryMax:        40 * time.Millisecond,
		BreakerFailures: 3,
		BreakerCooldown: 40 * time.Millisecond,
	}
}

// Exercise drives one destination end to end through the engine: events
// before, during and after two injected outages (500s, then dropped
// connections) must all arrive exactly once, in order, in the format Decode
// checks. It returns the events appended.
func Exercise(t *testing.T, typ string, dest stream.Destination, config json.RawMessage, rv *Receiver) []string {
	t.Helper()
	e := StartEngine(t, typ, dest, config)
	waitAll := func() {
		t.Helper()
		Eventually(t, 10*time.Second, fmt.Sprintf("%d events at the receiver", len(e.Want())), func() bool {
			return len(rv.IDs()) >= len(e.Want())
		})
	}
	e.AppendWave("a", 60)
	waitAll()

	rv.SetOutage(Status500)
	e.AppendWave("b", 45)
	Eventually(t, 5*time.Second, "failed attempts during the 500 outage", func() bool { return rv.Failed() >= 3 })
	rv.SetOutage(CloseConn)
	failed := rv.Failed()
	e.AppendWave("c", 45)
	Eventually(t, 5*time.Second, "failed attempts while connections drop", func() bool { return rv.Failed() >= failed+3 })
	rv.SetOutage(Up)
	e.AppendWave("d", 50)
	waitAll()
	// Let any stray duplicate arrive before comparing.
	time.Sleep(50 * time.Millisecond)

	if errs := rv.Errors(); len(errs) > 0 {
		t.Fatalf("receiver refused the wire format: %v", errs[0])
	}
	want := e.Want()
	got := rv.IDs()
	if !slices.Equal(got, want) {
		t.Fatalf("receiver got %d ids, want %d exactly once in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
	if h := e.Health(); h.Delivered != uint64(len(want)) || h.FailedAttempts < 6 || h.State != stream.StateActive || h.LastError == "" {
		t.Fatalf("health after the outages: %+v", h)
	}
	return want
}
