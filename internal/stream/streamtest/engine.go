package streamtest

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/stream"
)

// Engine is one connector of company C1, project P1 run by the delivery
// engine (FastOptions) over the real embedded store, for a destination's
// through-the-engine test. It remembers the ids it appended, in order.
type Engine struct {
	t         testing.TB
	Store     store.Store
	Manager   *stream.Manager
	Connector stream.View
	want      []string
}

// StartEngine starts the manager with dest registered as typ and creates
// one connector with config, after appending five events that, being older
// than the connector, must never be delivered. Everything stops when the
// test ends.
func StartEngine(t testing.TB, typ string, dest stream.Destination, config json.RawMessage) *Engine {
	t.Helper()
	ctx := context.Background()
	st := OpenStore(t)
	if err := st.Append(ctx, Events("C1", "P1", "old", 5)); err != nil {
		t.Fatal(err)
	}
	m, err := stream.New(FastOptions(st, map[string]stream.Destination{typ: dest}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", ProjectID: "P1", Name: "e2e", Type: typ, Config: config})
	if err != nil {
		t.Fatalf("create connector: %v", err)
	}
	return &Engine{t: t, Store: st, Manager: m, Connector: v}
}

// AppendWave appends n events with ids prefix-000000… in small appends, as
// ingest does them, notifying the manager after each.
func (e *Engine) AppendWave(prefix string, n int) {
	e.t.Helper()
	evs := Events("C1", "P1", prefix, n)
	for i := 0; i < n; i += 7 {
		if err := e.Store.Append(context.Background(), evs[i:min(i+7, n)]); err != nil {
			e.t.Fatal(err)
		}
		e.Manager.Notify()
	}
	e.want = append(e.want, IDs(evs)...)
}

// Want is every id appended so far, in append order.
func (e *Engine) Want() []string { return e.want }

// Health is the connector's health now.
func (e *Engine) Health() stream.Health {
	e.t.Helper()
	h, err := e.Manager.Health(context.Background(), "C1", e.Connector.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// WaitDelivered waits until the engine counts every appended event as
// delivered.
func (e *Engine) WaitDelivered(timeout time.Duration, what string) {
	e.t.Helper()
	Eventually(e.t, timeout, what, func() bool { return e.Health().Delivered == uint64(len(e.want)) })
}

// WaitFailures waits until more than after attempts have failed.
func (e *Engine) WaitFailures(timeout time.Duration, after uint64, what string) {
	e.t.Helper()
	Eventually(e.t, timeout, what, func() bool { return e.Health().FailedAttempts > after })
}

// Deliver retries a batch as the delivery engine does: write, and on
// failure back off, reconnect and write again, until the sink acknowledges
// it or the deadline passes. It returns how many writes it took.
func Deliver(t testing.TB, s stream.Sink, b stream.Batch, deadline time.Duration) (attempts int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		attempts++
		err := s.Write(ctx, b)
		if err == nil {
			return attempts
		}
		if ctx.Err() != nil {
			t.Fatalf("batch starting %s not delivered after %d attempts: %v", b.Events[0].ID, attempts, err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 400*time.Millisecond)
		if err := s.Connect(ctx); err != nil {
			t.Logf("reconnect: %v", err)
		}
	}
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago for
// network "tcp" or "udp". Someone else may take it before the caller binds
// it: callers retry with another.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
