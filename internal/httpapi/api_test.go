package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/server"
	"github.com/audittrail/audittrail/internal/tenancy"
)

func storeQuery(c server.Credentials) query.Query {
	return query.Query{CompanyID: c.CompanyID, ProjectID: c.ProjectID, IncludeProject: true, IncludeCompany: true, Size: 1}
}

func apiErr(t *testing.T, err error) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("want an API error, got %v", err)
	}
	return e
}

func TestCreateEventAndSearch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.admin()
	id, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{
		UserID: "u1", Action: "LoginSucceed", Type: "info", ActorID: "John.Doe@example.com", TenantID: "t1",
		Data: map[string]any{"request_details": map[string]any{"headers": map[string]any{"user-agent": "Mozilla/5.0 Chrome/120"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		t.Fatal("createEvent returned no id")
	}
	recs, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{Text: "john.doe chrome"})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || len(recs) != 1 || recs[0].ID != id || !slices.Equal(recs[0].Tenants, []string{"t1"}) ||
		recs[0].ProjectID != e.creds.ProjectID || recs[0].Level != client.LevelProject {
		t.Fatalf("search: total=%d %+v", total, recs)
	}

	// The raw wire form: occurred is a string, lists are never null.
	r := e.post("/v1/mgmt/audit/search", `{"userIds":null,"actions":["LoginSucceed"],"from":-62135596800000,"to":"0","size":0,"page":0}`)
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
	var raw struct {
		Audits []map[string]any `json:"audits"`
		Total  int              `json:"total"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil || raw.Total != 1 {
		t.Fatalf("%v %s", err, r.body)
	}
	if _, ok := raw.Audits[0]["occurred"].(string); !ok {
		t.Fatalf("occurred is not a string: %s", r.body)
	}
	if _, ok := raw.Audits[0]["externalIds"].([]any); !ok {
		t.Fatalf("externalIds is not a list: %s", r.body)
	}

	got, err := c.Audit().Get(ctx, id)
	if err != nil || got.ID != id || got.Action != "LoginSucceed" {
		t.Fatalf("get: %+v %v", got, err)
	}
}

func TestCreateEventRequiredFields(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ body, code, msg string }{
		{`{"actorId":"a","tenantId":"t","type":"info"}`, httpapi.CodeMissingArgument, "action"},
		{`{"action":"A","tenantId":"t","type":"info"}`, httpapi.CodeMissingArgument, "actorId"},
		{`{"action":"A","actorId":"a","type":"info"}`, httpapi.CodeMissingArgument, "tenantId"},
		{`{"action":"A","actorId":"a","tenantId":"t"}`, httpapi.CodeMissingArgument, "type"},
		{`{"action":"A","actorId":"a","tenantId":"t","type":"debug"}`, httpapi.CodeInvalidArgument, "type"},
		{`{"action":"A","actorId":"a","tenantId":"t","type":"info","data":[1]}`, httpapi.CodeInvalidArgument, "data"},
		{`{"action":"A","actorId":"a","tenantId":"t","type":"info","occurred":"soon"}`, httpapi.CodeInvalidArgument, "occurred"},
		{`{"action":7,"actorId":"a","tenantId":"t","type":"info"}`, httpapi.CodeInvalidArgument, "action"},
	} {
		r := e.post("/v1/mgmt/audit/event", tc.body)
		if r.status != 400 || r.errorCode(t) != tc.code || !contains(string(r.body), tc.msg) {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
		}
	}
	if n := e.count(); n != 0 {
		t.Fatalf("%d events written by refused requests", n)
	}
}

// corpus is a small set of events covering every filterable field.
func corpus(now time.Time) []client.Record {
	at := func(d time.Duration) time.Time { return now.Add(-d).Truncate(time.Millisecond) }
	return []client.Record{
		{ID: "e1", UserID: "alice", Action: "LoginSucceed", ActorID: "alice", Device: "Desktop", Method: "otp", Geo: "US", RemoteAddress: "203.0.113.7", LoginIDs: []string{"alice@example.com"}, Tenants: []string{"t1"}, Occurred: at(1 * time.Hour)},
		{ID: "e2", UserID: "bob", Action: "LoginFailed", Type: "warn", ActorID: "bob", Device: "Mobile", Method: "password", Geo: "IL", RemoteAddress: "198.51.100.1", LoginIDs: []string{"bob@example.com"}, Tenants: []string{"t2"}, Occurred: at(2 * time.Hour), Data: map[string]any{"error_message": "wrong password"}},
		{ID: "e3", UserID: "alice", Action: "UserModified", ActorID: "admin1", Device: "Bot", Method: "oauth", Geo: "US", Tenants: []string{"t1", "t2"}, Occurred: at(3 * time.Hour), Data: map[string]any{"Change": map[string]any{"display_name": map[string]any{"old": "A", "new": "Alice Quetzal"}}}},
		{ID: "e4", UserID: "carol", Action: "LoginSucceed", ActorID: "carol", Device: "Tablet", Method: "saml", Geo: "FR", Occurred: at(4 * time.Hour)},
		{ID: "e5", UserID: "dave", Action: "UserDeleted", Type: "error", ActorID: "admin1", Device: "Unknown", Method: "magiclink", Geo: "DE", Tenants: []string{"t3"}, Occurred: at(5 * time.Hour)},
	}
}

func ids(recs []client.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func TestSearchFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.admin()
	now := time.Now()
	if _, err := c.Audit().Ingest(ctx, corpus(now)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts client.SearchOptions
		want []string
	}{
		{"all newest first", client.SearchOptions{Levels: []client.Level{client.LevelProject}}, []string{"e1", "e2", "e3", "e4", "e5"}},
		{"userIds", client.SearchOptions{UserIDs: []string{"alice", "carol"}}, []string{"e1", "e3", "e4"}},
		{"actions", client.SearchOptions{Actions: []string{"LoginSucceed"}}, []string{"e1", "e4"}},
		{"excludedActions", client.SearchOptions{Levels: []client.Level{client.LevelProject}, ExcludedActions: []string{"LoginSucceed", "LoginFailed"}}, []string{"e3", "e5"}},
		{"actorIds", client.SearchOptions{ActorIDs: []string{"admin1"}}, []string{"e3", "e5"}},
		{"devices", client.SearchOptions{Devices: []string{"Mobile", "Bot"}}, []string{"e2", "e3"}},
		{"methods", client.SearchOptions{Methods: []string{"saml"}}, []string{"e4"}},
		{"geos", client.SearchOptions{Geos: []string{"US"}}, []string{"e1", "e3"}},
		{"remoteAddresses", client.SearchOptions{RemoteAddresses: []string{"198.51.100.1"}}, []string{"e2"}},
		{"externalIds", client.SearchOptions{LoginIDs: []string{"bob@example.com"}}, []string{"e2"}},
		{"tenants", client.SearchOptions{Tenants: []string{"t2"}}, []string{"e2", "e3"}},
		{"tenants+noTenants", client.SearchOptions{Levels: []client.Level{client.LevelProject}, Tenants: []string{"t3"}, NoTenants: true}, []string{"e4", "e5"}},
		{"AND across fields", client.SearchOptions{UserIDs: []string{"alice"}, Geos: []string{"US"}, Actions: []string{"UserModified"}}, []string{"e3"}},
		{"text prefix in data", client.SearchOptions{Text: "quetz"}, []string{"e3"}},
		{"text every word", client.SearchOptions{Text: "wrong pass"}, []string{"e2"}},
		{"text no match", client.SearchOptions{Text: "wrong alice"}, nil},
		{"changedFields", client.SearchOptions{ChangedFields: []string{"display_name"}}, []string{"e3"}},
		{"from/to", client.SearchOptions{From: now.Add(-3*time.Hour - time.Minute), To: now.Add(-90 * time.Minute)}, []string{"e2", "e3"}},
		{"oldestFirst", client.SearchOptions{Actions: []string{"LoginSucceed"}, OldestFirst: true}, []string{"e4", "e1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, total, err := c.Audit().SearchAll(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) || total != len(tc.want) {
				t.Fatalf("got %v total %d, want %v", got, total, tc.want)
			}
		})
	}
}

func TestPaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.admin()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []client.Record
	for i := range 25 {
		recs = append(recs, client.Record{ID: fmt.Sprintf("p%02d", i), Action: "A", ActorID: "x", Occurred: base.Add(time.Duration(i) * time.Second)})
	}
	if _, err := c.Audit().Ingest(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for page := 0; ; page++ {
		got, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{Actions: []string{"A"}, Size: 10, Page: page})
		if err != nil {
			t.Fatal(err)
		}
		if total != 25 {
			t.Fatalf("page %d: total %d", page, total)
		}
		if len(got) == 0 {
			break
		}
		seen = append(seen, ids(got)...)
	}
	want := make([]string, 25)
	for i := range want {
		want[i] = fmt.Sprintf("p%02d", 24-i)
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("pages: %v", seen)
	}
	// The older names of size.
	for _, body := range []string{`{"actions":["A"],"limit":3}`, `{"actions":["A"],"batchSize":3}`, `{"actions":["A"],"size":3,"limit":7}`} {
		r := e.post("/v1/mgmt/audit/search", body)
		var out struct{ Audits []any }
		_ = json.Unmarshal(r.body, &out)
		if r.status != 200 || len(out.Audits) != 3 {
			t.Errorf("%s: %d %d", body, r.status, len(out.Audits))
		}
	}
	// Default page size is 1000 (Descope's), so all 25 come back.
	r := e.post("/v1/mgmt/audit/search", `{"actions":["A"]}`)
	var out struct{ Audits []any }
	_ = json.Unmarshal(r.body, &out)
	if len(out.Audits) != 25 {
		t.Fatalf("default size gave %d", len(out.Audits))
	}
}

func TestSearchWindow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.admin()
	now := time.Now()
	if _, err := c.Audit().Ingest(ctx, []client.Record{
		{ID: "old", Action: "A", ActorID: "x", Occurred: now.Add(-40 * 24 * time.Hour)},
		{ID: "new", Action: "A", ActorID: "x", Occurred: now.Add(-20 * 24 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	// Unset from means now − window: the 40-day-old event is not found.
	recs, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{Actions: []string{"A"}})
	if err != nil || total != 1 || recs[0].ID != "new" {
		t.Fatalf("unset from: %v %d %v", ids(recs), total, err)
	}
	_, _, err = c.Audit().SearchAll(ctx, client.SearchOptions{From: now.Add(-31 * 24 * time.Hour)})
	if ae := apiErr(t, err); ae.StatusCode != 400 || ae.ErrorCode != httpapi.CodeInvalidArgument || !strings.Contains(ae.Message, "30 days") {
		t.Fatalf("from beyond window: %v", err)
	}
	// A company setting changes the window.
	if _, err := c.Settings().Update(ctx, client.SettingsUpdate{SearchWindowDays: client.Int(7)}); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Audit().SearchAll(ctx, client.SearchOptions{From: now.Add(-10 * 24 * time.Hour)})
	if ae := apiErr(t, err); ae.StatusCode != 400 || !strings.Contains(ae.Message, "7 days") {
		t.Fatalf("from beyond a 7-day window: %v", err)
	}
	recs, _, err = c.Audit().SearchAll(ctx, client.SearchOptions{Actions: []string{"A"}})
	if err != nil || len(recs) != 0 {
		t.Fatalf("7-day window still finds %v (%v)", ids(recs), err)
	}
	// to older than the window, from unset: the window is named.
	r0 := e.post("/v1/mgmt/audit/search", fmt.Sprintf(`{"to":%d}`, ms(now.Add(-10*24*time.Hour))))
	if r0.status != 400 || !contains(string(r0.body), "7 days") {
		t.Fatalf("to beyond the window: %d %s", r0.status, r0.body)
	}
	// from after to.
	r := e.post("/v1/mgmt/audit/search", fmt.Sprintf(`{"from":%d,"to":%d}`, ms(now), ms(now.Add(-time.Hour))))
	if r.status != 400 || r.errorCode(t) != httpapi.CodeInvalidArgument || !contains(string(r.body), "after") {
		t.Fatalf("from after to: %d %s", r.status, r.body)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(o *httpapi.Options) { o.SearchRateLimit = 10 })
	ctx := context.Background()
	c := e.admin()
	for i := range 10 {
		if _, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{}); err != nil {
			t.Fatalf("search %d: %v", i, err)
		}
	}
	r := e.post("/v1/mgmt/audit/search", `{}`)
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != httpapi.CodeRateLimited {
		t.Fatalf("11th search: %d %s", r.status, r.body)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// An export counts as one search too.
	if r := e.post("/v1/mgmt/audit/export", `{}`); r.status != http.StatusTooManyRequests {
		t.Fatalf("export past the limit: %d", r.status)
	}

	// Another project has its own budget.
	p2, err := c.Projects().Create(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.client(p2.ID, e.creds.ManagementKey).Audit().SearchAll(ctx, client.SearchOptions{}); err != nil {
		t.Fatalf("other project limited: %v", err)
	}

	// A company setting overrides the server default: 0 turns it off.
	if _, err := c.Settings().Update(ctx, client.SettingsUpdate{SearchRateLimit: client.Int(0)}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{}); err != nil {
			t.Fatalf("unlimited search %d: %v", i, err)
		}
	}
	if _, err := c.Settings().Update(ctx, client.SettingsUpdate{SearchRateLimit: client.Int(2)}); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.client(p2.ID, e.creds.ManagementKey).Audit().SearchAll(ctx, client.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.client(p2.ID, e.creds.ManagementKey).Audit().SearchAll(ctx, client.SearchOptions{})
	if ae := apiErr(t, err); ae.StatusCode != 429 || ae.RetryAfter < time.Second {
		t.Fatalf("company limit 2: %v", err)
	}
}

func TestBatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.admin()
	got, err := c.Audit().Ingest(ctx, []client.Record{{ID: "same", Action: "A", ActorID: "x"}, {Action: "B", ActorID: "y"}})
	if err != nil || len(got) != 2 || got[0] != "same" || got[1] == "" {
		t.Fatalf("ingest: %v %v", got, err)
	}
	// Sending the same id again (a retried batch) stores nothing new.
	again, err := c.Audit().Ingest(ctx, []client.Record{{ID: "same", Action: "A", ActorID: "x"}, {ID: "same", Action: "A", ActorID: "x"}})
	if err != nil || !slices.Equal(again, []string{"same", "same"}) {
		t.Fatalf("re-ingest: %v %v", again, err)
	}
	if n := e.count(); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}

	// One invalid event refuses the whole batch, naming index and field.
	for _, tc := range []struct{ body, want string }{
		{`{"events":[{"action":"A"},{"action":"A","type":"loud"}]}`, "events[1].type"},
		{`{"events":[{"action":"A"},{"action":"A"},{"action":""}]}`, "events[2].action"},
		{`{"events":[{"action":"A","occurred":"yesterday"}]}`, "events[0].occurred"},
		{`{"events":[{"action":"A","tenants":"t1"}]}`, "events[0].tenants"},
		{`{"events":[{"action":"A","colour":"red"}]}`, "events[0].colour"},
		{`{"events":[{"action":"A","level":"company","projectId":"P1"}]}`, "events[0].projectId"},
		{`{"events":[7]}`, "events[0]"},
	} {
		r := e.post("/v1/mgmt/audit/events", tc.body)
		if r.status != 400 || r.errorCode(t) == "" || !contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
		}
	}
	// Events of a project outside the company answer 404 and write nothing.
	r := e.post("/v1/mgmt/audit/events", `{"events":[{"action":"A"},{"action":"A","projectId":"Pnope"}]}`)
	if r.status != 404 {
		t.Fatalf("foreign project: %d %s", r.status, r.body)
	}
	if n := e.count(); n != 2 {
		t.Fatalf("refused batches wrote: %d events", n)
	}

	// Too many events, too many bytes: 413.
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range httpapi.MaxBatchEvents + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"action":"A"}`)
	}
	b.WriteString(`]}`)
	if r := e.post("/v1/mgmt/audit/events", b.String()); r.status != 413 || r.errorCode(t) != httpapi.CodeTooLarge {
		t.Fatalf("10,001 events: %d %s", r.status, r.body)
	}
	big := `{"events":[{"action":"A","data":{"x":"` + strings.Repeat("a", httpapi.MaxBatchBytes) + `"}}]}`
	if r := e.post("/v1/mgmt/audit/events", big); r.status != 413 || r.errorCode(t) != httpapi.CodeTooLarge {
		t.Fatalf("11 MiB body: %d %.200s", r.status, r.body)
	}
	if n := e.count(); n != 2 {
		t.Fatalf("oversized batches wrote: %d events", n)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.admin()
	p2, err := admin.Projects().Create(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	_, readerKey, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "r", Role: "reader", ProjectIDs: []string{e.creds.ProjectID}})
	if err != nil {
		t.Fatal(err)
	}
	_, writerKey, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "w", Role: "writer", ProjectIDs: []string{p2.ID}})
	if err != nil {
		t.Fatal(err)
	}
	search := `{}`
	event := `{"action":"A","actorId":"a","tenantId":"t","type":"info"}`
	for _, tc := range []struct {
		name, auth, path, body string
		status                 int
		code                   string
	}{
		{"no header", "", "/v1/mgmt/audit/search", search, 401, httpapi.CodeUnauthenticated},
		{"not bearer", "Basic abc", "/v1/mgmt/audit/search", search, 401, httpapi.CodeUnauthenticated},
		{"garbage key", "Bearer " + e.creds.ProjectID + ":nope", "/v1/mgmt/audit/search", search, 401, httpapi.CodeUnauthenticated},
		{"wrong secret", "Bearer " + e.creds.ProjectID + ":" + e.creds.ManagementKey[:len(e.creds.ManagementKey)-2] + "AA", "/v1/mgmt/audit/search", search, 401, httpapi.CodeUnauthenticated},
		{"unknown project", "Bearer Pnope:" + e.creds.ManagementKey, "/v1/mgmt/audit/search", search, 404, httpapi.CodeNotFound},
		{"reader may search", "Bearer " + e.creds.ProjectID + ":" + readerKey, "/v1/mgmt/audit/search", search, 200, ""},
		{"reader may not write", "Bearer " + e.creds.ProjectID + ":" + readerKey, "/v1/mgmt/audit/event", event, 403, httpapi.CodeForbidden},
		{"reader may not administer", "Bearer " + readerKey, "/v1/mgmt/projects", `{"name":"x"}`, 403, httpapi.CodeForbidden},
		{"writer out of scope", "Bearer " + e.creds.ProjectID + ":" + writerKey, "/v1/mgmt/audit/event", event, 403, httpapi.CodeForbidden},
		{"writer in scope", "Bearer " + p2.ID + ":" + writerKey, "/v1/mgmt/audit/event", event, 200, ""},
		{"single-project key needs no project", "Bearer " + writerKey, "/v1/mgmt/audit/event", event, 200, ""},
		{"admin without project on a project route", "Bearer " + e.creds.ManagementKey, "/v1/mgmt/audit/search", search, 401, httpapi.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, tc.auth, "application/json", []byte(tc.body))
			if r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if tc.code != "" && r.errorCode(t) != tc.code {
				t.Fatalf("code %s", r.body)
			}
		})
	}

	// Revoked and rotated keys stop working at once.
	k, secret, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "tmp", Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	kc := e.client(e.creds.ProjectID, secret)
	if _, _, err := kc.Audit().SearchAll(ctx, client.SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	_, newSecret, err := admin.Keys().Rotate(ctx, k.ID)
	if err != nil || newSecret == secret || !strings.HasPrefix(newSecret, k.ID+".") {
		t.Fatalf("rotate: %v", err)
	}
	if _, _, err := kc.Audit().SearchAll(ctx, client.SearchOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("old secret after rotate: %v", err)
	}
	kc = e.client(e.creds.ProjectID, newSecret)
	if _, _, err := kc.Audit().SearchAll(ctx, client.SearchOptions{}); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if _, err := admin.Keys().Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kc.Audit().SearchAll(ctx, client.SearchOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("revoked key: %v", err)
	}
	// Expired keys too.
	_, expSecret, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "exp", Role: "reader", ExpiresIn: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, _, err := e.client(e.creds.ProjectID, expSecret).Audit().SearchAll(ctx, client.SearchOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("expired key: %v", err)
	}

	// Nothing in the logs gives a secret away.
	logs := e.logs.String()
	for _, s := range []string{e.creds.ManagementKey, readerKey, writerKey, secret, newSecret, expSecret} {
		_, sec, _ := strings.Cut(s, ".")
		if strings.Contains(logs, sec) {
			t.Fatalf("a key secret is in the logs")
		}
	}
}

func TestScopeIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.admin()
	p2, err := admin.Projects().Create(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	idA, err := admin.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "InA", ActorID: "a", TenantID: "t", Type: "info"})
	if err != nil {
		t.Fatal(err)
	}
	other := e.client(p2.ID, e.creds.ManagementKey)
	if _, err := other.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "InB", ActorID: "a", TenantID: "t", Type: "info"}); err != nil {
		t.Fatal(err)
	}
	recs, _, err := other.Audit().SearchAll(ctx, client.SearchOptions{Levels: []client.Level{client.LevelProject}})
	if err != nil || len(recs) != 1 || recs[0].Action != "InB" {
		t.Fatalf("project B sees %v (%v)", recs, err)
	}
	if _, err := other.Audit().Get(ctx, idA); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("project B gets A's event: %v", err)
	}
	// A key limited to project B does not see company-level events.
	_, bKey, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "b", Role: "reader", ProjectIDs: []string{p2.ID}})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err = e.client(p2.ID, bKey).Audit().SearchAll(ctx, client.SearchOptions{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("scoped key sees %d records (%v)", len(recs), err)
	}
}

func TestAdminAPIRecordsCompanyEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.admin()
	adminKeyID, _, _ := tenancy.ParseKey(e.creds.ManagementKey)

	p, err := admin.Projects().Create(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	projects, err := admin.Projects().List(ctx)
	if err != nil || len(projects) != 2 {
		t.Fatalf("projects: %v %v", projects, err)
	}
	k, secret, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "ci", Role: "writer", ProjectIDs: []string{p.ID}})
	if err != nil || k.ID == "" || secret == "" {
		t.Fatal(err)
	}
	keys, err := admin.Keys().List(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	if _, _, err := admin.Keys().Rotate(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Keys().Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	s, err := admin.Settings().Update(ctx, client.SettingsUpdate{SearchWindowDays: client.Int(14), RetentionDays: client.Int(60)})
	if err != nil || s.SearchWindowDays != 14 || s.RetentionDays != 60 {
		t.Fatalf("settings: %+v %v", s, err)
	}
	if got, err := admin.Settings().Get(ctx); err != nil || got.SearchWindowDays != 14 {
		t.Fatalf("get settings: %+v %v", got, err)
	}
	if err := admin.Projects().Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}

	recs, _, err := admin.Audit().SearchAll(ctx, client.SearchOptions{Levels: []client.Level{client.LevelCompany}, OldestFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ProjectCreated", "ManagementKeyCreated", "ManagementKeyRotated", "ManagementKeyRevoked", "CompanySettingsModified", "ProjectDeleted"}
	var got []string
	for _, r := range recs {
		got = append(got, r.Action)
		if r.ActorID != adminKeyID || r.Level != client.LevelCompany || r.ProjectID != "" {
			t.Errorf("%s: actor %q level %q project %q", r.Action, r.ActorID, r.Level, r.ProjectID)
		}
		b, _ := json.Marshal(r.Data)
		_, sec, _ := strings.Cut(secret, ".")
		if strings.Contains(string(b), sec) {
			t.Errorf("%s data holds the secret", r.Action)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("company events %v, want %v", got, want)
	}
	if recs[0].Data["projectId"] != p.ID || recs[1].Data["keyId"] != k.ID {
		t.Fatalf("data: %v %v", recs[0].Data, recs[1].Data)
	}
	change, _ := recs[4].Data["Change"].(map[string]any)
	if _, ok := change["searchWindowDays"]; !ok {
		t.Fatalf("settings change data: %v", recs[4].Data)
	}

	// Invalid admin bodies.
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/mgmt/projects", `{}`},
		{"POST", "/v1/mgmt/projects", `{"name":"x","extra":1}`},
		{"POST", "/v1/mgmt/keys", `{"name":"k","role":"root"}`},
		{"POST", "/v1/mgmt/keys", `{"name":"k","role":"reader","expiresInSeconds":-1}`},
		{"POST", "/v1/mgmt/keys", `{"name":"k","role":"reader","projectIds":["Pnope"]}`},
		{"PATCH", "/v1/mgmt/company/settings", `{"searchWindowDays":0}`},
		{"PATCH", "/v1/mgmt/company/settings", `{"retentionDays":5}`},
		{"PATCH", "/v1/mgmt/company/settings", `{"searchRateLimit":-3}`},
	} {
		r := e.do(tc.method, tc.path, "Bearer "+e.creds.ManagementKey, "application/json", []byte(tc.body))
		if r.status != 400 {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, r.status, r.body)
		}
	}
	if r := e.do("DELETE", "/v1/mgmt/projects/Pnope", "Bearer "+e.creds.ManagementKey, "", nil); r.status != 404 {
		t.Fatalf("delete unknown project: %d", r.status)
	}
	if r := e.do("POST", "/v1/mgmt/keys/Knope/revoke", "Bearer "+e.creds.ManagementKey, "", nil); r.status != 404 {
		t.Fatalf("revoke unknown key: %d", r.status)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	e := newEnv(t)
	e.ready = false
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 503 {
		t.Fatalf("healthz before ready: %d", r.status)
	}
	e.ready = true
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 || r.json(t)["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/mgmt/license", "", "", nil); r.status != 200 || r.json(t)["rateLimitTier"] == nil {
		t.Fatalf("license: %d %s", r.status, r.body)
	}
	e.post("/v1/mgmt/audit/event", `{"action":"A","actorId":"a","tenantId":"t","type":"info"}`)
	e.post("/v1/mgmt/audit/search", `{}`)
	r := e.do("GET", "/metrics", "", "", nil)
	for _, want := range []string{
		`audittrail_events_ingested_total{api="event"} 1`,
		`audittrail_searches_total{kind="search"} 1`,
		`audittrail_search_duration_seconds_count{kind="search"} 1`,
		`audittrail_ingest_duration_seconds_bucket{api="event",le="+Inf"} 1`,
		`audittrail_http_requests_total{route="POST /v1/mgmt/audit/search",code="200"} 1`,
	} {
		if !contains(string(r.body), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Unknown routes and methods answer in the error format.
	if r := e.do("GET", "/nope", "", "", nil); r.status != 404 || r.errorCode(t) != httpapi.CodeNotFound {
		t.Fatalf("unknown route: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/v1/mgmt/audit/search", "", "", nil); r.status != 405 || r.errorCode(t) != httpapi.CodeMethod || r.header.Get("Allow") == "" {
		t.Fatalf("wrong method: %d %s %v", r.status, r.body, r.header)
	}
	// An unclean path is redirected, not refused.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1//mgmt/license", nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil || resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/v1/mgmt/license" {
		t.Fatalf("unclean path: %v %v", resp, err)
	}
	resp.Body.Close()
	// The request log has what an operator needs and never the key.
	logs := e.logs.String()
	if !contains(logs, `"msg":"request"`) || !contains(logs, `"request_id"`) || !contains(logs, `"project":"`+e.creds.ProjectID+`"`) {
		t.Fatalf("request log: %s", logs)
	}
	_, sec, _ := strings.Cut(e.creds.ManagementKey, ".")
	if contains(logs, sec) {
		t.Fatal("the management key is in the logs")
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t)
	e.api.HandlePublic("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	r := e.do("GET", "/boom", "", "", nil)
	if r.status != 500 || r.errorCode(t) != httpapi.CodeInternal || contains(string(r.body), "kaboom") {
		t.Fatalf("panic: %d %s", r.status, r.body)
	}
	if !contains(e.logs.String(), "kaboom") {
		t.Fatal("the panic is not logged")
	}
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("server unhealthy after a panic: %d", r.status)
	}
	// A panic after the response started cuts the connection.
	e.api.HandlePublic("GET /halfway", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		panic("late")
	}))
	resp, err := e.srv.Client().Get(e.srv.URL + "/halfway")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a panic mid-response ended the body cleanly")
	}
}

func TestMountedRoutesShareAuth(t *testing.T) {
	e := newEnv(t)
	e.api.Handle("GET /v1/mgmt/things", tenancy.RoleReader, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := httpapi.PrincipalFrom(r.Context())
		if !ok {
			httpapi.WriteError(w, r, errors.New("no principal"))
			return
		}
		w.Write([]byte(p.ProjectID))
	}))
	if r := e.do("GET", "/v1/mgmt/things", "", "", nil); r.status != 401 {
		t.Fatalf("unauthenticated: %d", r.status)
	}
	if r := e.do("GET", "/v1/mgmt/things", e.auth(), "", nil); r.status != 200 || string(r.body) != e.creds.ProjectID {
		t.Fatalf("authenticated: %d %s", r.status, r.body)
	}
}

var _ = event.LevelCompany

func TestEnrichment(t *testing.T) {
	en, err := enrich.New(enrich.Options{CountryHeader: "cf-ipcountry"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *httpapi.Options) { o.Enricher = en })
	rc := `"requestContext":{"ip":"203.0.113.9","userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148","headers":{"cf-ipcountry":"IL","Authorization":"Bearer secret-token"},"method":"POST","url":"https://app.example.com/login"}`
	r := e.post("/v1/mgmt/audit/event", `{"action":"LoginSucceed","actorId":"a","tenantId":"t","type":"info",`+rc+`}`)
	if r.status != 200 {
		t.Fatalf("createEvent: %d %s", r.status, r.body)
	}
	r = e.post("/v1/mgmt/audit/events", `{"events":[{"action":"Batch","device":"Desktop",`+rc+`}]}`)
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	recs, _, err := e.admin().Audit().SearchAll(context.Background(), client.SearchOptions{OldestFirst: true})
	if err != nil || len(recs) != 2 {
		t.Fatalf("%v %v", recs, err)
	}
	if recs[0].Device != "Mobile" || recs[0].RemoteAddress != "203.0.113.9" || recs[0].Geo != "IL" || recs[0].Data["request_details"] == nil {
		t.Fatalf("createEvent not enriched: %+v", recs[0])
	}
	if recs[1].Device != "Desktop" {
		t.Fatalf("enrichment overrode the sender's device: %q", recs[1].Device)
	}
	b, _ := json.Marshal(recs)
	if strings.Contains(string(b), "secret-token") {
		t.Fatal("a credential header was stored")
	}
	r = e.post("/v1/mgmt/audit/events", `{"events":[{"action":"A"},{"action":"B","requestContext":{"ip":"not-an-ip"}}]}`)
	if r.status != 400 || !contains(string(r.body), "events[1].requestContext") {
		t.Fatalf("bad requestContext: %d %s", r.status, r.body)
	}
}

func TestStoreUnavailableAnswers503(t *testing.T) {
	e := newEnv(t)
	r := e.do("PATCH", "/v1/mgmt/company/settings", "Bearer "+e.creds.ManagementKey, "application/json", []byte(`{"retentionDays":7}`))
	if r.status != 400 || r.errorCode(t) != httpapi.CodeValidation {
		t.Fatalf("retention below the window: %d %s", r.status, r.body)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/mgmt/audit/event", "/v1/mgmt/audit/search"} {
		r := e.post(path, `{"action":"A","actorId":"a","tenantId":"t","type":"info"}`)
		if r.status != 503 || r.errorCode(t) != httpapi.CodeUnavailable || contains(string(r.body), "closed") {
			t.Fatalf("%s on a closed store: %d %s", path, r.status, r.body)
		}
	}
}

func TestAfterAppendHook(t *testing.T) {
	var calls atomic.Int32
	e := newEnv(t, func(o *httpapi.Options) { o.AfterAppend = func() { calls.Add(1) } })
	e.post("/v1/mgmt/audit/event", `{"action":"A","actorId":"a","tenantId":"t","type":"info"}`)
	e.post("/v1/mgmt/audit/events", `{"events":[{"action":"A"},{"action":"B"}]}`)
	e.post("/v1/mgmt/audit/events", `{"events":[{"action":""}]}`) // refused: no append
	if n := calls.Load(); n != 2 {
		t.Fatalf("AfterAppend called %d times, want 2", n)
	}
}

// TestBatchSlots: refused batches give their slot back, and more
// concurrent batches than slots all complete.
func TestBatchSlots(t *testing.T) {
	e := newEnv(t)
	for range 20 {
		if r := e.post("/v1/mgmt/audit/events", `{"events":[{"action":""}]}`); r.status != 400 {
			t.Fatal(r.status)
		}
		if r := e.post("/v1/mgmt/audit/events", `{"events":`); r.status != 400 {
			t.Fatal(r.status)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 24)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"events":[{"id":"b%d-1","action":"A"},{"id":"b%d-2","action":"B"}]}`, i, i)
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/mgmt/audit/events", strings.NewReader(body))
			req.Header.Set("Authorization", e.auth())
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.count(); n != 48 {
		t.Fatalf("%d events stored, want 48", n)
	}
}
