package streamhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/webhook"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// record is what the tests read of a delivered event.
type record struct {
	ID        string         `json:"id"`
	Action    string         `json:"action"`
	ProjectID string         `json:"projectId"`
	UserID    string         `json:"userId"`
	LoginIDs  []string       `json:"externalIds"`
	Tenants   []string       `json:"tenants"`
	Data      map[string]any `json:"data"`
}

// hook is a webhook receiver that checks the bearer token and the HMAC
// signature of every request and keeps what it accepted.
type hook struct {
	*streamtest.Receiver
	srv *httptest.Server

	mu      sync.Mutex
	records []record
}

const (
	bearer = "tok-123"
	secret = "hmac-456"
)

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.Receiver = &streamtest.Receiver{Decode: func(r *http.Request, body []byte) ([]string, error) {
		if got := r.Header.Get("Authorization"); got != "Bearer "+bearer {
			return nil, fmt.Errorf("authorization %q", got)
		}
		if got, want := r.Header.Get(webhook.SignatureHeader), webhook.Sign(secret, body); got != want {
			return nil, fmt.Errorf("signature %q, want %q", got, want)
		}
		var b struct {
			Audits []record `json:"audits"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, err
		}
		ids := make([]string, len(b.Audits))
		for i, a := range b.Audits {
			ids[i] = a.ID
		}
		h.mu.Lock()
		h.records = append(h.records, b.Audits...)
		h.mu.Unlock()
		return ids, nil
	}}
	h.srv = httptest.NewServer(h.Receiver)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) got() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}

func (h *hook) config() map[string]any {
	return map[string]any{"url": h.srv.URL, "authentication": map[string]any{"bearerToken": bearer}, "hmacSecret": secret}
}

func ingest(t *testing.T, c *client.Client, recs ...client.Record) []string {
	t.Helper()
	ids, err := c.Audit().Ingest(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkConnectorEvent fails unless rec is the company-level event action
// of the connector id.
func checkConnectorEvent(t *testing.T, rec record, action, id string) {
	t.Helper()
	if rec.Action != action || rec.Data["connectorId"] != id {
		t.Fatalf("got %s of %v, want %s of %s", rec.Action, rec.Data["connectorId"], action, id)
	}
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	streamtest.Eventually(t, 20*time.Second, what, cond)
}

func apiStatus(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// TestConnectorLifecycle drives every route through the SDK against the
// real server: filters and PII masking shape what arrives, secrets never
// come back and survive an update that echoes the redacted view, pause
// holds events back and resume delivers them, test and replay reach the
// destination, health counts, delete forgets.
func TestConnectorLifecycle(t *testing.T) {
	h := newHook(t)
	inst := servertest.Start(t, servertest.Options{})
	c := inst.ClientFor(t, "", inst.Creds.ManagementKey) // company-wide
	ctx := context.Background()
	project := inst.Creds.ProjectID
	events := inst.Client(t) // ingest names the project

	v, err := c.Connectors().Create(ctx, client.ConnectorOptions{Name: "siem", Type: client.ConnectorWebhook, MaskPII: true, Config: h.config(),
		Filters: []client.ConnectorFilter{
			{FilterType: "actions", Operator: "includes", Values: []string{"LoginSucceed", "ProjectCreated"}},
			{FilterType: "tenants", Operator: "excludes", Values: []string{"t9"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if v.ProjectID != "" || v.Level != client.ConnectorLevelBoth || v.CompanyID != inst.Creds.CompanyID || v.Health.State != client.ConnectorActive {
		t.Fatalf("created %+v", v)
	}
	if raw := string(v.Config); strings.Contains(raw, bearer) || strings.Contains(raw, secret) || !strings.Contains(raw, h.srv.URL) {
		t.Fatalf("config shown: %s", raw)
	}

	ids := ingest(t, events,
		client.Record{ProjectID: project, Action: "LoginSucceed", ActorID: "a", UserID: "u1", LoginIDs: []string{"ann@example.com"}, Tenants: []string{"t1"},
			Data: map[string]any{"email": "ann@example.com", "ip": "203.0.113.7"}},
		client.Record{ProjectID: project, Action: "LoginSucceed", ActorID: "a", Tenants: []string{"t9"}}, // tenant excluded
		client.Record{ProjectID: project, Action: "UserCreated", ActorID: "a", Tenants: []string{"t1"}},  // action excluded
		client.Record{Level: client.LevelCompany, Action: "ProjectCreated", ActorID: "admin"},            // company level
	)
	wait(t, "the two matching events", func() bool { return len(h.IDs()) >= 2 })
	time.Sleep(100 * time.Millisecond) // anything filtered out would arrive meanwhile
	if got := h.IDs(); !slices.Equal(got, []string{ids[0], ids[3]}) {
		t.Fatalf("delivered %v, want %v", got, []string{ids[0], ids[3]})
	}
	first := h.got()[0]
	if slices.Contains(first.LoginIDs, "ann@example.com") || first.Data["email"] == "ann@example.com" || first.Data["ip"] != "203.0.113.7" || first.ProjectID != project {
		t.Fatalf("PII not masked (or too much masked): %+v", first)
	}

	// Update echoing the redacted config keeps the secrets (the receiver
	// checks both) and applies the new filter.
	cur, err := c.Connectors().Get(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	upd, err := c.Connectors().Update(ctx, v.ID, client.ConnectorOptions{Name: "siem2", Config: cur.Config,
		Filters: []client.ConnectorFilter{{FilterType: "actions", Operator: "excludes", Values: []string{"Noise"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Name != "siem2" || upd.MaskPII || upd.Type != client.ConnectorWebhook || !upd.Created.Equal(v.Created) {
		t.Fatalf("updated %+v", upd)
	}
	ids2 := ingest(t, events, client.Record{ProjectID: project, Action: "UserCreated", ActorID: "a", LoginIDs: []string{"bob@example.com"}},
		client.Record{ProjectID: project, Action: "Noise", ActorID: "a"})
	// The connector now passes company-level events too, so the update's
	// own ConnectorModified (recorded after it) arrives first.
	wait(t, "the event after the update", func() bool { return len(h.IDs()) >= 4 })
	if errs := h.Errors(); len(errs) > 0 {
		t.Fatalf("receiver refused a request after the update: %v", errs)
	}
	modified := h.got()[2]
	checkConnectorEvent(t, modified, "ConnectorModified", v.ID)
	if changed := fmt.Sprint(modified.Data["changed"]); changed != "[name filters maskPII]" {
		t.Fatalf("ConnectorModified changed %s", changed)
	}
	if got := h.got()[3]; got.ID != ids2[0] || !slices.Contains(got.LoginIDs, "bob@example.com") {
		t.Fatalf("after update (no masking) got %+v", got)
	}

	// Pause holds events back; resume delivers them.
	p, err := c.Connectors().Pause(ctx, v.ID)
	if err != nil || p.Health.State != client.ConnectorPaused {
		t.Fatalf("pause: %+v %v", p.Health, err)
	}
	ids3 := ingest(t, events, client.Record{ProjectID: project, Action: "UserDeleted", ActorID: "a"})
	time.Sleep(300 * time.Millisecond)
	if n := len(h.IDs()); n != 4 {
		t.Fatalf("a paused connector delivered: %d events", n)
	}
	if hl, err := c.Connectors().Health(ctx, v.ID); err != nil || hl.State != client.ConnectorPaused || hl.LagEvents == 0 {
		t.Fatalf("health while paused: %+v %v", hl, err)
	}
	if r, err := c.Connectors().Resume(ctx, v.ID); err != nil || r.Health.State != client.ConnectorActive {
		t.Fatalf("resume: %+v %v", r, err)
	}
	// Held: ConnectorPaused and UserDeleted; then ConnectorResumed.
	wait(t, "the held events after resume", func() bool { return len(h.IDs()) >= 7 })
	checkConnectorEvent(t, h.got()[4], "ConnectorPaused", v.ID)
	if got := h.IDs()[5]; got != ids3[0] {
		t.Fatalf("after resume got %s, want %s", got, ids3[0])
	}
	checkConnectorEvent(t, h.got()[6], "ConnectorResumed", v.ID)

	// Test sends one synthetic event outside the cursor.
	if err := c.Connectors().Test(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if got := h.got(); len(got) < 8 || got[7].Action != "AuditStreamTest" {
		t.Fatalf("test event: %+v", got[len(got)-1])
	}
	// Then the ConnectorTested the call recorded, through the stream.
	wait(t, "ConnectorTested", func() bool { return len(h.IDs()) >= 9 })
	tested := h.got()[8]
	checkConnectorEvent(t, tested, "ConnectorTested", v.ID)
	if tested.Data["ok"] != true {
		t.Fatalf("ConnectorTested %+v", tested)
	}
	h.SetOutage(streamtest.Status500)
	err = c.Connectors().Test(ctx, v.ID)
	var apiErr *client.Error
	if !errors.Is(err, client.ErrDestinationFailed) || !errors.As(err, &apiErr) || apiErr.ErrorCode != "E013502" || !strings.Contains(apiErr.Message, "500") {
		t.Fatalf("test against a failing destination: %v", err)
	}
	h.SetOutage(streamtest.Up)
	// The failed test is recorded too, delivered once the destination is back.
	wait(t, "the failed test's ConnectorTested", func() bool { return len(h.IDs()) >= 10 })
	tested = h.got()[9]
	checkConnectorEvent(t, tested, "ConnectorTested", v.ID)
	if tested.Data["ok"] != false {
		t.Fatalf("failed ConnectorTested %+v", tested)
	}

	// Replay from before the first event delivers everything matching again.
	before := len(h.IDs())
	if _, err := c.Connectors().Replay(ctx, v.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The current filter passes everything but Noise, unmasked, in the
	// order stored: ConnectorCreated (filtered out when it was new), the
	// four first events, ConnectorModified, UserCreated, ConnectorPaused,
	// UserDeleted, ConnectorResumed, the two ConnectorTested; then the
	// ConnectorReplayed of this call.
	createdEvents, err := events.Audit().Search(ctx, client.SearchOptions{Actions: []string{"ConnectorCreated"}, Levels: []client.Level{client.LevelCompany}})
	if err != nil || len(createdEvents) != 1 {
		t.Fatalf("stored ConnectorCreated: %+v %v", createdEvents, err)
	}
	checkConnectorEvent(t, record{Action: createdEvents[0].Action, Data: createdEvents[0].Data}, "ConnectorCreated", v.ID)
	seen := h.IDs()
	want := slices.Concat([]string{createdEvents[0].ID}, ids, []string{seen[2], ids2[0], seen[4], ids3[0], seen[6], seen[8], seen[9]})
	wait(t, "the replayed events", func() bool { return len(h.IDs()) >= before+len(want)+1 })
	if got := h.IDs()[before : before+len(want)]; !slices.Equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	replayed := h.got()[before+len(want)]
	checkConnectorEvent(t, replayed, "ConnectorReplayed", v.ID)
	// The hook answers before the connector saves its cursor and counts
	// the batch delivered: wait for the cursor to reach the head.
	var hl client.ConnectorHealth
	wait(t, "the cursor after the replay", func() bool {
		hl, err = c.Connectors().Health(ctx, v.ID)
		return err != nil || hl.Cursor == hl.Head
	})
	// Delivered before the replay: 9 events (the synthetic test event is
	// not counted), then the replayed ones and ConnectorReplayed.
	if err != nil || hl.Delivered != uint64(9+len(want)+1) || hl.State != client.ConnectorActive || hl.Cursor != hl.Head {
		t.Fatalf("health after replay: %+v %v", hl, err)
	}

	if err := c.Connectors().Delete(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connectors().Get(ctx, v.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if list, err := c.Connectors().List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("list after delete: %v %v", list, err)
	}
}

// TestConnectorIsolation: another company never sees or touches a
// connector; a key limited to a project sees and makes only that
// project's connectors.
func TestConnectorIsolation(t *testing.T) {
	h := newHook(t)
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	admin := inst.ClientFor(t, "", inst.Creds.ManagementKey)
	companyWide, err := admin.Connectors().Create(ctx, client.ConnectorOptions{Name: "all", Type: client.ConnectorWebhook, Config: h.config()})
	if err != nil {
		t.Fatal(err)
	}
	p1 := inst.Creds.ProjectID
	inP1, err := admin.Connectors().Create(ctx, client.ConnectorOptions{Name: "p1", Type: client.ConnectorWebhook, Config: h.config(), ProjectID: p1})
	if err != nil || inP1.ProjectID != p1 || inP1.Level != client.ConnectorLevelProject {
		t.Fatalf("project connector: %+v %v", inP1, err)
	}

	// Another company: nothing is visible, nothing can be touched.
	other := inst.NewCompany(t)
	oc := inst.ClientFor(t, other.ProjectID, other.ManagementKey)
	if list, err := oc.Connectors().List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("other company lists %v %v", list, err)
	}
	for name, call := range map[string]func(id string) error{
		"get": func(id string) error { _, err := oc.Connectors().Get(ctx, id); return err },
		"update": func(id string) error {
			_, err := oc.Connectors().Update(ctx, id, client.ConnectorOptions{Name: "x"})
			return err
		},
		"pause":  func(id string) error { _, err := oc.Connectors().Pause(ctx, id); return err },
		"resume": func(id string) error { _, err := oc.Connectors().Resume(ctx, id); return err },
		"test":   func(id string) error { return oc.Connectors().Test(ctx, id) },
		"replay": func(id string) error { _, err := oc.Connectors().Replay(ctx, id, time.Now()); return err },
		"health": func(id string) error { _, err := oc.Connectors().Health(ctx, id); return err },
		"delete": func(id string) error { return oc.Connectors().Delete(ctx, id) },
	} {
		for _, id := range []string{companyWide.ID, inP1.ID} {
			if err := call(id); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("other company %s %s: %v, want 404", name, id, err)
			}
		}
	}
	// Only this company's ConnectorCreated events reach the company-wide
	// connector (its own comes after its cursor too); the other company's
	// test calls reached nothing.
	wait(t, "the two ConnectorCreated", func() bool { return len(h.IDs()) >= 2 })
	time.Sleep(100 * time.Millisecond) // anything else would arrive meanwhile
	if got := h.got(); len(got) != 2 {
		t.Fatalf("the other company's test call reached the destination: %+v", got)
	}
	checkConnectorEvent(t, h.got()[0], "ConnectorCreated", companyWide.ID)
	checkConnectorEvent(t, h.got()[1], "ConnectorCreated", inP1.ID)

	// A writer key limited to a second project.
	p2 := inst.NewProject(t, "second")
	pk := inst.NewKey(t, tenancy.RoleWriter, p2)
	pc := inst.ClientFor(t, p2, pk)
	mine, err := pc.Connectors().Create(ctx, client.ConnectorOptions{Name: "mine", Type: client.ConnectorWebhook, Config: h.config()})
	if err != nil || mine.ProjectID != p2 || mine.Level != client.ConnectorLevelProject {
		t.Fatalf("project key create: %+v %v", mine, err)
	}
	if list, err := pc.Connectors().List(ctx); err != nil || len(list) != 1 || list[0].ID != mine.ID {
		t.Fatalf("project key lists %v %v", list, err)
	}
	for _, id := range []string{companyWide.ID, inP1.ID} {
		if _, err := pc.Connectors().Get(ctx, id); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("project key reads %s: %v", id, err)
		}
		if err := pc.Connectors().Delete(ctx, id); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("project key deletes %s: %v", id, err)
		}
	}
	for name, opts := range map[string]client.ConnectorOptions{
		"company level":     {Name: "x", Type: client.ConnectorWebhook, Config: h.config(), Level: client.ConnectorLevelCompany},
		"another project":   {Name: "x", Type: client.ConnectorWebhook, Config: h.config(), ProjectID: p1},
		"both levels":       {Name: "x", Type: client.ConnectorWebhook, Config: h.config(), Level: client.ConnectorLevelBoth},
		"move to project 1": {Name: "x", ProjectID: p1},
	} {
		var err error
		if name == "move to project 1" {
			_, err = pc.Connectors().Update(ctx, mine.ID, opts)
		} else {
			_, err = pc.Connectors().Create(ctx, opts)
		}
		if !errors.Is(err, client.ErrForbidden) {
			t.Errorf("project key, %s: %v, want 403", name, err)
		}
	}
	// The admin sees all three.
	if list, err := admin.Connectors().List(ctx); err != nil || len(list) != 3 {
		t.Fatalf("admin lists %d: %v", len(list), err)
	}

	// Descope's createAuditWebhook with the project key: the project's
	// connector; the same name again updates it.
	id1, err := pc.Connectors().SetAuditWebhook(ctx, client.AuditWebhook{Name: "descope", URL: h.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := pc.Connectors().SetAuditWebhook(ctx, client.AuditWebhook{Name: "descope", URL: h.srv.URL, Description: "again"})
	if err != nil || id2 != id1 {
		t.Fatalf("set twice: %q %q %v", id1, id2, err)
	}
	got, err := pc.Connectors().Get(ctx, id1)
	if err != nil || got.ProjectID != p2 || got.Description != "again" || got.Type != client.ConnectorWebhook {
		t.Fatalf("Descope webhook: %+v %v", got, err)
	}
	// A reader key may not manage connectors.
	rc := inst.ClientFor(t, p2, inst.NewKey(t, tenancy.RoleReader, p2))
	if _, err := rc.Connectors().List(ctx); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("reader lists: %v", err)
	}
}

// TestConnectorErrors: bad bodies answer 400 naming the field, in the
// API's error format.
func TestConnectorErrors(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	c := inst.Client(t)
	for _, tc := range []struct {
		name string
		opts client.ConnectorOptions
		want string
	}{
		{"unknown type", client.ConnectorOptions{Name: "x", Type: "pigeon", Config: map[string]any{}}, "type: unknown destination"},
		{"missing name", client.ConnectorOptions{Type: "webhook", Config: map[string]any{"url": "https://x.example"}}, "name: is required"},
		{"bad url", client.ConnectorOptions{Name: "x", Type: "webhook", Config: map[string]any{"url": "ftp://x"}}, "config.url"},
		{"bad level", client.ConnectorOptions{Name: "x", Type: "webhook", Level: "galaxy", Config: map[string]any{"url": "https://x.example"}}, "level"},
		{"bad filter", client.ConnectorOptions{Name: "x", Type: "webhook", Config: map[string]any{"url": "https://x.example"},
			Filters: []client.ConnectorFilter{{FilterType: "actions", Operator: "maybe", Values: []string{"A"}}}}, "filters[0].operator"},
		{"unknown project", client.ConnectorOptions{Name: "x", Type: "webhook", ProjectID: "Pnope", Config: map[string]any{"url": "https://x.example"}}, "projectId"},
	} {
		_, err := c.Connectors().Create(ctx, tc.opts)
		var e *client.Error
		if !errors.As(err, &e) || e.StatusCode != 400 || !strings.Contains(e.Message, tc.want) {
			t.Errorf("%s: %v, want 400 naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := c.Connectors().SetAuditWebhook(ctx, client.AuditWebhook{Name: "x"}); apiStatus(err) != 400 || !strings.Contains(err.Error(), "url") {
		t.Errorf("webhook without url: %v", err)
	}
	if _, err := c.Connectors().Get(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}

	// Raw requests: unknown keys, a bad replay time, the v1 Descope path.
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, inst.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+inst.Creds.ProjectID+":"+inst.Creds.ManagementKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("POST", "/v1/mgmt/connectors", `{"name":"x","type":"webhook","config":{"url":"https://x.example"},"colour":"red"}`); code != 400 || !strings.Contains(body, "colour") {
		t.Errorf("unknown key: %d %s", code, body)
	}
	code, body := do("POST", "/v1/mgmt/connector/audit/web/set", `{"name":"v1","url":"https://x.example","key":"ignored by newer SDKs",
		"filters":[{"key":"actions","operator":"includes","values":["A"]}]}`)
	if code != 200 || !strings.Contains(body, `"id"`) {
		t.Fatalf("v1 createAuditWebhook: %d %s", code, body)
	}
	var created struct{ ID string }
	json.Unmarshal([]byte(body), &created)
	if got, err := c.Connectors().Get(ctx, created.ID); err != nil || len(got.Filters) != 1 || got.Filters[0].FilterType != "actions" {
		t.Fatalf("the Node SDK's filter key: %+v %v", got, err)
	}
	for _, from := range []string{`"yesterday"`, `-5`, `null`, `{}`} {
		if code, body := do("POST", "/v1/mgmt/connectors/"+created.ID+"/replay", `{"from":`+from+`}`); code != 400 || !strings.Contains(body, "from") {
			t.Errorf("replay from %s: %d %s", from, code, body)
		}
	}
	for _, from := range []string{`"2026-01-02T03:04:05Z"`, fmt.Sprint(time.Now().UnixMilli()), `"1700000000000"`} {
		if code, body := do("POST", "/v1/mgmt/connectors/"+created.ID+"/replay", `{"from":`+from+`}`); code != 200 || !strings.Contains(body, `"cursor"`) {
			t.Errorf("replay from %s: %d %s", from, code, body)
		}
	}
	if code, _ := do("DELETE", "/v1/mgmt/connectors/"+created.ID, ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
}

// TestConnectorSurvivesRestart: a connector made with Descope's call keeps
// its config (secrets included), its paused state and its cursor across a
// server restart: what it delivered is not sent again, what it held back
// is delivered on resume.
func TestConnectorSurvivesRestart(t *testing.T) {
	h := newHook(t)
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	id, err := inst.Client(t).Connectors().SetAuditWebhook(ctx, client.AuditWebhook{Name: "siem", URL: h.srv.URL, HMACSecret: secret,
		Authentication: &client.WebhookAuthentication{BearerToken: bearer}})
	if err != nil {
		t.Fatal(err)
	}
	rec := client.Record{ProjectID: inst.Creds.ProjectID, Action: "BeforeRestart", ActorID: "a"}
	first := ingest(t, inst.Client(t), rec, rec, rec)
	wait(t, "the first events", func() bool { return len(h.IDs()) >= 3 })
	if _, err := inst.Client(t).Connectors().Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	rec.Action = "WhilePaused"
	held := ingest(t, inst.Client(t), rec, rec)

	inst.Restart(t)
	c := inst.Client(t)
	list, err := c.Connectors().List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Health.State != client.ConnectorPaused || list[0].Health.Delivered != 3 {
		t.Fatalf("after restart: %+v %v", list, err)
	}
	if _, err := c.Connectors().Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	wait(t, "the held events", func() bool { return len(h.IDs()) >= 5 })
	time.Sleep(100 * time.Millisecond) // a repeat would arrive meanwhile
	if got, want := h.IDs(), append(first, held...); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if errs := h.Errors(); len(errs) > 0 {
		t.Fatalf("the secrets did not survive the restart: %v", errs)
	}
}
