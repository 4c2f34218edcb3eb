package client

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestUserChange(t *testing.T) {
	before := User{
		LoginIDs: []string{"ada@example.com"}, Name: "Ada", GivenName: "Ada", FamilyName: "Lovelace",
		Email: "ada@example.com", Phone: "+15550100", Status: "enabled", Roles: []string{"viewer", "editor"},
		Tenants:          map[string][]string{"t1": {"admin"}, "t2": {"member"}},
		CustomAttributes: map[string]any{"department": "R&D", "level": 3.0, "old": true},
	}
	after := before
	after.Name = "Ada L."
	after.MiddleName = "King"
	after.VerifiedEmail = true
	after.Status = "disabled"
	after.LoginIDs = []string{"ada@example.com", "+15550100"}
	after.Roles = []string{"editor", "owner"}
	after.Tenants = map[string][]string{"t1": {"admin", "billing"}, "t3": {"member"}}
	after.CustomAttributes = map[string]any{"department": "R&D", "level": 4.0, "new": "x"}

	for _, tc := range []struct {
		opts ChangeOptions
		want string
	}{
		{ChangeOptions{}, `{"display_name":"Ada L.","middle_name":"King","verified_email":true,"status":"disabled",
			"added_roles":["owner"],"removed_roles":["viewer"],"added_login_ids":["+15550100"],
			"added_tenants":["t3"],"removed_tenants":["t2"],
			"added_multi_tenant_roles":[{"tenant":"t1","roles":["billing"]},{"tenant":"t3","roles":["member"]}],
			"removed_multi_tenant_roles":[{"tenant":"t2","roles":["member"]}],
			"custom_attribute_level":4,"custom_attribute_new":"x","custom_attribute_old":null}`},
		{ChangeOptions{IncludeOld: true}, `{"display_name":{"old":"Ada","new":"Ada L."},"middle_name":{"old":"","new":"King"},
			"verified_email":{"old":false,"new":true},"status":{"old":"enabled","new":"disabled"},
			"added_roles":["owner"],"removed_roles":["viewer"],"added_login_ids":["+15550100"],
			"added_tenants":["t3"],"removed_tenants":["t2"],
			"added_multi_tenant_roles":[{"tenant":"t1","roles":["billing"]},{"tenant":"t3","roles":["member"]}],
			"removed_multi_tenant_roles":[{"tenant":"t2","roles":["member"]}],
			"custom_attribute_level":{"old":3,"new":4},"custom_attribute_new":{"old":null,"new":"x"},"custom_attribute_old":{"old":true,"new":null}}`},
	} {
		got, _ := json.Marshal(UserChange(before, after, tc.opts))
		var g, w any
		_ = json.Unmarshal(got, &g)
		if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
			t.Fatal(err)
		}
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Errorf("IncludeOld=%v\n got %s\nwant %s", tc.opts.IncludeOld, gj, wj)
		}
	}
	if c := UserChange(before, before, ChangeOptions{IncludeOld: true}); len(c) != 0 {
		t.Errorf("no change gave %v", c)
	}
}

func ExampleUserChange() {
	before := User{Name: "Ada", Roles: []string{"viewer"}, CustomAttributes: map[string]any{"team": "core"}}
	after := User{Name: "Ada L.", Roles: []string{"viewer", "admin"}, CustomAttributes: map[string]any{"team": "infra"}}

	newOnly, _ := json.Marshal(UserChange(before, after, ChangeOptions{}))
	withOld, _ := json.Marshal(UserChange(before, after, ChangeOptions{IncludeOld: true}))
	fmt.Println(string(newOnly))
	fmt.Println(string(withOld))
	// Output:
	// {"added_roles":["admin"],"custom_attribute_team":"infra","display_name":"Ada L."}
	// {"added_roles":["admin"],"custom_attribute_team":{"new":"infra","old":"core"},"display_name":{"new":"Ada L.","old":"Ada"}}
}
