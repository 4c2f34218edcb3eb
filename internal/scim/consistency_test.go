package scim_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/scim"
)

// The SDK's UserChange and the server's SCIM diff name and shape the same
// change alike, so that one changedFields search finds both.
func TestSCIMChangeMatchesSDK(t *testing.T) {
	before := `{"id":"u1","userName":"a@x","displayName":"Ada","active":true,
		"name":{"givenName":"Ada","middleName":"K","familyName":"Byron"},
		"emails":[{"value":"a@x","primary":true}],"phoneNumbers":[{"value":"+1555"}],
		"photos":[{"value":"https://p/1.png"}],"roles":[{"value":"viewer"},{"value":"ops"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D"}}`
	after := `{"id":"u1","userName":"a@x","displayName":"Ada L.","active":false,
		"name":{"givenName":"Augusta","middleName":"K","familyName":"Lovelace"},
		"emails":[{"value":"ada@x","primary":true}],"phoneNumbers":[{"value":"+1666"}],
		"photos":[{"value":"https://p/2.png"}],"roles":[{"value":"viewer"},{"value":"admin"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Math"}}`
	e, err := scim.Event(scim.Operation{Method: "PUT", Path: "/Users/u1", Request: json.RawMessage(after), Previous: json.RawMessage(before), Occurred: 1})
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Change map[string]any `json:"Change"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil {
		t.Fatal(err)
	}

	sdk := client.UserChange(
		client.User{Name: "Ada", GivenName: "Ada", MiddleName: "K", FamilyName: "Byron", Email: "a@x", Phone: "+1555", Picture: "https://p/1.png",
			Status: "enabled", Roles: []string{"viewer", "ops"}, CustomAttributes: map[string]any{"department": "R&D"}},
		client.User{Name: "Ada L.", GivenName: "Augusta", MiddleName: "K", FamilyName: "Lovelace", Email: "ada@x", Phone: "+1666", Picture: "https://p/2.png",
			Status: "disabled", Roles: []string{"viewer", "admin"}, CustomAttributes: map[string]any{"department": "Math"}},
		client.ChangeOptions{IncludeOld: true})
	b, _ := json.Marshal(sdk)
	var want map[string]any
	_ = json.Unmarshal(b, &want)
	if !reflect.DeepEqual(data.Change, want) {
		t.Fatalf("SCIM Change\n%v\nSDK Change\n%v", data.Change, want)
	}
}
