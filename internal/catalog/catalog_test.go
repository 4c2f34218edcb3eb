package catalog

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

var update = flag.Bool("update", false, "rewrite docs/events.md from the catalogue")

func TestEventsDocMatchesCatalogue(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "events.md")
	want := Markdown()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/events.md disagrees with the catalogue; run go test ./internal/catalog -update")
	}
}

func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range All() {
		if seen[a.Action] {
			t.Errorf("%s listed twice", a.Action)
		}
		seen[a.Action] = true
		probe := event.Event{Action: a.Action, Type: a.Type, Level: a.Level, Occurred: 1}
		if a.Level == event.LevelProject {
			probe.ProjectID = "P"
		}
		if err := probe.Validate(); err != nil {
			t.Errorf("%s: not a valid event: %v", a.Action, err)
		}
		if a.Description == "" || a.DataKeys == nil {
			t.Errorf("%s: description or data keys missing", a.Action)
		}
	}
	// The shared contract's list must all be here, with its types.
	for name, typ := range map[string]string{
		"UserCreated": "info", "UsersCreated": "info", "UserDeleted": "info", "UsersDeleted": "info",
		"UserModified": "info", "UsersModified": "info", "AccessKeyCreated": "info", "AccessKeyDeleted": "info",
		"AccessKeyModified": "info", "AccessKeysDeleted": "info", "LoginSucceed": "info", "LoginFailed": "warn",
		"LoginExceedMaxAttempts": "warn", "LoginStarted": "info", "LoginStartedFailed": "warn", "UserRefresh": "info",
		"PermissionCreated": "info", "PermissionModified": "info", "PermissionDeleted": "warn", "SCIMEvent": "info",
		"ProjectCreated": "info", "ProjectDeleted": "warn", "ManagementKeyCreated": "info",
		"ManagementKeyRevoked": "warn", "ManagementKeyRotated": "info", "CompanySettingsModified": "info",
		"ConnectorCreated": "info", "ConnectorModified": "info", "ConnectorDeleted": "warn", "ConnectorPaused": "warn",
		"ConnectorResumed": "info", "ConnectorTested": "info", "ConnectorReplayed": "info", "ConnectorAutoPaused": "warn",
	} {
		a, ok := Lookup(name)
		if !ok || a.Type != typ {
			t.Errorf("%s: got %+v, want type %s", name, a, typ)
		}
	}
	if _, ok := Lookup("NoSuchAction"); ok {
		t.Error("Lookup found an unknown action")
	}
	// Callers get copies: changing one does not change the catalogue.
	a, _ := Lookup("LoginFailed")
	a.DataKeys[0] = "mutated"
	if b, _ := Lookup("LoginFailed"); b.DataKeys[0] == "mutated" {
		t.Error("Lookup shares its slices")
	}
}

func TestServeActions(t *testing.T) {
	rec := httptest.NewRecorder()
	serveActions(rec, httptest.NewRequest(http.MethodGet, "/v1/mgmt/audit/actions", nil))
	var body struct {
		Actions []Action `json:"actions"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Actions) != len(All()) || body.Actions[0].Action != All()[0].Action {
		t.Fatalf("served %d actions", len(body.Actions))
	}
}
