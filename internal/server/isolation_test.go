package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server/servertest"
)

// rawCall sends one request with an Authorization header and returns the
// status and body.
func rawCall(t *testing.T, method, url, auth, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp.StatusCode, b
}

func bearer(projectID, key string) string {
	if projectID == "" {
		return "Bearer " + key
	}
	return "Bearer " + projectID + ":" + key
}

// scope is a set of event ids written into one place (a project, or the
// company level of a company).
type scope struct {
	name string
	ids  map[string]bool
}

// fillScope ingests n events whose every field but the owner marker is the
// same in every scope, so any filter that matches one scope's events
// matches every scope's: only the key's scope can keep them apart.
func fillScope(t *testing.T, c *client.Client, name string, level client.Level, n int) scope {
	t.Helper()
	recs := make([]client.Record, n)
	now := time.Now().Add(-time.Minute)
	for i := range recs {
		tenants := [][]string{{"t1"}, {"t1", "t2"}, nil}[i%3]
		recs[i] = client.Record{Level: level, UserID: fmt.Sprintf("u%d", i%5), Action: []string{"LoginSucceed", "LoginFailed", "UserModified"}[i%3],
			Type: "info", ActorID: "actor", Occurred: now.Add(-time.Duration(i) * time.Second), LoginIDs: []string{fmt.Sprintf("login%d@example.com", i%4)},
			Tenants: tenants, Device: "Desktop", Method: "OTP", Geo: "FR", RemoteAddress: "10.0.0.1",
			Data: map[string]any{"note": "alpha beta shared words", "owner": "owner" + name, "Change": map[string]any{"email": true}}}
	}
	ids, err := c.Audit().Ingest(context.Background(), recs)
	if err != nil {
		t.Fatalf("ingest into %s: %v", name, err)
	}
	s := scope{name: name, ids: map[string]bool{}}
	for _, id := range ids {
		s.ids[id] = true
	}
	if len(s.ids) != n {
		t.Fatalf("ingest into %s: %d distinct ids for %d events", name, len(s.ids), n)
	}
	return s
}

// world is two companies with two projects each, all made through the
// admin API (companies come from bootstrap, so the second is added to the
// directory as a second deployment would have it).
type world struct {
	inst *servertest.Instance
	// c1 is the bootstrap company: admin key (all projects), P1, P2.
	c1Admin, p1, p2 string
	// c2: another company, its admin key, P3, P4.
	c2Admin, p3, p4 string
	// Keys of company 1 limited to P1.
	p1Reader, p1Writer, p1ReaderID string
	// Events by scope.
	sp1, sp2, sc1, sp3, sp4, sc2 scope
}

func newWorld(t *testing.T, opts servertest.Options) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{inst: servertest.Start(t, opts)}
	inst := w.inst
	w.c1Admin, w.p1 = inst.Creds.ManagementKey, inst.Creds.ProjectID
	admin1 := inst.Client(t)
	p2, err := admin1.Projects().Create(ctx, "p2")
	if err != nil {
		t.Fatal(err)
	}
	w.p2 = p2.ID
	c2 := inst.NewCompany(t)
	w.c2Admin, w.p3 = c2.ManagementKey, c2.ProjectID
	p4, err := inst.ClientFor(t, "", w.c2Admin).Projects().Create(ctx, "p4")
	if err != nil {
		t.Fatal(err)
	}
	w.p4 = p4.ID
	k, secret, err := admin1.Keys().Create(ctx, client.CreateKeyOptions{Name: "p1 reader", Role: "reader", ProjectIDs: []string{w.p1}})
	if err != nil {
		t.Fatal(err)
	}
	w.p1Reader, w.p1ReaderID = secret, k.ID
	if _, w.p1Writer, err = admin1.Keys().Create(ctx, client.CreateKeyOptions{Name: "p1 writer", Role: "writer", ProjectIDs: []string{w.p1}}); err != nil {
		t.Fatal(err)
	}
	const n = 30
	w.sp1 = fillScope(t, inst.ClientFor(t, w.p1, w.c1Admin), "p1", client.LevelProject, n)
	w.sp2 = fillScope(t, inst.ClientFor(t, w.p2, w.c1Admin), "p2", client.LevelProject, n)
	w.sc1 = fillScope(t, inst.ClientFor(t, w.p1, w.c1Admin), "c1", client.LevelCompany, 6)
	w.sp3 = fillScope(t, inst.ClientFor(t, w.p3, w.c2Admin), "p3", client.LevelProject, n)
	w.sp4 = fillScope(t, inst.ClientFor(t, w.p4, w.c2Admin), "p4", client.LevelProject, n)
	w.sc2 = fillScope(t, inst.ClientFor(t, w.p3, w.c2Admin), "c2", client.LevelCompany, 6)
	return w
}

// isolationQueries are search bodies with every kind of filter, text and
// paging; each is run by /search, /export and /histogram.
var isolationQueries = []string{
	`{}`,
	`{"size":1000}`,
	`{"text":"alpha"}`,
	`{"text":"ownerp2"}`,
	`{"text":"ownerp3 alpha"}`,
	`{"text":"owner"}`,
	`{"userIds":["u1","u2"]}`,
	`{"actions":["LoginFailed"],"geos":["FR"]}`,
	`{"excludedActions":["LoginSucceed"]}`,
	`{"tenants":["t1"]}`,
	`{"tenants":["t2"],"noTenants":true}`,
	`{"noTenants":true}`,
	`{"externalIds":["login1@example.com"]}`,
	`{"devices":["Desktop"],"methods":["OTP"],"remoteAddresses":["10.0.0.1"]}`,
	`{"levels":["company"]}`,
	`{"levels":["project","company"]}`,
	`{"changedFields":["email"]}`,
	`{"from":FROM,"to":99999999999999}`, // FROM: a day ago (the search window is 30 days)
	`{"size":7,"page":1}`,
	`{"size":7,"page":3,"oldestFirst":true}`,
	`{"size":1000,"page":5}`,
	`{"actorIds":["actor"],"types":["info"]}`,
}

type searchAnswer struct {
	Audits []struct {
		ID        string `json:"id"`
		ProjectID string `json:"projectId"`
	} `json:"audits"`
	Total int `json:"total"`
}

// checkSees runs every query as auth against the server and fails on any
// event outside allowed (when set) or inside forbidden; it returns the
// total of the unfiltered query.
func checkSees(t *testing.T, url, auth string, allowed, forbidden map[string]bool, label string) int {
	t.Helper()
	in := func(id string) bool { return (allowed == nil || allowed[id]) && !forbidden[id] }
	unfiltered := -1
	for _, q := range isolationQueries {
		q = strings.ReplaceAll(q, "FROM", fmt.Sprint(time.Now().Add(-24*time.Hour).UnixMilli()))
		st, body := rawCall(t, "POST", url+"/v1/mgmt/audit/search", auth, q)
		if st == http.StatusForbidden && strings.Contains(q, "company") && bytes.Contains(body, []byte("company-level events need")) {
			continue // a project key asking for company-level events: refused outright
		}
		if st != http.StatusOK {
			t.Fatalf("%s search %s: %d %s", label, q, st, body)
		}
		var ans searchAnswer
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatal(err)
		}
		for _, a := range ans.Audits {
			if !in(a.ID) {
				t.Fatalf("%s search %s returned event %s (project %q) outside its scope", label, q, a.ID, a.ProjectID)
			}
		}
		if allowed != nil && ans.Total > len(allowed) {
			t.Fatalf("%s search %s counts %d events, its scope holds %d", label, q, ans.Total, len(allowed))
		}
		if q == `{}` {
			unfiltered = ans.Total
		}
		// The histogram counts exactly what search counts.
		st, body = rawCall(t, "POST", url+"/v1/mgmt/audit/histogram", auth, q)
		if st != http.StatusOK {
			t.Fatalf("%s histogram %s: %d %s", label, q, st, body)
		}
		var h struct {
			Total   int `json:"total"`
			Buckets []struct{ Info, Warn, Error int }
		}
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, b := range h.Buckets {
			sum += b.Info + b.Warn + b.Error
		}
		if h.Total != ans.Total || sum != h.Total {
			t.Fatalf("%s histogram %s: total %d (bars %d), search total %d, scope %d", label, q, h.Total, sum, ans.Total, len(allowed))
		}
		// The export streams every match: the same ids, no others.
		if strings.Contains(q, "page") {
			continue // export ignores paging
		}
		st, body = rawCall(t, "POST", url+"/v1/mgmt/audit/export?format=ndjson", auth, q)
		if st != http.StatusOK {
			t.Fatalf("%s export %s: %d %s", label, q, st, body)
		}
		n := 0
		for line := range bytes.Lines(body) {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(line, &ev); err != nil || ev.ID == "" {
				continue // a trailer or progress line, not an event
			}
			if !in(ev.ID) {
				t.Fatalf("%s export %s streamed event %s outside its scope", label, q, ev.ID)
			}
			n++
		}
		if n != ans.Total {
			t.Fatalf("%s export %s streamed %d events, search counts %d", label, q, n, ans.Total)
		}
	}
	return unfiltered
}

func union(ss ...scope) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		for id := range s.ids {
			m[id] = true
		}
	}
	return m
}

func TestIsolation(t *testing.T) {
	w := newWorld(t, servertest.Options{})
	url := w.inst.URL

	t.Run("project key sees its project only", func(t *testing.T) {
		for _, k := range []struct{ name, key string }{{"reader", w.p1Reader}, {"writer", w.p1Writer}} {
			got := checkSees(t, url, bearer(w.p1, k.key), union(w.sp1), nil, "P1 "+k.name)
			if got != len(w.sp1.ids) {
				t.Fatalf("P1 %s counts %d of its %d events", k.name, got, len(w.sp1.ids))
			}
			// Naming no project: the key's one project is implied.
			checkSees(t, url, bearer("", k.key), union(w.sp1), nil, "P1 "+k.name+" (implied project)")
		}
	})
	t.Run("admin key never sees another company", func(t *testing.T) {
		// An all-project admin key sees its project and its company's
		// company-level events (ours and the server's own records of admin
		// calls), never another project's or company 2's.
		c2 := everything(t, url, w.c2Admin, w.p3, w.p4)
		c1 := everything(t, url, w.c1Admin, w.p1, w.p2)
		for id := range c1 {
			if c2[id] {
				t.Fatalf("event %s is seen by both companies' admins", id)
			}
		}
		got := checkSees(t, url, bearer(w.p1, w.c1Admin), nil, union(w.sp2, w.sp3, w.sp4, w.sc2, scope{ids: c2}), "C1 admin on P1")
		if got < len(w.sp1.ids)+len(w.sc1.ids) {
			t.Fatalf("C1 admin counts %d events in P1 and company-level, we wrote %d", got, len(w.sp1.ids)+len(w.sc1.ids))
		}
		checkSees(t, url, bearer(w.p4, w.c2Admin), nil, union(w.sp1, w.sp2, w.sp3, w.sc1, scope{ids: c1}), "C2 admin on P4")
	})
	t.Run("other projects cannot be named", func(t *testing.T) {
		for _, c := range []struct {
			auth string
			want int
		}{
			{bearer(w.p2, w.p1Reader), http.StatusForbidden}, // same company, outside the key's scope
			{bearer(w.p3, w.p1Reader), http.StatusNotFound},  // another company's project: unknown
			{bearer(w.p3, w.c1Admin), http.StatusNotFound},
			{bearer(w.p1, w.c2Admin), http.StatusNotFound},
			{bearer("P2NOTAPROJECT", w.c1Admin), http.StatusNotFound},
		} {
			for _, path := range []string{"/v1/mgmt/audit/search", "/v1/mgmt/audit/export", "/v1/mgmt/audit/histogram", "/v1/mgmt/audit/tail"} {
				if st, body := rawCall(t, "POST", url+path, c.auth, `{}`); st != c.want {
					t.Fatalf("%s as %q: %d %s, want %d", path, c.auth[:20], st, body, c.want)
				}
			}
		}
	})
	t.Run("get by id", func(t *testing.T) {
		for id := range w.sp1.ids {
			if st, body := rawCall(t, "GET", url+"/v1/mgmt/audit/event/"+id, bearer(w.p1, w.p1Reader), ""); st != http.StatusOK {
				t.Fatalf("own event %s: %d %s", id, st, body)
			}
			break
		}
		for _, s := range []scope{w.sp2, w.sc1, w.sp3, w.sp4, w.sc2} {
			for id := range s.ids {
				if st, body := rawCall(t, "GET", url+"/v1/mgmt/audit/event/"+id, bearer(w.p1, w.p1Reader), ""); st != http.StatusNotFound {
					t.Fatalf("P1 reader got %s's event %s: %d %s", s.name, id, st, body)
				}
				if s.name == "p3" || s.name == "p4" || s.name == "c2" {
					if st, _ := rawCall(t, "GET", url+"/v1/mgmt/audit/event/"+id, bearer(w.p1, w.c1Admin), ""); st != http.StatusNotFound {
						t.Fatalf("C1 admin got %s's event %s: %d", s.name, id, st)
					}
				}
			}
		}
	})
	t.Run("same client id in two companies", func(t *testing.T) {
		ctx := context.Background()
		mine, err := w.inst.ClientFor(t, w.p1, w.c1Admin).Audit().CreateEvent(ctx, client.CreateEventOptions{ID: "shared-client-id", Action: "Mine", ActorID: "a", TenantID: "t1", Type: "info"})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := w.inst.ClientFor(t, w.p3, w.c2Admin).Audit().CreateEvent(ctx, client.CreateEventOptions{ID: "shared-client-id", Action: "Theirs", ActorID: "a", TenantID: "t1", Type: "info"})
		if err != nil {
			t.Fatal(err)
		}
		if mine != theirs {
			t.Fatalf("client ids changed: %q, %q", mine, theirs)
		}
		st, body := rawCall(t, "GET", url+"/v1/mgmt/audit/event/shared-client-id", bearer(w.p1, w.p1Reader), "")
		if st != http.StatusOK || !bytes.Contains(body, []byte(`"Mine"`)) || bytes.Contains(body, []byte("Theirs")) {
			t.Fatalf("P1 reader's get of a shared client id: %d %s", st, body)
		}
		w.sp1.ids[mine] = true
		st, body = rawCall(t, "POST", url+"/v1/mgmt/audit/search", bearer(w.p1, w.p1Reader), `{"actions":["Theirs"]}`)
		if st != http.StatusOK || !bytes.Contains(body, []byte(`"total":0`)) {
			t.Fatalf("P1 reader searching company 2's action: %d %s", st, body)
		}
	})
	t.Run("tail", func(t *testing.T) {
		checkTail(t, w)
	})
	t.Run("streams", func(t *testing.T) {
		checkStreams(t, w)
	})
	t.Run("reader cannot write or administer", func(t *testing.T) {
		before := countAll(t, w)
		writes := []struct{ method, path, body string }{
			{"POST", "/v1/mgmt/audit/event", `{"action":"A","actorId":"a","type":"info"}`},
			{"POST", "/v1/mgmt/audit/events", `{"events":[{"action":"A","actorId":"a","type":"info"}]}`},
			{"POST", "/v1/mgmt/audit/scim", `{"method":"POST","path":"/Users","request":{}}`},
		}
		admin := []struct{ method, path, body string }{
			{"GET", "/v1/mgmt/projects", ""},
			{"POST", "/v1/mgmt/projects", `{"name":"x"}`},
			{"DELETE", "/v1/mgmt/projects/" + w.p2, ""},
			{"GET", "/v1/mgmt/keys", ""},
			{"POST", "/v1/mgmt/keys", `{"name":"x","role":"admin","projectIds":[]}`},
			{"POST", "/v1/mgmt/keys/" + w.p1ReaderID + "/rotate", ""},
			{"POST", "/v1/mgmt/keys/" + w.p1ReaderID + "/revoke", ""},
			{"GET", "/v1/mgmt/company/settings", ""},
			{"PATCH", "/v1/mgmt/company/settings", `{"retentionDays":1}`},
		}
		writes = append(writes, []struct{ method, path, body string }{
			{"POST", "/v1/mgmt/connectors", `{"name":"x","type":"webhook","config":{"url":"http://127.0.0.1:9/"}}`},
			{"POST", "/v2/mgmt/connector/audit/web/set", `{"name":"x","url":"http://127.0.0.1:9/"}`},
			{"GET", "/v1/mgmt/connectors", ""},
		}...)
		for _, c := range append(slices.Clone(writes), admin...) {
			if st, body := rawCall(t, c.method, url+c.path, bearer(w.p1, w.p1Reader), c.body); st != http.StatusForbidden {
				t.Fatalf("reader %s %s: %d %s, want 403", c.method, c.path, st, body)
			}
		}
		for _, c := range admin {
			if st, body := rawCall(t, c.method, url+c.path, bearer(w.p1, w.p1Writer), c.body); st != http.StatusForbidden {
				t.Fatalf("writer %s %s: %d %s, want 403", c.method, c.path, st, body)
			}
		}
		if after := countAll(t, w); after != before {
			t.Fatalf("refused calls changed the trail: %d events before, %d after", before, after)
		}
		// The reader key is still there and still a reader.
		if st, _ := rawCall(t, "POST", url+"/v1/mgmt/audit/search", bearer(w.p1, w.p1Reader), `{}`); st != http.StatusOK {
			t.Fatalf("reader key changed by the refused calls: %d", st)
		}
	})
	t.Run("revoked, rotated and expired keys are refused at once", func(t *testing.T) {
		checkRevocation(t, w.inst, w.inst, w.p1)
	})
}

// everything returns the ids of every event key sees through the projects
// named (company-level ones included).
func everything(t *testing.T, url, key string, projects ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, p := range projects {
		st, body := rawCall(t, "POST", url+"/v1/mgmt/audit/export?format=ndjson", bearer(p, key), `{}`)
		if st != http.StatusOK {
			t.Fatalf("export: %d %s", st, body)
		}
		for line := range bytes.Lines(body) {
			var ev struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(line, &ev) == nil && ev.ID != "" {
				out[ev.ID] = true
			}
		}
	}
	return out
}

// receiver is a webhook destination that remembers the ids it was sent.
type receiver struct {
	mu  sync.Mutex
	ids map[string]bool
	srv *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{ids: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Audits []struct {
				ID string `json:"id"`
			} `json:"audits"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, a := range body.Audits {
			rc.ids[a.ID] = true
		}
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) seen() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return maps.Clone(rc.ids)
}

// checkStreams: a connector made with P1's writer key delivers P1's events
// only; another company's connector never gets company 1's; neither can
// be read or changed with the other's keys.
func checkStreams(t *testing.T, w *world) {
	ctx := context.Background()
	url := w.inst.URL
	mk := func(auth, name, level, target string) string {
		st, body := rawCall(t, "POST", url+"/v1/mgmt/connectors", auth,
			fmt.Sprintf(`{"name":%q,"type":"webhook","level":%q,"config":{"url":%q}}`, name, level, target))
		var v struct {
			ID        string `json:"id"`
			ProjectID string `json:"projectId"`
		}
		if st != http.StatusCreated || json.Unmarshal(body, &v) != nil || v.ID == "" {
			t.Fatalf("create connector %s: %d %s", name, st, body)
		}
		return v.ID
	}
	p1Recv, c2Recv := newReceiver(t), newReceiver(t)
	// A project key may not stream company-level events.
	if st, body := rawCall(t, "POST", url+"/v1/mgmt/connectors", bearer(w.p1, w.p1Writer),
		fmt.Sprintf(`{"name":"p1 both","type":"webhook","level":"both","config":{"url":%q}}`, p1Recv.srv.URL)); st != http.StatusForbidden {
		t.Fatalf("project key streaming company-level events: %d %s", st, body)
	}
	p1Conn := mk(bearer(w.p1, w.p1Writer), "p1 stream", "project", p1Recv.srv.URL)
	c2Conn := mk(bearer("", w.c2Admin), "c2 stream", "both", c2Recv.srv.URL)

	written := map[string]string{} // id → scope
	write := func(project, key, scopeName string, level client.Level) string {
		id, err := w.inst.ClientFor(t, project, key).Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "Streamed", ActorID: "a", TenantID: "t1", Type: "info", UserID: "u1", Level: level})
		if err != nil {
			t.Fatal(err)
		}
		written[id] = scopeName
		return id
	}
	for range 3 {
		write(w.p2, w.c1Admin, "p2", client.LevelProject)
		write(w.p1, w.c1Admin, "c1", client.LevelCompany)
		write(w.p3, w.c2Admin, "p3", client.LevelProject)
		write(w.p4, w.c2Admin, "p4", client.LevelProject)
		write(w.p3, w.c2Admin, "c2", client.LevelCompany)
		write(w.p1, w.p1Writer, "p1", client.LevelProject)
	}
	lastP1 := write(w.p1, w.p1Writer, "p1", client.LevelProject)
	lastC2 := write(w.p4, w.c2Admin, "p4", client.LevelProject)
	deadline := time.Now().Add(30 * time.Second)
	for !p1Recv.seen()[lastP1] || !c2Recv.seen()[lastC2] {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries did not arrive: P1 got %d, C2 got %d", len(p1Recv.seen()), len(c2Recv.seen()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := p1Recv.seen()
	for id := range got {
		if sc, ok := written[id]; !ok || sc != "p1" {
			t.Fatalf("P1's connector delivered event %s of scope %q", id, sc)
		}
	}
	for id, sc := range written {
		if sc == "p1" && !got[id] {
			t.Fatalf("P1's connector missed its event %s", id)
		}
	}
	c2Reader := w.inst.ClientFor(t, w.p3, w.c2Admin)
	for id := range c2Recv.seen() {
		if sc, ok := written[id]; ok {
			if sc != "p3" && sc != "p4" && sc != "c2" {
				t.Fatalf("company 2's connector delivered event %s of scope %q", id, sc)
			}
			continue
		}
		// Besides what was written: the ConnectorCreated company 2
		// recorded for its own connector, readable with its key alone.
		if r, err := c2Reader.Audit().Get(ctx, id); err != nil || r.Action != "ConnectorCreated" || r.Level != client.LevelCompany || r.Data["connectorId"] != c2Conn {
			t.Fatalf("company 2's connector delivered event %s, not written here nor its own ConnectorCreated: %+v %v", id, r, err)
		}
	}
	// Connectors are invisible across projects and companies.
	for _, c := range []struct {
		auth, id string
	}{
		{bearer(w.p1, w.p1Writer), c2Conn},
		{bearer("", w.c1Admin), c2Conn},
		{bearer("", w.c2Admin), p1Conn},
	} {
		for _, path := range []string{"", "/health"} {
			if st, body := rawCall(t, "GET", url+"/v1/mgmt/connectors/"+c.id+path, c.auth, ""); st != http.StatusNotFound {
				t.Fatalf("GET another scope's connector%s: %d %s", path, st, body)
			}
		}
		for _, op := range []string{"/pause", "/test", "/replay"} {
			if st, body := rawCall(t, "POST", url+"/v1/mgmt/connectors/"+c.id+op, c.auth, `{"from":0}`); st != http.StatusNotFound {
				t.Fatalf("POST %s on another scope's connector: %d %s", op, st, body)
			}
		}
		if st, body := rawCall(t, "DELETE", url+"/v1/mgmt/connectors/"+c.id, c.auth, ""); st != http.StatusNotFound {
			t.Fatalf("DELETE another scope's connector: %d %s", st, body)
		}
	}
	st, body := rawCall(t, "GET", url+"/v1/mgmt/connectors", bearer(w.p1, w.p1Writer), "")
	if st != http.StatusOK || !strings.Contains(string(body), p1Conn) || strings.Contains(string(body), c2Conn) {
		t.Fatalf("P1 writer's connector list: %d %s", st, body)
	}
	for id, sc := range written {
		if sc == "p1" {
			w.sp1.ids[id] = true
		}
	}
}

// countAll is the number of events company 1's admin sees in P1 plus P2.
func countAll(t *testing.T, w *world) int {
	t.Helper()
	total := 0
	for _, p := range []string{w.p1, w.p2} {
		st, body := rawCall(t, "POST", w.inst.URL+"/v1/mgmt/audit/search", bearer(p, w.c1Admin), `{"size":1}`)
		if st != http.StatusOK {
			t.Fatalf("count: %d %s", st, body)
		}
		var ans searchAnswer
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatal(err)
		}
		total += ans.Total
	}
	return total
}

// checkTail opens the console's live tail as P1's reader, writes events
// everywhere else and then one into P1: the tail must show the P1 event
// and nothing written before it.
func checkTail(t *testing.T, w *world) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", w.inst.URL+"/v1/mgmt/audit/tail", strings.NewReader(`{}`))
	req.Header.Set("Authorization", bearer(w.p1, w.p1Reader))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("tail: %d %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && sc.Text() != "event: ready" {
	}
	foreign := map[string]bool{}
	for _, c := range []struct{ project, key string }{{w.p2, w.c1Admin}, {w.p3, w.c2Admin}, {w.p4, w.c2Admin}} {
		id, err := w.inst.ClientFor(t, c.project, c.key).Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "TailForeign", ActorID: "a", TenantID: "t1", Type: "info", UserID: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		foreign[id] = true
	}
	for _, c := range []struct{ project, key string }{{w.p1, w.c1Admin}, {w.p3, w.c2Admin}} {
		id, err := w.inst.ClientFor(t, c.project, c.key).Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "TailForeign", ActorID: "a", TenantID: "t1", Type: "info", Level: client.LevelCompany})
		if err != nil {
			t.Fatal(err)
		}
		foreign[id] = true
	}
	mine, err := w.inst.ClientFor(t, w.p1, w.p1Writer).Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "TailMine", ActorID: "a", TenantID: "t1", Type: "info", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.ID == "" {
			continue
		}
		if foreign[ev.ID] {
			t.Fatalf("P1 reader's tail showed event %s of another scope", ev.ID)
		}
		if ev.ID == mine {
			w.sp1.ids[mine] = true
			return
		}
	}
	t.Fatalf("tail ended before P1's event: %v", sc.Err())
}

// checkRevocation makes keys on a (through its admin API), then revokes,
// rotates and lets expire them there, and checks each is refused by b at
// the very next request.
func checkRevocation(t *testing.T, a, b *servertest.Instance, project string) {
	ctx := context.Background()
	admin := a.Client(t)
	search := func(key string) int {
		st, _ := rawCall(t, "POST", b.URL+"/v1/mgmt/audit/search", bearer(project, key), `{"size":1}`)
		return st
	}
	k, secret, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "to revoke", Role: "reader", ProjectIDs: []string{project}})
	if err != nil {
		t.Fatal(err)
	}
	if st := search(secret); st != http.StatusOK {
		t.Fatalf("new key: %d", st)
	}
	if _, err := admin.Keys().Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if st := search(secret); st != http.StatusUnauthorized {
		t.Fatalf("revoked key answered %d, want 401", st)
	}

	k, old, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "to rotate", Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	if st := search(old); st != http.StatusOK {
		t.Fatalf("new key: %d", st)
	}
	_, rotated, err := admin.Keys().Rotate(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := search(old); st != http.StatusUnauthorized {
		t.Fatalf("rotated-away key answered %d, want 401", st)
	}
	if st := search(rotated); st != http.StatusOK {
		t.Fatalf("rotated key: %d", st)
	}

	_, expiring, err := admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "expiring", Role: "reader", ExpiresIn: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	if st := search(expiring); st != http.StatusOK && time.Now().Before(deadline) {
		t.Fatalf("key before expiry: %d", st)
	}
	time.Sleep(time.Until(deadline) + 50*time.Millisecond)
	if st := search(expiring); st != http.StatusUnauthorized {
		t.Fatalf("expired key answered %d, want 401", st)
	}
}

// TestIsolationPostgresFleet: with --store postgres, two servers on one
// fresh database: a project key of one sees nothing of other projects
// through either, and a key revoked through one is refused by the other
// at once.
func TestIsolationPostgresFleet(t *testing.T) {
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("needs PostgreSQL: set AUDITTRAIL_INTEGRATION=1")
	}
	w := newWorld(t, servertest.Options{Store: servertest.StorePostgres})
	second := servertest.Start(t, servertest.Options{Store: servertest.StorePostgres, PostgresURL: string(w.inst.Config.PostgresURL),
		DataDir: w.inst.Config.DataDir})
	for _, inst := range []*servertest.Instance{w.inst, second} {
		got := checkSees(t, inst.URL, bearer(w.p1, w.p1Reader), union(w.sp1), nil, "P1 reader")
		if got != len(w.sp1.ids) {
			t.Fatalf("P1 reader counts %d of its %d events", got, len(w.sp1.ids))
		}
		checkSees(t, inst.URL, bearer(w.p3, w.c2Admin), nil, union(w.sp1, w.sp2, w.sp4, w.sc1), "C2 admin on P3")
	}
	checkRevocation(t, w.inst, second, w.p1)
	checkRevocation(t, second, w.inst, w.p1)
}
