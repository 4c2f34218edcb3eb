package cli

import (
	"encoding/json"
	"testing"
)

func TestChangeSummary(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{}`, "-"},
		{`{"Change":{}}`, "-"},
		{`{"Change":{"display_name":"Ada L.","added_roles":["owner","x"],"removed_members":["u2"]}}`, "+roles owner,x; display_name=Ada L.; -members u2"},
		{`{"Change":{"status":{"old":"enabled","new":"disabled"},"title":{"old":"CEO","new":null}}}`, "status: enabled→disabled; title: CEO→∅"},
		{`{"Change":{"added_multi_tenant_roles":[{"tenant":"t1","roles":["a","b"]}],"verified_email":true}}`, "+multi_tenant_roles t1:a+b; verified_email=true"},
		{`{"Change":{"evil":"a\u001b[31mred\tx"}}`, "evil=a?[31mred?x"},
		{`{"Change":{"custom_attribute_tags":{"k":[1,2]}}}`, `custom_attribute_tags={"k":[1,2]}`},
	} {
		var data map[string]any
		if err := json.Unmarshal([]byte(tc.data), &data); err != nil {
			t.Fatal(err)
		}
		if got := changeSummary(data); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.data, got, tc.want)
		}
	}
	var long map[string]any
	_ = json.Unmarshal([]byte(`{"Change":{"display_name":"`+string(make([]byte, 0))+`aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}`), &long)
	if got := []rune(changeSummary(long)); len(got) != maxChangeCell || got[len(got)-1] != '…' {
		t.Errorf("long change not clipped: %q", string(got))
	}
}
