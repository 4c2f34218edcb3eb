package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/audittrail/audittrail/internal/server/servertest"
)

// TestConnectorsAgainstServer drives every connectors subcommand against
// the real server, with a webhook receiver that counts what it gets.
func TestConnectorsAgainstServer(t *testing.T) {
	var received, refuse atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() == 1 {
			http.Error(w, "nope", http.StatusUnauthorized)
			return
		}
		var body struct {
			Audits []json.RawMessage `json:"audits"`
		}
		if json.NewDecoder(r.Body).Decode(&body) == nil {
			received.Add(int64(len(body.Audits)))
		}
	}))
	defer recv.Close()
	inst := servertest.Start(t, servertest.Options{})
	c := cliRun{vars: map[string]string{"AUDITTRAIL_URL": inst.URL, "AUDITTRAIL_PROJECT_ID": inst.Creds.ProjectID,
		"AUDITTRAIL_MANAGEMENT_KEY": inst.Creds.ManagementKey, "AUDITTRAIL_DATA_DIR": "/nonexistent"}}
	ok := func(args ...string) string {
		t.Helper()
		res := c.run(t, args...)
		if res.code != 0 {
			t.Fatalf("%q: exit %d, stderr %q", args, res.code, res.stderr)
		}
		return res.stdout
	}

	out := ok("connectors", "create", "--name", "siem", "--type", "webhook", "--mask-pii", "--action", "LoginFailed,LoginSucceed",
		"--exclude-tenant", "t9", "--config", `{"url":"`+recv.URL+`","authentication":{"bearerToken":"tok-123"}}`)
	id := regexp.MustCompile(`created connector (\S+) \(siem, webhook\)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("create output %q", out)
	}
	list := ok("connectors", "list")
	if !strings.Contains(list, id[1]) || !strings.Contains(list, "webhook") || !strings.Contains(list, "active") {
		t.Fatalf("list:\n%s", list)
	}
	got := ok("connectors", "get", id[1])
	if strings.Contains(got, "tok-123") || !strings.Contains(got, `"bearerToken": "REDACTED"`) || !strings.Contains(got, `"maskPII": true`) {
		t.Fatalf("get shows the secret or lost a field:\n%s", got)
	}
	if out := ok("connectors", "test", id[1]); !strings.Contains(out, "acknowledged") || received.Load() != 1 {
		t.Fatalf("test: %q, received %d", out, received.Load())
	}
	if out := ok("connectors", "pause", id[1]); !strings.Contains(out, "is paused") {
		t.Fatalf("pause: %q", out)
	}
	if out := ok("connectors", "resume", id[1]); !strings.Contains(out, "is active") {
		t.Fatalf("resume: %q", out)
	}
	if out := ok("connectors", "replay", id[1], "--from", "2026-11-25T00:00:00Z"); !strings.Contains(out, "replays from 2026-11-25T00:00:00Z") {
		t.Fatalf("replay: %q", out)
	}

	// A destination that refuses: exit 1 with the destination's answer.
	refuse.Store(1)
	res := c.run(t, "connectors", "test", id[1])
	if res.code != 1 || !strings.Contains(res.stderr, "401") || !strings.Contains(res.stderr, "HTTP 502") {
		t.Fatalf("failing test: exit %d, stderr %q", res.code, res.stderr)
	}
	res = c.run(t, "connectors", "replay", id[1])
	if res.code != 2 || !strings.Contains(res.stderr, "--from is required") {
		t.Fatalf("replay without --from: exit %d, %q", res.code, res.stderr)
	}
	res = c.run(t, "connectors", "create", "--name", "x", "--type", "webhook", "--config", "{nope")
	if res.code != 2 {
		t.Fatalf("bad --config: exit %d, %q", res.code, res.stderr)
	}
	res = c.run(t, "connectors", "create", "--name", "x", "--type", "pigeon", "--config", "{}")
	if res.code != 1 || !strings.Contains(res.stderr, "type: unknown destination") {
		t.Fatalf("unknown type: exit %d, %q", res.code, res.stderr)
	}

	if out := ok("connectors", "delete", id[1]); !strings.Contains(out, "deleted connector "+id[1]) {
		t.Fatalf("delete: %q", out)
	}
	res = c.run(t, "connectors", "get", id[1])
	if res.code != 1 || !strings.Contains(res.stderr, "HTTP 404") {
		t.Fatalf("get after delete: exit %d, %q", res.code, res.stderr)
	}
}
