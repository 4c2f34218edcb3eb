package scim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/catalog"
	"github.com/audittrail/audittrail/internal/event"
)

// Fixture is one file of testdata/scim: an operation as an identity
// provider made it (the body of POST /v1/mgmt/audit/scim) and the row it
// must give.
type Fixture struct {
	Name        string          `json:"-"`
	IdP         string          `json:"idp"`
	Description string          `json:"description"`
	Operation   json.RawMessage `json:"operation"`
	Want        struct {
		Action      string          `json:"scim_action"`
		Type        string          `json:"type"`
		UserID      string          `json:"userId"`
		ExternalIDs []string        `json:"externalIds"`
		Change      json.RawMessage `json:"Change"`
	} `json:"want"`
}

// secrets are the credentials the fixtures send; no row may hold them.
var secrets = []string{"1mz050nq", "oktasecret", "new-okta-password-77", "another-okta-secret", "onelogin-pw-secret-99"}

func loadFixtures(t testing.TB) []Fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "scim", "*.json"))
	if err != nil || len(paths) < 15 {
		t.Fatalf("fixtures: %d files, %v", len(paths), err)
	}
	var out []Fixture
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f Fixture
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f.Name = filepath.Base(p)
		out = append(out, f)
	}
	return out
}

func TestFixtures(t *testing.T) {
	idps := map[string]bool{}
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			idps[f.IdP] = true
			e, err := DecodeRequest(f.Operation, "P1", fixedNow, nil)
			if err != nil {
				t.Fatal(err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(e.Data, &data); err != nil {
				t.Fatal(err)
			}
			var action string
			_ = json.Unmarshal(data["scim_action"], &action)
			if e.Action != catalog.SCIMEvent || action != f.Want.Action || e.Type != f.Want.Type {
				t.Errorf("action %s/%s type %s, want %s %s", e.Action, action, e.Type, f.Want.Action, f.Want.Type)
			}
			if e.UserID != f.Want.UserID || !slices.Equal(e.LoginIDs, f.Want.ExternalIDs) && len(e.LoginIDs)+len(f.Want.ExternalIDs) > 0 {
				t.Errorf("userId %q loginIds %q, want %q %q", e.UserID, e.LoginIDs, f.Want.UserID, f.Want.ExternalIDs)
			}
			if !sameJSON(t, data["Change"], f.Want.Change) {
				t.Errorf("Change\n got %s\nwant %s", data["Change"], f.Want.Change)
			}
			for _, s := range secrets {
				if strings.Contains(string(e.Data), s) {
					t.Errorf("secret %q stored: %s", s, e.Data)
				}
			}
			if _, ok := data["scim_request"]; !ok && f.Want.Action != "UserDeleted" && f.Want.Action != "UsersListed" {
				t.Error("scim_request missing")
			}
			_, hasErr := data["error"]
			_, hasResult := data["scim_result"]
			if hasErr != (f.Want.Type == event.TypeError) || (hasErr && hasResult) {
				t.Errorf("error %v result %v for type %s", hasErr, hasResult, e.Type)
			}
			if err := e.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
	for _, idp := range []string{"okta", "entra", "onelogin"} {
		if !idps[idp] {
			t.Errorf("no fixture from %s", idp)
		}
	}
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if len(a) > 0 {
		if err := json.Unmarshal(a, &x); err != nil {
			t.Fatal(err)
		}
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &y); err != nil {
			t.Fatal(err)
		}
	}
	return reflect.DeepEqual(x, y)
}

func TestActionsAreCatalogued(t *testing.T) {
	known := map[string]bool{}
	for _, a := range catalog.SCIMActions {
		known[a.Name] = true
	}
	for _, tc := range []struct {
		method, path string
		change       map[string]any
	}{
		{"POST", "/Users", nil}, {"PUT", "/Users/1", nil}, {"PATCH", "/Users/1", nil},
		{"PATCH", "/Users/1", map[string]any{"status": "disabled"}}, {"PATCH", "/Users/1", map[string]any{"status": "enabled"}},
		{"DELETE", "/Users/1", nil}, {"GET", "/Users/1", nil}, {"GET", "/Users", nil},
		{"POST", "/Groups", nil}, {"PUT", "/Groups/1", nil}, {"PATCH", "/Groups/1", map[string]any{"display_name": "x"}},
		{"PATCH", "/Groups/1", map[string]any{"added_members": 1}}, {"PATCH", "/Groups/1", map[string]any{"removed_members": 1}},
		{"PATCH", "/Groups/1", map[string]any{"added_members": 1, "removed_members": 1}},
		{"DELETE", "/Groups/1", nil}, {"GET", "/Groups/1", nil}, {"GET", "/Groups", nil}, {"GET", "/ServiceProviderConfig", nil},
	} {
		typ, id, err := splitPath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if a := actionOf(tc.method, typ, id, tc.change); !known[a] {
			t.Errorf("%s %s gives %q, not in catalog.SCIMActions", tc.method, tc.path, a)
		}
	}
}

func TestInvalidOperations(t *testing.T) {
	for name, body := range map[string]string{
		"no method":         `{"path":"/Users"}`,
		"no path":           `{"method":"GET"}`,
		"bad method":        `{"method":"TRACE","path":"/Users"}`,
		"patch no ops":      `{"method":"PATCH","path":"/Users/1","request":{"schemas":[]}}`,
		"patch bad op":      `{"method":"PATCH","path":"/Users/1","request":{"Operations":[{"op":"move","path":"a"}]}}`,
		"patch bad path":    `{"method":"PATCH","path":"/Users/1","request":{"Operations":[{"op":"add","path":"emails[type eq","value":"x"}]}}`,
		"remove no path":    `{"method":"PATCH","path":"/Users/1","request":{"Operations":[{"op":"remove"}]}}`,
		"request not obj":   `{"method":"POST","path":"/Users","request":[1]}`,
		"bad context":       `{"method":"GET","path":"/Users","requestContext":{"ip":"x"}}`,
		"malformed":         `{"method":`,
		"data too large":    `{"method":"PATCH","path":"/Groups/1","request":{"Operations":[{"op":"add","path":"members","value":[` + manyMembers(1000) + `]}]}}`,
		"occurred not time": `{"method":"GET","path":"/Users","occurred":"yesterday"}`,
	} {
		if _, err := DecodeRequest([]byte(body), "P", fixedNow, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLargeGroupIsTruncated(t *testing.T) {
	members := make([]map[string]string, 600)
	for i := range members {
		members[i] = map[string]string{"value": strings.Repeat("m", 30) + string(rune('a'+i%26)) + strings.Repeat("x", i%7), "display": strings.Repeat("d", 40)}
	}
	req, _ := json.Marshal(map[string]any{"Operations": []any{map[string]any{"op": "add", "path": "members", "value": members}}})
	e, err := Event(Operation{Method: "PATCH", Path: "/Groups/g", Request: req, Occurred: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Data) > event.MaxDataBytes || !strings.Contains(string(e.Data), `"scim_truncated":true`) || !strings.Contains(string(e.Data), "added_members") {
		t.Fatalf("%d bytes: %.200s", len(e.Data), e.Data)
	}
}

func TestRedact(t *testing.T) {
	in := map[string]any{"password": "p1", "nested": []any{map[string]any{"clientSecret": "p2", "ok": "v"}},
		"Operations": []any{map[string]any{"op": "replace", "path": "password", "value": "p3"}}}
	out, _ := json.Marshal(redact(in))
	for _, s := range []string{"p1", "p2", "p3"} {
		if strings.Contains(string(out), `"`+s+`"`) {
			t.Errorf("%s kept: %s", s, out)
		}
	}
	if !strings.Contains(string(out), `"ok":"v"`) {
		t.Errorf("redacted too much: %s", out)
	}
}

// manyMembers lists n distinct member objects of about 100 bytes each.
func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"value":"%090d"}`, i)
	}
	return strings.Join(parts, ",")
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"method":"PATCH","path":"/Users/1","request":{"Operations":[{"op":"Replace","value":{"active":"False","name.givenName":"x"}}]}}`,
		`{"method":"PATCH","path":"/Groups/g","request":{"Operations":[{"op":"remove","path":"members[value eq \"u\"]"}]},"previous":{"members":[{"value":"u"}]}}`,
		`{"method":"PUT","path":"/Users/1","request":{"userName":"a","password":"p"},"previous":{"userName":"b","roles":[{"value":"r"}]}}`,
		`{"method":"POST","path":"/scim/v2/Users","request":{"userName":"a"},"error":{"status":"409"},"requestContext":{"ip":"::1","userAgent":"curl/8"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := DecodeRequest(body, "P", fixedNow, nil)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		if e.Action != catalog.SCIMEvent || e.ID == "" {
			t.Fatalf("event %+v", e)
		}
	})
}

// BenchmarkDecodeRequest is the server's cost per recorded SCIM call,
// averaged over the fixtures (decode, Change, redaction, encoding).
func BenchmarkDecodeRequest(b *testing.B) {
	fixtures := loadFixtures(b)
	for i := 0; b.Loop(); i++ {
		if _, err := DecodeRequest(fixtures[i%len(fixtures)].Operation, "P", fixedNow, nil); err != nil {
			b.Fatal(err)
		}
	}
}
