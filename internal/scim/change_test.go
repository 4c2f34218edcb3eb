package scim

import (
	"encoding/json"
	"testing"
)

func TestPatchChanges(t *testing.T) {
	prevUser := `{"id":"u1","userName":"a@x","active":false,"name":{"givenName":"A","familyName":"B","middleName":"M"},
		"emails":[{"value":"a@x","primary":true}],"roles":[{"value":"r1"},{"value":"r2"}],"title":"T"}`
	prevGroup := `{"id":"g","displayName":"G","members":[{"value":"m1"},{"value":"m2"}]}`
	for _, tc := range []struct {
		name, path, ops, previous, wantAction, wantChange string
	}{
		{"add emails list", "/Users/u1", `[{"op":"add","path":"emails","value":[{"value":"h@x","type":"home"},{"value":"w@x","type":"work","primary":true}]}]`, ``,
			"UserPatched", `{"email":"w@x"}`},
		{"replace name object", "/Users/u1", `[{"op":"replace","path":"name","value":{"givenName":"G","familyName":"F"}}]`, ``,
			"UserPatched", `{"given_name":"G","family_name":"F"}`},
		{"remove name with previous", "/Users/u1", `[{"op":"remove","path":"name"}]`, prevUser,
			"UserPatched", `{"given_name":{"old":"A","new":null},"family_name":{"old":"B","new":null},"middle_name":{"old":"M","new":null}}`},
		{"roles add and filtered remove", "/Users/u1", `[{"op":"add","path":"roles","value":[{"value":"r3"}]},{"op":"remove","path":"roles[value eq \"r1\"]"}]`, ``,
			"UserPatched", `{"added_roles":["r3"],"removed_roles":["r1"]}`},
		{"roles replace with previous", "/Users/u1", `[{"op":"replace","path":"roles","value":[{"value":"r2"},{"value":"r9"}]}]`, prevUser,
			"UserPatched", `{"added_roles":["r9"],"removed_roles":["r1"]}`},
		{"roles replace without previous", "/Users/u1", `[{"op":"replace","path":"roles","value":[{"value":"r2"}]}]`, ``,
			"UserPatched", `{"roles":["r2"]}`},
		{"reactivate with string", "/Users/u1", `[{"op":"Add","path":"active","value":"True"}]`, prevUser,
			"UserReactivated", `{"status":{"old":"disabled","new":"enabled"}}`},
		{"no-op replace with previous", "/Users/u1", `[{"op":"replace","path":"title","value":"T"}]`, prevUser,
			"UserPatched", ``},
		{"remove filtered email", "/Users/u1", `[{"op":"remove","path":"emails[type eq \"work\"]"}]`, ``,
			"UserPatched", `{"email":null}`},
		{"extension object without path", "/Users/u1", `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D","manager":{"value":"boss"}}}}]`, ``,
			"UserPatched", `{"custom_attribute_department":"D","custom_attribute_manager":"boss"}`},
		{"ignored attributes", "/Users/u1", `[{"op":"replace","value":{"id":"x","meta":{},"schemas":[]}},{"op":"add","path":"groups","value":[{"value":"g"}]}]`, ``,
			"UserPatched", ``},
		{"members remove all with previous", "/Groups/g", `[{"op":"remove","path":"members"}]`, prevGroup,
			"GroupMembersRemoved", `{"removed_members":["m1","m2"]}`},
		{"members remove all without previous", "/Groups/g", `[{"op":"remove","path":"members"}]`, ``,
			"GroupPatched", `{"members":[]}`},
		{"members or filter", "/Groups/g", `[{"op":"remove","path":"members[value eq \"m1\" or value eq \"m2\"]"}]`, ``,
			"GroupMembersRemoved", `{"removed_members":["m1","m2"]}`},
		{"members and filter", "/Groups/g", `[{"op":"remove","path":"members[value eq \"m1\" and type eq \"User\"]"}]`, ``,
			"GroupMembersRemoved", `{"removed_members":["m1"]}`},
		{"rename and add member", "/Groups/g", `[{"op":"replace","path":"displayName","value":"H"},{"op":"add","path":"members","value":[{"value":"m3"}]}]`, prevGroup,
			"GroupPatched", `{"display_name":{"old":"G","new":"H"},"added_members":["m3"]}`},
		{"password without path", "/Users/u1", `[{"op":"replace","value":{"password":"pw-1"}}]`, prevUser,
			"UserPatched", `{"password":"[REDACTED]"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := Operation{Method: "PATCH", Path: tc.path, Request: json.RawMessage(`{"Operations":` + tc.ops + `}`), Occurred: 1}
			if tc.previous != "" {
				op.Previous = json.RawMessage(tc.previous)
			}
			e, err := Event(op)
			if err != nil {
				t.Fatal(err)
			}
			var data struct {
				Action string          `json:"scim_action"`
				Change json.RawMessage `json:"Change"`
			}
			if err := json.Unmarshal(e.Data, &data); err != nil {
				t.Fatal(err)
			}
			if data.Action != tc.wantAction {
				t.Errorf("action %s, want %s", data.Action, tc.wantAction)
			}
			if !sameJSON(t, data.Change, json.RawMessage(tc.wantChange)) {
				t.Errorf("Change %s, want %s", data.Change, tc.wantChange)
			}
		})
	}
}

func TestPutChanges(t *testing.T) {
	prev := json.RawMessage(`{"id":"u1","userName":"a","title":"T","active":true,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D"}}`)
	after := json.RawMessage(`{"id":"u1","userName":"a","active":false,"nickName":"N"}`)
	e, err := Event(Operation{Method: "PUT", Path: "/Users/u1", Request: after, Previous: prev, Occurred: 1})
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Action string          `json:"scim_action"`
		Change json.RawMessage `json:"Change"`
	}
	_ = json.Unmarshal(e.Data, &data)
	want := `{"title":{"old":"T","new":null},"status":{"old":"enabled","new":"disabled"},"nick_name":{"old":null,"new":"N"},"custom_attribute_department":{"old":"D","new":null}}`
	if data.Action != "UserUpdated" || !sameJSON(t, data.Change, json.RawMessage(want)) {
		t.Errorf("%s %s", data.Action, data.Change)
	}
	// Without the previous resource a PUT has no Change: nothing to compare.
	e, err = Event(Operation{Method: "PUT", Path: "/Users/u1", Request: after, Occurred: 1})
	if err != nil {
		t.Fatal(err)
	}
	data.Change = nil
	_ = json.Unmarshal(e.Data, &data)
	if data.Change != nil {
		t.Errorf("Change without previous: %s", data.Change)
	}
}
