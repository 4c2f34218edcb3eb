// Package e2e drives a destination end to end through the real server:
// servertest runs audittrail in-process, the test creates connectors
// through the HTTP API with the Go SDK, ingests over HTTP (project-level
// events of two projects and company-level events, in batches and through
// Descope's createEvent), takes the destination down and back while
// ingest goes on, and then checks what the destination holds against what
// the server stored.
//
// It is a separate package from streamtest because it imports the server,
// which imports every destination: a destination's own (internal) tests
// import streamtest, so streamtest must not import them back. Only
// external test packages (package syslog_test, …) import e2e.
package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/server/servertest"
)

// Run is one real server with two projects, and the events ingested into
// it so far.
type Run struct {
	t      *testing.T
	Inst   *servertest.Instance
	Client *client.Client // bootstrap admin key: every project
	// Projects are the bootstrap project and a second one made through
	// the API.
	Projects [2]string

	mu   sync.Mutex
	sent []string // ids in ingest (acknowledgement) order
	n    int      // events made so far, for ids and variety
	// from is the first connector's starting cursor (the store's head
	// when it was made): every later event of the company is for the
	// connectors. starts holds each connector's.
	from    uint64
	hasFrom bool
	starts  map[string]uint64
}

// Start runs the server (opts as servertest takes them) and creates the
// second project through the API.
func Start(t *testing.T, opts servertest.Options) *Run {
	t.Helper()
	inst := servertest.Start(t, opts)
	r := &Run{t: t, Inst: inst, Client: inst.Client(t)}
	p, err := r.Client.Projects().Create(context.Background(), "second")
	if err != nil {
		t.Fatalf("create the second project: %v", err)
	}
	r.Projects = [2]string{inst.Creds.ProjectID, p.ID}
	return r
}

// record makes the i-th event of the run: three of four are project-level
// (two of them in the bootstrap project), one company-level; types, actions
// and days vary so that severities, subjects, keys and S3 day directories
// all differ.
func (r *Run) record(prefix string, i int) client.Record {
	rec := client.Record{
		ID:       fmt.Sprintf("%s-%06d", prefix, i),
		Level:    client.LevelProject,
		UserID:   fmt.Sprintf("U%d", i%7),
		ActorID:  "e2e",
		Action:   "LoginSucceed",
		Type:     []string{client.TypeInfo, client.TypeWarn, client.TypeError}[i%3],
		Occurred: time.Now().UTC().Add(-time.Duration(i%2) * 24 * time.Hour),
		Method:   "otp",
		LoginIDs: []string{fmt.Sprintf("user%d@example.com", i%7)},
		Tenants:  []string{"t1"},
		Data:     map[string]any{"n": i, "note": `quote " and ] and \ survive`},
	}
	switch i % 4 {
	case 0, 1:
		rec.ProjectID = r.Projects[0]
	case 2:
		rec.ProjectID, rec.Action = r.Projects[1], "UserModified"
	case 3:
		rec.Level, rec.Action = client.LevelCompany, "ProjectCreated"
	}
	return rec
}

// Records makes n more events as the run makes them, without sending
// them, for tests that ingest on their own (measurements).
func (r *Run) Records(prefix string, n int) []client.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs := make([]client.Record, n)
	for j := range recs {
		recs[j] = r.record(prefix, r.n)
		r.n++
	}
	return recs
}

// send ingests the next n events in one request (a batch, or Descope's
// createEvent for a lone event of the bootstrap project) and records their
// ids once the server acknowledged them.
func (r *Run) send(ctx context.Context, prefix string, n int) error {
	recs := r.Records(prefix, n)
	var ids []string
	if n == 1 && recs[0].ProjectID == r.Projects[0] {
		rec := recs[0]
		_, err := r.Client.Audit().CreateEvent(ctx, client.CreateEventOptions{
			ID: rec.ID, UserID: rec.UserID, Action: rec.Action, Type: rec.Type, ActorID: rec.ActorID,
			TenantID: rec.Tenants[0], Data: rec.Data, Occurred: rec.Occurred, Method: rec.Method, LoginIDs: rec.LoginIDs,
		})
		if err != nil {
			return fmt.Errorf("createEvent %s: %w", rec.ID, err)
		}
		ids = []string{rec.ID}
	} else {
		var err error
		if ids, err = r.Client.Audit().Ingest(ctx, recs); err != nil {
			return fmt.Errorf("ingest %d events from %s: %w", n, recs[0].ID, err)
		}
	}
	r.mu.Lock()
	r.sent = append(r.sent, ids...)
	r.mu.Unlock()
	return nil
}

// Ingest sends n events, in requests of 1 to 9 events.
func (r *Run) Ingest(prefix string, n int) {
	r.t.Helper()
	for i := 0; i < n; {
		size := min(1+i%9, n-i)
		if err := r.send(context.Background(), prefix, size); err != nil {
			r.t.Fatal(err)
		}
		i += size
	}
}

// Ingesting sends events in the background, one request every few
// milliseconds, until the returned stop is called; stop returns once the
// last request was answered (a request is never cut short: the server
// might store what the test would not count).
func (r *Run) Ingesting(prefix string) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			if err := r.send(context.Background(), prefix, 1+i%9); err != nil {
				r.t.Errorf("ingest while delivering: %v", err)
				return
			}
			select {
			case <-quit:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return sync.OnceFunc(func() { close(quit); <-done })
}

// Count is how many events the server acknowledged so far.
func (r *Run) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

// Sent returns what the first connector must hold: every event of the
// company the store holds past its start, in Seq (ingest) order, as
// stored. Besides the run's own events that includes the ones the server
// records itself (an admin action such as creating a key or a connector is
// a company-level event); SentTo is what a later connector must hold. It fails the test if an acknowledged
// event is missing.
func (r *Run) Sent() []event.Event {
	r.t.Helper()
	ctx := context.Background()
	r.mu.Lock()
	acked, after := append([]string(nil), r.sent...), r.from
	r.mu.Unlock()
	st, company := r.Inst.Components.Store, r.Inst.Creds.CompanyID
	var out []event.Event
	for {
		page, err := st.ReadFrom(ctx, after, 1000)
		if err != nil {
			r.t.Fatalf("read the store after Seq %d: %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.CompanyID == company {
				out = append(out, e)
			}
		}
		after = page[len(page)-1].Seq
	}
	stored := make(map[string]bool, len(out))
	for _, e := range out {
		stored[e.ID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			r.t.Fatalf("event %s was acknowledged but the store does not hold it (past the connectors' start)", id)
		}
	}
	if extra := len(out) - len(acked); extra > 0 {
		r.t.Logf("%d events recorded by the server itself besides the %d ingested", extra, len(acked))
	}
	return out
}

// SentTo is Sent for the connector id: the events past its own start.
// Connectors made one after the other start at different points, if only
// because creating one records a company-level ConnectorCreated event,
// which the connectors that exist already (and the new one) deliver.
func (r *Run) SentTo(id string) []event.Event {
	r.t.Helper()
	r.mu.Lock()
	start, ok := r.starts[id]
	r.mu.Unlock()
	if !ok {
		r.t.Fatalf("connector %s was not made through the run", id)
	}
	return r.SentAfter(start)
}

// SentAfter is Sent without the events up to Seq seq.
func (r *Run) SentAfter(seq uint64) []event.Event {
	r.t.Helper()
	all := r.Sent()
	for i, e := range all {
		if e.Seq > seq {
			return all[i:]
		}
	}
	return nil
}

// started notes where a new connector starts: the cursor it was created
// with, the store's head before its own ConnectorCreated event.
func (r *Run) started(id string, cursor uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts == nil {
		r.starts = map[string]uint64{}
	}
	r.starts[id] = cursor
	if !r.hasFrom {
		r.from, r.hasFrom = cursor, true
	}
}

// WaitDelivered waits until each connector caught up with every
// acknowledged event: its cursor reached the store's head as it was when
// called, nothing failing. (A project's connector skips the events of
// other projects, so the count it delivered says less.)
func (r *Run) WaitDelivered(timeout time.Duration, ids ...string) {
	r.t.Helper()
	var head uint64
	for _, id := range ids {
		head = max(head, r.Health(id).Head)
	}
	for _, id := range ids {
		r.waitFor(timeout, fmt.Sprintf("connector %s to deliver up to Seq %d", id, head), func() bool {
			h := r.Health(id)
			return h.Cursor >= head
		})
	}
}

func (r *Run) waitFor(timeout time.Duration, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %s waiting for %s\nserver logs (tail):\n%s", timeout, what, tail(r.Inst.Logs(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Outage takes a destination down and brings it back.
type Outage struct {
	Name     string
	Down, Up func()
}

// Exercise ingests and delivers through each outage in turn: ingest runs
// in the background throughout; once the connectors deliver, the
// destination goes down; it comes back after every connector saw a failed
// attempt and more events were acknowledged meanwhile; then everything
// acknowledged must be delivered. Ingest is checked to stay available all
// along (a failed request fails the test).
func (r *Run) Exercise(ids []string, outages ...Outage) {
	r.t.Helper()
	r.Ingest("first", 40)
	r.WaitDelivered(60*time.Second, ids...)
	for i, o := range outages {
		r.through(ids, fmt.Sprintf("o%d", i), o)
	}
	r.Ingest("last", 30)
	r.WaitDelivered(60*time.Second, ids...)
}

func (r *Run) through(ids []string, prefix string, o Outage) {
	r.t.Helper()
	stop := r.Ingesting(prefix)
	defer stop()
	// Mid-stream: delivery is under way when the destination goes.
	base := make([]uint64, len(ids))
	for j, id := range ids {
		base[j] = r.Health(id).Delivered
	}
	for j, id := range ids {
		r.waitFor(30*time.Second, o.Name+": delivery under way before the outage", func() bool {
			return r.Health(id).Delivered >= base[j]+20
		})
	}
	failed := make([]uint64, len(ids))
	for j, id := range ids {
		failed[j] = r.Health(id).FailedAttempts
	}
	o.Down()
	atDown := r.Count()
	for j, id := range ids {
		r.waitFor(30*time.Second, o.Name+": a failed attempt on "+id, func() bool {
			return r.Health(id).FailedAttempts > failed[j]
		})
	}
	r.waitFor(30*time.Second, o.Name+": ingest goes on while the destination is down", func() bool {
		return r.Count() >= atDown+20
	})
	o.Up()
	atUp := r.Count()
	r.waitFor(30*time.Second, o.Name+": ingest after the destination is back", func() bool {
		return r.Count() >= atUp+20
	})
	stop()
	r.WaitDelivered(90*time.Second, ids...)
	r.t.Logf("%s: %d events acknowledged so far", o.Name, r.Count())
}
