package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

const connectorJSON = `{"id":"c1","companyId":"C1","projectId":"P1","name":"siem","type":"webhook","level":"project",
 "filters":[{"filterType":"actions","operator":"includes","values":["LoginFailed"]}],"maskPII":true,
 "config":{"url":"https://siem.example/in","hmacSecret":"REDACTED"},
 "created":"2026-11-26T01:00:00Z","updated":"2026-11-26T01:00:00Z",
 "health":{"state":"failing","breakerOpen":false,"cursor":7,"head":9,"lagEvents":2,"lagSeconds":1.5,
  "delivered":5,"batches":2,"failedAttempts":1,"failedEvents":2,"lastError":"HTTP 503","lastErrorAt":"2026-11-26T01:00:01Z"}}`

// TestConnectorWireFormat: every call sends the documented method, path
// and body, and decodes the documented answer.
func TestConnectorWireFormat(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v2/mgmt/connector/audit/web/set":
			writeJSON(w, 200, `{"id":"c1"}`)
		case "GET /v1/mgmt/connectors":
			writeJSON(w, 200, `{"connectors":[`+connectorJSON+`]}`)
		case "POST /v1/mgmt/connectors":
			writeJSON(w, 201, connectorJSON)
		case "DELETE /v1/mgmt/connectors/c1":
			w.WriteHeader(204)
		case "POST /v1/mgmt/connectors/c1/test":
			writeJSON(w, 200, `{"ok":true}`)
		case "POST /v1/mgmt/connectors/c1/replay":
			writeJSON(w, 200, `{"cursor":41}`)
		case "GET /v1/mgmt/connectors/c1/health":
			writeJSON(w, 200, `{"state":"paused","cursor":3,"head":3,"delivered":3}`)
		default:
			writeJSON(w, 200, connectorJSON)
		}
	})
	c := f.client(t, "P1")
	ctx := context.Background()

	id, err := c.Connectors().SetAuditWebhook(ctx, AuditWebhook{Name: "siem", URL: "https://siem.example/in",
		Authentication: &WebhookAuthentication{APIKey: &WebhookAPIKey{Key: "X-Key", Token: "tok"}}, HMACSecret: "s",
		Headers: map[string]string{"X-Env": "prod"}, Filters: []ConnectorFilter{{FilterType: "tenants", Operator: "excludes", Values: []string{"t9"}}}})
	if err != nil || id != "c1" {
		t.Fatalf("SetAuditWebhook: %q %v", id, err)
	}
	created, err := c.Connectors().Create(ctx, ConnectorOptions{Name: "siem", Type: ConnectorWebhook, MaskPII: true,
		Config: map[string]any{"url": "https://siem.example/in"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != "c1" || created.Health.State != ConnectorFailing || created.Health.LagEvents != 2 || created.Health.LastErrorAt.IsZero() ||
		len(created.Filters) != 1 || created.Filters[0].Values[0] != "LoginFailed" || !created.MaskPII {
		t.Fatalf("decoded connector %+v", created)
	}
	list, err := c.Connectors().List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "siem" {
		t.Fatalf("List: %+v %v", list, err)
	}
	if _, err := c.Connectors().Get(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connectors().Update(ctx, "c1", ConnectorOptions{Name: "siem2", Level: ConnectorLevelBoth}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connectors().Pause(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connectors().Resume(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Connectors().Test(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 25, 12, 0, 0, 0, time.FixedZone("x", 3600))
	if cur, err := c.Connectors().Replay(ctx, "c1", from); err != nil || cur != 41 {
		t.Fatalf("Replay: %d %v", cur, err)
	}
	if h, err := c.Connectors().Health(ctx, "c1"); err != nil || h.State != ConnectorPaused || h.Delivered != 3 {
		t.Fatalf("Health: %+v %v", h, err)
	}
	if err := c.Connectors().Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Connectors().Delete(ctx, ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("empty id: %v", err)
	}

	reqs := f.requests()
	want := []struct{ method, path, body string }{
		{"POST", "/v2/mgmt/connector/audit/web/set", `{"name":"siem","url":"https://siem.example/in","authentication":{"apiKey":{"key":"X-Key","token":"tok"}},
			"hmacSecret":"s","headers":{"X-Env":"prod"},"filters":[{"filterType":"tenants","operator":"excludes","values":["t9"]}]}`},
		{"POST", "/v1/mgmt/connectors", `{"name":"siem","type":"webhook","maskPII":true,"config":{"url":"https://siem.example/in"}}`},
		{"GET", "/v1/mgmt/connectors", ""},
		{"GET", "/v1/mgmt/connectors/c1", ""},
		// Update without a config sends none: the server keeps the current one.
		{"PUT", "/v1/mgmt/connectors/c1", `{"name":"siem2","level":"both","maskPII":false}`},
		{"POST", "/v1/mgmt/connectors/c1/pause", ""},
		{"POST", "/v1/mgmt/connectors/c1/resume", ""},
		{"POST", "/v1/mgmt/connectors/c1/test", ""},
		{"POST", "/v1/mgmt/connectors/c1/replay", `{"from":"2026-11-25T11:00:00Z"}`},
		{"GET", "/v1/mgmt/connectors/c1/health", ""},
		{"DELETE", "/v1/mgmt/connectors/c1", ""},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		r := reqs[i]
		if r.Method != w.method || r.Path != w.path {
			t.Fatalf("request %d: %s %s, want %s %s", i, r.Method, r.Path, w.method, w.path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer P1:K123.secret" {
			t.Fatalf("request %d: Authorization %q", i, got)
		}
		if w.body == "" {
			if r.Body != "" {
				t.Fatalf("request %d: unexpected body %s", i, r.Body)
			}
			continue
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %d: Content-Type %q", i, r.Header.Get("Content-Type"))
		}
		sameJSON(t, r.Body, w.body)
	}
}

// TestConnectorTestFailure: a 502 from the test route matches
// ErrDestinationFailed and keeps the server's message.
func TestConnectorTestFailure(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		writeJSON(w, 502, `{"errorCode":"E013502","errorDescription":"The destination failed or refused the delivery","errorMessage":"test delivery failed: HTTP 401"}`)
	})
	err := f.client(t, "").Connectors().Test(context.Background(), "c1")
	var apiErr *Error
	if !errors.Is(err, ErrDestinationFailed) || !errors.As(err, &apiErr) || apiErr.Message != "test delivery failed: HTTP 401" {
		t.Fatalf("test failure: %v", err)
	}
	f404 := newFake(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		writeJSON(w, 404, `{"errorCode":"E011404","errorDescription":"Not found","errorMessage":"connector not found"}`)
	})
	err = f404.client(t, "").Connectors().Test(context.Background(), "c1")
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrDestinationFailed) {
		t.Fatalf("unknown connector: %v", err)
	}
}
