package streamhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/catalog"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/server/servertest"
)

// TestConnectorCallsAreAudited: every connector call records its
// company-level event, of the catalogue's type, naming the connector and
// the calling key, and no event holds a secret or the destination: the
// bearer token, the HMAC secret, the password in the URL and the URL
// itself appear nowhere in the stored events.
func TestConnectorCallsAreAudited(t *testing.T) {
	h := newHook(t)
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	c := inst.ClientFor(t, "", inst.Creds.ManagementKey)
	project := inst.Creds.ProjectID
	const password = "pw-s3cr3t-789"
	host := strings.TrimPrefix(h.srv.URL, "http://")
	withPassword := "http://siem-user:" + password + "@" + host + "/ingest"
	config := h.config()
	config["url"] = withPassword

	type call struct {
		action string
		id     string
		check  func(data map[string]any) bool
	}
	var want []call
	v, err := c.Connectors().Create(ctx, client.ConnectorOptions{Name: "siem", Type: client.ConnectorWebhook, ProjectID: project, Config: config})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorCreated", v.ID, func(d map[string]any) bool {
		return d["name"] == "siem" && d["type"] == "webhook" && d["projectId"] == project
	}})
	// Echoing the redacted config changes nothing in it.
	if _, err := c.Connectors().Update(ctx, v.ID, client.ConnectorOptions{Name: "siem2", Config: v.Config, ProjectID: project}); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorModified", v.ID, func(d map[string]any) bool {
		return d["name"] == "siem2" && strings.Join(asStrings(d["changed"]), ",") == "name"
	}})
	// A new secret is a config change, named but not shown.
	config["hmacSecret"] = secret + "-new"
	if _, err := c.Connectors().Update(ctx, v.ID, client.ConnectorOptions{Name: "siem2", Config: config, ProjectID: project}); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorModified", v.ID, func(d map[string]any) bool {
		return strings.Join(asStrings(d["changed"]), ",") == "config"
	}})
	if _, err := c.Connectors().Pause(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorPaused", v.ID, nil})
	if _, err := c.Connectors().Resume(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorResumed", v.ID, nil})
	// The receiver refuses the new secret, so the test fails, and its
	// error (which may quote the destination) stays out of the event.
	if err := c.Connectors().Test(ctx, v.ID); err == nil {
		t.Fatal("a test with a secret the receiver refuses succeeded")
	}
	want = append(want, call{"ConnectorTested", v.ID, func(d map[string]any) bool { return d["ok"] == false }})
	from := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	if _, err := c.Connectors().Replay(ctx, v.ID, from); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorReplayed", v.ID, func(d map[string]any) bool {
		_, hasCursor := d["cursor"]
		return d["from"] == from.Format(time.RFC3339Nano) && hasCursor
	}})
	if err := c.Connectors().Delete(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorDeleted", v.ID, nil})
	// Descope's createAuditWebhook, company-wide: created, then updated.
	hook := client.AuditWebhook{Name: "descope", URL: withPassword, HMACSecret: secret,
		Authentication: &client.WebhookAuthentication{BearerToken: bearer}}
	id, err := c.Connectors().SetAuditWebhook(ctx, hook)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorCreated", id, func(d map[string]any) bool { return d["projectId"] == "" }})
	hook.Description = "again"
	if _, err := c.Connectors().SetAuditWebhook(ctx, hook); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorModified", id, func(d map[string]any) bool {
		// The secrets sent again are counted as a possible config change.
		return strings.Join(asStrings(d["changed"]), ",") == "description,config"
	}})
	if err := c.Connectors().Test(ctx, id); err != nil {
		t.Fatal(err)
	}
	want = append(want, call{"ConnectorTested", id, func(d map[string]any) bool { return d["ok"] == true }})

	// Every stored event, both levels, as the export writes them.
	var buf bytes.Buffer
	if _, err := inst.Client(t).Audit().Export(ctx, client.ExportOptions{SearchOptions: client.SearchOptions{
		Levels: []client.Level{client.LevelCompany, client.LevelProject}, OldestFirst: true}}, client.FormatNDJSON, &buf); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{bearer, secret, password, "siem-user", host, "/ingest"} {
		if strings.Contains(buf.String(), leak) {
			t.Errorf("a stored event holds %q", leak)
		}
	}
	var got []client.Record
	for line := range strings.Lines(buf.String()) {
		var r client.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if strings.HasPrefix(r.Action, "Connector") {
			got = append(got, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %d connector events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		r := got[i]
		a, known := catalog.Lookup(w.action)
		if r.Action != w.action || r.Data["connectorId"] != w.id || !known || r.Type != a.Type || r.Level != client.LevelCompany ||
			r.ActorID == "" || r.ProjectID != "" || (w.check != nil && !w.check(r.Data)) {
			t.Errorf("event %d: got %s %s %s actor %q data %v, want %s of %s", i, r.Action, r.Type, r.Level, r.ActorID, r.Data, w.action, w.id)
		}
		for k := range r.Data {
			if !slices.Contains(a.DataKeys, k) {
				t.Errorf("%s: data key %q not in the catalogue", r.Action, k)
			}
		}
	}
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i], _ = x.(string)
	}
	return out
}

// TestAutoPauseIsAudited: a connector whose destination keeps failing
// pauses itself, and the trail records it once, as ConnectorAutoPaused by
// the server itself, naming the connector and not the destination.
func TestAutoPauseIsAudited(t *testing.T) {
	var attempts atomic.Int64
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(dead.Close)
	const pauseAfter = 300 * time.Millisecond
	inst := servertest.Start(t, servertest.Options{Configure: func(c *config.Config) { c.StreamAutoPauseAfter = pauseAfter }})
	ctx := context.Background()
	c := inst.ClientFor(t, "", inst.Creds.ManagementKey)
	hookPath := "/hook-path-4471"
	v, err := c.Connectors().Create(ctx, client.ConnectorOptions{Name: "doomed", Type: client.ConnectorWebhook,
		ProjectID: inst.Creds.ProjectID, Config: map[string]any{"url": dead.URL + hookPath}})
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, inst.Client(t), client.Record{ProjectID: inst.Creds.ProjectID, Action: "LoginSucceed", ActorID: "a", UserID: "u1"})
	wait(t, "the connector to pause itself", func() bool {
		h, err := c.Connectors().Health(ctx, v.ID)
		return err == nil && h.State == client.ConnectorAutoPaused
	})
	var recs []client.Record
	wait(t, "ConnectorAutoPaused in the trail", func() bool {
		recs, err = inst.Client(t).Audit().Search(ctx, client.SearchOptions{Actions: []string{"ConnectorAutoPaused"}, Levels: []client.Level{client.LevelCompany}})
		return err == nil && len(recs) > 0
	})
	// Paused, it tries no more, so no second event follows.
	tried := attempts.Load()
	time.Sleep(2 * pauseAfter)
	recs, err = inst.Client(t).Audit().Search(ctx, client.SearchOptions{Actions: []string{"ConnectorAutoPaused"}, Levels: []client.Level{client.LevelCompany}})
	if err != nil || len(recs) != 1 || attempts.Load() != tried {
		t.Fatalf("after the pause: %d ConnectorAutoPaused events (%v), attempts %d then %d", len(recs), err, tried, attempts.Load())
	}
	r := recs[0]
	a, known := catalog.Lookup("ConnectorAutoPaused")
	failing, _ := r.Data["failingForSeconds"].(float64)
	if !known || r.Type != a.Type || r.Type != "warn" || r.ActorID != "audittrail" || r.ProjectID != "" ||
		r.Data["connectorId"] != v.ID || r.Data["name"] != "doomed" || r.Data["projectId"] != inst.Creds.ProjectID || failing < 0 {
		t.Fatalf("recorded %+v", r)
	}
	raw, _ := json.Marshal(r)
	for _, leak := range []string{hookPath, strings.TrimPrefix(dead.URL, "http://"), "maintenance"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the event holds %q: %s", leak, raw)
		}
	}
	// Resuming is a management call like any other, so it is recorded too.
	if _, err := c.Connectors().Resume(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if recs, err := inst.Client(t).Audit().Search(ctx, client.SearchOptions{Actions: []string{"ConnectorResumed"}, Levels: []client.Level{client.LevelCompany}}); err != nil || len(recs) != 1 {
		t.Fatalf("ConnectorResumed after the auto-pause: %d (%v)", len(recs), err)
	}
}
