package enrich_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/server"
)

const iPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"

// TestServerEnrichesIngest runs `audittrail serve` in-process with
// --geoip-db and --country-header and ingests through the SDK.
func TestServerEnrichesIngest(t *testing.T) {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.RetentionInterval = 0
	cfg.GeoIPDB = enrich.WriteGeoDB(t)
	cfg.CountryHeader = "cf-ipcountry"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, server.RunOptions{Logger: slog.New(slog.DiscardHandler), Listener: ln})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server not healthy in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	creds, err := server.ReadBootstrap(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{BaseURL: base, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	if err != nil {
		t.Fatal(err)
	}

	id, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "LoginSucceed", Type: "info", ActorID: "u1", TenantID: "t1",
		RequestContext: &client.RequestContext{IP: "203.0.113.9", UserAgent: iPhone, Method: "POST", URL: "https://app.example.com/login",
			Headers: map[string]string{"Authorization": "Bearer sekrit", "Origin": "https://app.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.Audit().Ingest(ctx, []client.Record{
		{Action: "LoginFailed", Type: "warn", RequestContext: &client.RequestContext{IP: "192.0.2.1", UserAgent: "curl/8.4.0",
			Headers: map[string]string{"CF-IPCountry": "GB", "Cookie": "sid=sekrit"}}},
		{Action: "LoginFailed", Type: "warn", Device: "Desktop", Geo: "JP", RequestContext: &client.RequestContext{IP: "198.51.100.2", UserAgent: iPhone}},
		{Action: "LoginStarted"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, device, geo, ip string
		details             bool
	}{
		{id, "Mobile", "IL", "203.0.113.9", true},
		{ids[0], "Bot", "GB", "192.0.2.1", true},
		{ids[1], "Desktop", "JP", "198.51.100.2", true},
		{ids[2], "", "", "", false},
	} {
		r, err := c.Audit().Get(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		_, hasDetails := r.Data["request_details"]
		if r.Device != tc.device || r.Geo != tc.geo || r.RemoteAddress != tc.ip || hasDetails != tc.details {
			t.Errorf("%s: device %q geo %q ip %q details %v, want %+v", r.Action, r.Device, r.Geo, r.RemoteAddress, hasDetails, tc)
		}
		if b, _ := json.Marshal(r.Data); strings.Contains(string(b), "sekrit") {
			t.Errorf("a credential was stored: %s", b)
		}
		if _, ok := r.Data["requestContext"]; ok {
			t.Error("the request context was stored as such")
		}
	}
	// The enriched fields are searchable like any other.
	for _, tc := range []struct {
		opts client.SearchOptions
		want int
	}{
		{client.SearchOptions{Devices: []string{"Bot"}}, 1},
		{client.SearchOptions{Geos: []string{"IL", "GB"}}, 2},
		{client.SearchOptions{RemoteAddresses: []string{"203.0.113.9"}}, 1},
		{client.SearchOptions{Text: "iphone"}, 2},
		{client.SearchOptions{Text: "app.example.com"}, 1},
	} {
		_, total, err := c.Audit().SearchAll(ctx, tc.opts)
		if err != nil || total != tc.want {
			t.Errorf("%+v: %d, %v; want %d", tc.opts, total, err, tc.want)
		}
	}
	// A malformed context is refused, naming the field.
	_, err = c.Audit().Ingest(ctx, []client.Record{{Action: "A"}, {Action: "B", RequestContext: &client.RequestContext{IP: "nope"}}})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "events[1].requestContext") {
		t.Errorf("bad context: %v", err)
	}
	// SCIM and the catalogue are mounted.
	if _, err := c.Audit().RecordSCIM(ctx, client.SCIMOperation{Method: "DELETE", Path: "/scim/v2/Users/u9", ActorID: "okta"}); err != nil {
		t.Fatal(err)
	}
	if acts, err := c.Audit().Actions(ctx); err != nil || len(acts) == 0 {
		t.Fatalf("actions: %v", err)
	}
}
