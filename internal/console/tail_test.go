package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

func TestTailSendsEachNewMatchOnceInIngestOrder(t *testing.T) {
	e := newEnv(t, envConfig{tailPoll: 20 * time.Millisecond, heartbeat: time.Hour})
	now := time.Now().UTC()
	// Already stored when the tail starts: never sent.
	e.ingest(client.Record{ID: "old-1", Action: "LoginFailed", Type: "warn", Occurred: now})

	tl := e.openTail(`{"actions":["LoginFailed"],"tenants":["t1"]}`)
	if tl.resp.StatusCode != http.StatusOK {
		t.Fatalf("tail answered %d", tl.resp.StatusCode)
	}
	if ct := tl.resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if m, ok := tl.next(5 * time.Second); !ok || m.event != "ready" {
		t.Fatalf("first message %+v, want ready", m)
	}

	// More matches than one store read of the tail holds, interleaved with
	// non-matches, and some stamped an hour in the past: a tail by time
	// would miss those.
	var want []string
	var batch []client.Record
	for i := range 1300 {
		r := client.Record{ID: fmt.Sprintf("ev-%04d", i), Action: "LoginSucceed", Type: "info", Tenants: []string{"t1"}, Occurred: now}
		switch {
		case i%3 == 0:
			r.Action, r.Type = "LoginFailed", "warn"
			if i%2 == 0 {
				r.Occurred = now.Add(-time.Hour)
			}
			want = append(want, r.ID)
		case i%3 == 1:
			r.Action, r.Tenants = "LoginFailed", []string{"t2"}
		}
		batch = append(batch, r)
	}
	e.ingest(batch[:700]...)
	e.ingest(batch[700:]...)
	// Another project's match is out of the key's scope for this tail.
	other, err := e.client().Projects().Create(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	e.ingest(client.Record{ID: "other-project", ProjectID: other.ID, Action: "LoginFailed", Type: "warn", Tenants: []string{"t1"}, Occurred: now})
	// Another company's event, even one naming the same project id, never
	// reaches this company's tail.
	if err := e.st.Append(context.Background(), []event.Event{{ID: "other-company", CompanyID: "Cother", ProjectID: e.creds.ProjectID,
		Level: event.LevelProject, Action: "LoginFailed", Type: "warn", Tenants: []string{"t1"}, Occurred: now.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	e.ingest(client.Record{ID: "last", Action: "LoginFailed", Type: "warn", Tenants: []string{"t1"}, Occurred: now})
	want = append(want, "last")

	var got []string
	seenIDs := map[string]bool{}
	for len(got) < len(want) {
		m, ok := tl.next(5 * time.Second)
		if !ok {
			t.Fatalf("tail stopped after %d of %d events", len(got), len(want))
		}
		if m.event != "audit" {
			t.Fatalf("unexpected message %+v", m)
		}
		var ev event.Event
		if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
			t.Fatalf("record %q: %v", m.data, err)
		}
		if seenIDs[ev.ID] {
			t.Fatalf("event %s sent twice", ev.ID)
		}
		seenIDs[ev.ID] = true
		if m.id != strconv.Itoa(len(got)+1) {
			t.Fatalf("message id %q, want %d", m.id, len(got)+1)
		}
		got = append(got, ev.ID)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %s, want %s (ingest order)", i, got[i], want[i])
		}
	}
	if m, ok := tl.next(200 * time.Millisecond); ok {
		t.Fatalf("extra message after the last match: %+v", m)
	}
}

func TestTailHeartbeatAndShutdown(t *testing.T) {
	e := newEnv(t, envConfig{tailPoll: 10 * time.Millisecond, heartbeat: 30 * time.Millisecond})
	tl := e.openTail(`{}`)
	var heartbeats int
	deadline := time.After(5 * time.Second)
	for heartbeats < 2 {
		select {
		case m, ok := <-tl.msgs:
			if !ok {
				t.Fatal("tail ended")
			}
			if m.event == "heartbeat" {
				heartbeats++
			}
		case <-deadline:
			t.Fatalf("%d heartbeats in 5 s", heartbeats)
		}
	}
	e.con.Close()
	m, ok := tl.next(5 * time.Second)
	if !ok || m.event != "end" {
		t.Fatalf("after Close: %+v, want end", m)
	}
	if _, ok := tl.next(5 * time.Second); ok {
		t.Fatal("the stream went on after end")
	}
}

func TestTailAndHistogramCountOnceAgainstTheSearchLimit(t *testing.T) {
	e := newEnv(t, envConfig{rateLimit: 3, tailPoll: 10 * time.Millisecond})
	if r := e.post("/v1/mgmt/audit/search", e.auth(), `{}`); r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	tl := e.openTail(`{}`)
	if tl.resp.StatusCode != 200 {
		t.Fatalf("tail: %d", tl.resp.StatusCode)
	}
	// A tail that has run a while has still taken one token only.
	time.Sleep(50 * time.Millisecond)
	if r := e.post("/v1/mgmt/audit/histogram", e.auth(), `{}`); r.status != 200 {
		t.Fatalf("histogram: %d %s", r.status, r.body)
	}
	r := e.post("/v1/mgmt/audit/histogram", e.auth(), `{}`)
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != "E130429" {
		t.Fatalf("fourth call: %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	tl2 := e.openTail(`{}`)
	if tl2.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("tail over the limit: %d", tl2.resp.StatusCode)
	}
	// The search route shares the same budget.
	if r := e.post("/v1/mgmt/audit/search", e.auth(), `{}`); r.status != http.StatusTooManyRequests {
		t.Fatalf("search after the console spent the budget: %d", r.status)
	}
}

// The console spends its tokens through the API's own helper, so it fails
// open as /search does when a shared limiter is down: the limit protects
// the service and guards no data.
func TestTailAndHistogramFailOpenAsSearchDoes(t *testing.T) {
	e := newEnv(t, envConfig{rateLimit: 1, limiterDown: true, tailPoll: 10 * time.Millisecond})
	for i := range 3 {
		for _, path := range []string{"/v1/mgmt/audit/search", "/v1/mgmt/audit/histogram"} {
			if r := e.post(path, e.auth(), `{}`); r.status != http.StatusOK {
				t.Fatalf("%s #%d with the limiter down: %d %s", path, i, r.status, r.body)
			}
		}
		if tl := e.openTail(`{}`); tl.resp.StatusCode != http.StatusOK {
			t.Fatalf("tail #%d with the limiter down: %d", i, tl.resp.StatusCode)
		}
	}
}

func TestTailAndHistogramRefuse(t *testing.T) {
	e := newEnv(t, envConfig{})
	for _, path := range []string{"/v1/mgmt/audit/tail", "/v1/mgmt/audit/histogram"} {
		for _, c := range []struct {
			name, auth, body string
			status           int
			code             string
		}{
			{"no key", "", `{}`, 401, "E011401"},
			{"wrong key", "Bearer " + e.creds.ProjectID + ":K00000000000000000000000000.nope", `{}`, 401, "E011401"},
			{"unknown project", "Bearer Pnope:" + e.creds.ManagementKey, `{}`, 404, "E011404"},
			{"malformed body", e.auth(), `{"actions":`, 400, "E011001"},
			{"bad type", e.auth(), `{"actions":"x"}`, 400, "E011004"},
			{"from beyond the window", e.auth(), fmt.Sprintf(`{"from":%d}`, time.Now().Add(-40*24*time.Hour).UnixMilli()), 400, "E011004"},
		} {
			r := e.post(path, c.auth, c.body)
			if r.status != c.status || r.errorCode(t) != c.code {
				t.Errorf("%s %s: %d %s, want %d %s", path, c.name, r.status, r.body, c.status, c.code)
			}
		}
	}
	r := e.post("/v1/mgmt/audit/histogram", e.auth(), `{"bucket":"week"}`)
	if r.status != 400 || r.errorCode(t) != "E011004" {
		t.Errorf("bucket week: %d %s", r.status, r.body)
	}
	// 7 days of minute bars would be 10,080 bars.
	r = e.post("/v1/mgmt/audit/histogram", e.auth(), fmt.Sprintf(`{"bucket":"minute","from":%d}`, time.Now().Add(-7*24*time.Hour).UnixMilli()))
	if r.status != 400 || r.errorCode(t) != "E011004" {
		t.Errorf("too many minute bars: %d %s", r.status, r.body)
	}
}

// typesHonoured reports whether the store narrows a search by query.Types.
func typesHonoured(t *testing.T, e *env) bool {
	t.Helper()
	q := query.Query{CompanyID: e.creds.CompanyID, ProjectID: e.creds.ProjectID, IncludeProject: true, IncludeCompany: true}
	all, err := e.st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	q.Types = []string{"error"}
	errs, err := e.st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return all.Total == 0 || errs.Total < all.Total
}

// A tail outlives the server's WriteTimeout (five minutes in `audittrail
// serve`), which is meant for ordinary requests.
func TestTailOutlivesTheServerWriteTimeout(t *testing.T) {
	e := newEnv(t, envConfig{tailPoll: 10 * time.Millisecond, heartbeat: 40 * time.Millisecond, writeTimeout: 200 * time.Millisecond})
	tl := e.openTail(`{}`)
	if m, ok := tl.next(5 * time.Second); !ok || m.event != "ready" {
		t.Fatalf("first message %+v", m)
	}
	time.Sleep(600 * time.Millisecond) // three write timeouts
	e.ingest(client.Record{ID: "late", Action: "LoginSucceed", Type: "info", Occurred: time.Now()})
	m, ok := tl.next(5 * time.Second)
	if !ok || m.event != "audit" {
		t.Fatalf("after the write timeout: %+v (open: %v)", m, ok)
	}
}
