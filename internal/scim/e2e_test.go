package scim_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/catalog"
	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/scim"
	"github.com/audittrail/audittrail/internal/server"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/postgres"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// fixture is a testdata/scim file as the end-to-end test needs it.
type fixture struct {
	name string
	Op   struct {
		Method         string                 `json:"method"`
		Path           string                 `json:"path"`
		Request        json.RawMessage        `json:"request"`
		Result         json.RawMessage        `json:"result"`
		Error          json.RawMessage        `json:"error"`
		Previous       json.RawMessage        `json:"previous"`
		ActorID        string                 `json:"actorId"`
		TenantID       string                 `json:"tenantId"`
		RequestContext *client.RequestContext `json:"requestContext"`
	} `json:"operation"`
	Want struct {
		Action      string         `json:"scim_action"`
		Type        string         `json:"type"`
		UserID      string         `json:"userId"`
		ExternalIDs []string       `json:"externalIds"`
		Change      map[string]any `json:"Change"`
	} `json:"want"`
	id string
}

// serve starts a real API over an embedded store, bootstrapped like a first
// start, with the SCIM and catalogue routes mounted.
// appended counts AfterAppend calls of every server the tests start.
var appended atomic.Int64

func serve(t *testing.T, backend string) (*client.Client, server.Credentials, string) {
	t.Helper()
	dataDir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	var (
		st  store.Store
		dir tenancy.Directory
		err error
	)
	switch backend {
	case "embedded":
		if st, err = embedded.Open(embedded.Options{Dir: filepath.Join(dataDir, "events"), Logger: log}); err != nil {
			t.Fatal(err)
		}
		if dir, err = tenancy.OpenFileDirectory(filepath.Join(dataDir, "tenancy.json")); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		url := pgtest.NewDatabase(t) // skips unless AUDITTRAIL_INTEGRATION=1
		db, err := postgres.Open(context.Background(), postgres.Options{URL: url, MaxConns: 4, MaintenanceInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		st, dir = db.Store(), db.Directory()
	}
	if err := server.Bootstrap(context.Background(), dir, dataDir, io.Discard, log); err != nil {
		t.Fatal(err)
	}
	creds, err := server.ReadBootstrap(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	en, err := enrich.New(enrich.Options{CountryHeader: "cf-ipcountry", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Options{
		Store: st, Directory: dir, Keys: tenancy.Issuer{}, Logger: log,
		Authenticate: func(ctx context.Context, key string) (tenancy.Key, error) {
			return tenancy.AuthenticateKey(ctx, dir, key)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	scim.Register(api, scim.Deps{Store: st, Enricher: en, AfterAppend: func() { appended.Add(1) }})
	catalog.Register(api)
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		st.Close()
		dir.Close()
		en.Close()
	})
	c, err := client.New(client.Config{BaseURL: srv.URL, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	if err != nil {
		t.Fatal(err)
	}
	return c, creds, srv.URL
}

func loadFixtures(t *testing.T) []*fixture {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "scim", "*.json"))
	var out []*fixture
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f := &fixture{name: filepath.Base(p)}
		if err := json.Unmarshal(b, f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, f)
	}
	if len(out) < 15 {
		t.Fatalf("%d fixtures", len(out))
	}
	return out
}

func rawOrNil(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return r
}

func TestSCIMEndToEnd(t *testing.T) {
	for _, backend := range []string{"embedded", "postgres"} {
		t.Run(backend, func(t *testing.T) { testEndToEnd(t, backend) })
	}
}

func testEndToEnd(t *testing.T, backend string) {
	c, _, _ := serve(t, backend)
	ctx := context.Background()
	fixtures := loadFixtures(t)
	start := time.Now().Add(-time.Minute)
	before := appended.Load()
	for i, f := range fixtures {
		op := client.SCIMOperation{
			Method: f.Op.Method, Path: f.Op.Path, Request: rawOrNil(f.Op.Request), Result: rawOrNil(f.Op.Result),
			Error: rawOrNil(f.Op.Error), Previous: rawOrNil(f.Op.Previous), ActorID: f.Op.ActorID,
			TenantID: f.Op.TenantID, RequestContext: f.Op.RequestContext,
			Occurred: start.Add(time.Duration(i) * time.Second),
		}
		id, err := c.Audit().RecordSCIM(ctx, op)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		f.id = id
	}
	if n := appended.Load() - before; n != int64(len(fixtures)) {
		t.Errorf("AfterAppend called %d times for %d events", n, len(fixtures))
	}
	// A UserModified row built with the SDK's helper, to check the two
	// producers of Change are searched alike.
	change := client.UserChange(client.User{Name: "Old"}, client.User{Name: "Quetzal New", Roles: []string{"auditor"}}, client.ChangeOptions{})
	modID, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "UserModified", Type: "info", ActorID: "admin-1",
		TenantID: "acme", UserID: "u-okta-9", Data: map[string]any{"Change": change}})
	if err != nil {
		t.Fatal(err)
	}

	ids := func(opts client.SearchOptions) []string {
		t.Helper()
		recs, total, err := c.Audit().SearchAll(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if total != len(recs) {
			t.Fatalf("total %d for %d records", total, len(recs))
		}
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = r.ID
		}
		sort.Strings(out)
		return out
	}
	want := func(pred func(f *fixture) bool, extra ...string) []string {
		out := slices.Clone(extra)
		for _, f := range fixtures {
			if pred(f) {
				out = append(out, f.id)
			}
		}
		sort.Strings(out)
		return out
	}
	hasChange := func(keys ...string) func(f *fixture) bool {
		return func(f *fixture) bool {
			for _, k := range keys {
				if _, ok := f.Want.Change[k]; ok {
					return true
				}
			}
			return false
		}
	}
	all := func(*fixture) bool { return true }
	for name, tc := range map[string]struct {
		opts client.SearchOptions
		want []string
	}{
		"changedFields members":  {client.SearchOptions{ChangedFields: []string{"added_members", "removed_members"}}, want(hasChange("added_members", "removed_members"))},
		"changedFields status":   {client.SearchOptions{ChangedFields: []string{"status"}}, want(hasChange("status"))},
		"changedFields custom":   {client.SearchOptions{ChangedFields: []string{"custom_attribute_department"}}, want(hasChange("custom_attribute_department"))},
		"changedFields password": {client.SearchOptions{ChangedFields: []string{"password"}}, want(hasChange("password"))},
		"changedFields sdk":      {client.SearchOptions{ChangedFields: []string{"display_name"}}, want(hasChange("display_name"), modID)},
		"changedFields roles":    {client.SearchOptions{ChangedFields: []string{"added_roles"}}, want(hasChange("added_roles"), modID)},
		"action":                 {client.SearchOptions{Actions: []string{catalog.SCIMEvent}}, want(all)},
		"excluded":               {client.SearchOptions{ExcludedActions: []string{catalog.SCIMEvent}}, []string{modID}},
		"userIds": {client.SearchOptions{UserIDs: []string{"u-okta-1"}},
			want(func(f *fixture) bool { return f.Want.UserID == "u-okta-1" })},
		"actorIds": {client.SearchOptions{ActorIDs: []string{"entra-provisioning"}},
			want(func(f *fixture) bool { return f.Op.ActorID == "entra-provisioning" })},
		"tenants": {client.SearchOptions{Tenants: []string{"globex"}},
			want(func(f *fixture) bool { return f.Op.TenantID == "globex" })},
		"externalIds": {client.SearchOptions{LoginIDs: []string{"hank.scorpio@globex.example"}},
			want(func(f *fixture) bool { return slices.Contains(f.Want.ExternalIDs, "hank.scorpio@globex.example") })},
		"methods": {client.SearchOptions{Methods: []string{"scim"}}, want(all)},
		"devices": {client.SearchOptions{Devices: []string{"Unknown"}},
			want(func(f *fixture) bool { return f.Op.RequestContext != nil && f.Op.RequestContext.UserAgent != "" })},
		"remoteAddresses": {client.SearchOptions{RemoteAddresses: []string{"203.0.113.9"}},
			want(func(f *fixture) bool { return f.Op.RequestContext != nil && f.Op.RequestContext.IP == "203.0.113.9" })},
		"text action": {client.SearchOptions{Text: "GroupMembersAdded"},
			want(func(f *fixture) bool { return f.Want.Action == "GroupMembersAdded" })},
		"text change value": {client.SearchOptions{Text: "updatedFamilyName"},
			want(func(f *fixture) bool { return f.name == "entra-patch-user.json" })},
		"text two words": {client.SearchOptions{Text: "quetzalli person"},
			want(func(f *fixture) bool { return f.name == "okta-update-user-put.json" })},
		"text no secret": {client.SearchOptions{Text: "oktasecret"}, nil},
		"text filter": {client.SearchOptions{Text: "Test_User_ab6490ee", Actions: []string{catalog.SCIMEvent}},
			want(func(f *fixture) bool {
				return slices.Contains(f.Want.ExternalIDs, "Test_User_ab6490ee@contoso.example") || f.Want.Action == "UsersListed"
			})},
		"time window": {client.SearchOptions{From: start.Add(2 * time.Second), To: start.Add(4 * time.Second)},
			[]string{fixtures[2].id, fixtures[3].id, fixtures[4].id}},
		"combined": {client.SearchOptions{Tenants: []string{"contoso"}, ChangedFields: []string{"status"}, Text: "disabled"},
			want(func(f *fixture) bool { return f.Op.TenantID == "contoso" && hasChange("status")(f) })},
	} {
		got := ids(tc.opts)
		w := tc.want
		sort.Strings(w)
		if len(w) == 0 && name != "text no secret" {
			t.Errorf("%s: the test expects nothing; the fixtures should give it something to find", name)
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: got %d %v, want %d %v", name, len(got), got, len(w), w)
		}
	}

	// The stored row of a fixture as search returns it.
	rec, err := c.Audit().Get(ctx, fixtures[0].id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Action != catalog.SCIMEvent || rec.Data["scim_action"] == nil || rec.Method != "scim" {
		t.Errorf("record %+v", rec)
	}
	var okta *fixture
	for _, f := range fixtures {
		if f.name == "okta-create-user.json" {
			okta = f
		}
	}
	rec, err = c.Audit().Get(ctx, okta.id)
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := rec.Data["request_details"].(map[string]any)
	if rec.RemoteAddress != "203.0.113.9" || rec.Device != "Unknown" || rd == nil || rd["method"] != "POST" {
		t.Errorf("enrichment: %+v", rec)
	}
	if b, _ := json.Marshal(rec.Data); slices.ContainsFunc([]string{"oktasecret", "1mz050nq"}, func(s string) bool { return contains(string(b), s) }) {
		t.Errorf("a secret was stored: %s", b)
	}

	// The catalogue.
	actions, err := c.Audit().Actions(ctx)
	if err != nil || len(actions) != len(catalog.All()) {
		t.Fatalf("actions: %d, %v", len(actions), err)
	}

	// A bad operation is refused in Descope's error format.
	_, err = c.Audit().RecordSCIM(ctx, client.SCIMOperation{Method: "PATCH", Path: "/Users/1", Request: map[string]any{"Operations": "x"}})
	var apiErr *client.Error
	if !asError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.ErrorCode != httpapi.CodeInvalidArgument {
		t.Errorf("bad PATCH: %v", err)
	}
}

func TestSCIMNeedsWriter(t *testing.T) {
	c, creds, url := serve(t, "embedded")
	ctx := context.Background()
	_, secret, err := c.Keys().Create(ctx, client.CreateKeyOptions{Name: "ro", Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := client.New(client.Config{BaseURL: url, ProjectID: creds.ProjectID, ManagementKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = reader.Audit().RecordSCIM(ctx, client.SCIMOperation{Method: "DELETE", Path: "/Users/1"})
	var apiErr *client.Error
	if !asError(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Fatalf("reader recorded a SCIM event: %v", err)
	}
	if _, err := reader.Audit().Actions(ctx); err != nil {
		t.Fatalf("reader cannot read the catalogue: %v", err)
	}
}
