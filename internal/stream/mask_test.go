package stream

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

func TestIsPIIKey(t *testing.T) {
	pii := []string{"email", "userEmail", "e-mail", "mail", "phone", "phoneNumber", "tel", "tel_number", "mobile",
		"name", "displayName", "display_name", "given_name", "familyName", "middle_name", "first", "firstName",
		"last", "LastName", "surname", "nickname", "external_id", "externalId", "externalIds", "loginId", "user_name", "Name"}
	notPII := []string{"userId", "id", "ip", "geo", "device", "action", "hotel", "telemetry", "roles", "added_roles",
		"tenantId", "correlation_id", "occurred", "method", "scim_action", "error_message", "uri", "host"}
	for _, k := range pii {
		if !isPIIKey(k) {
			t.Errorf("%q should be masked", k)
		}
	}
	for _, k := range notPII {
		if isPIIKey(k) {
			t.Errorf("%q should stay", k)
		}
	}
}

func TestMaskPIINestedAndArrays(t *testing.T) {
	e := event.Event{
		ID: "e1", UserID: "U1", Action: "SCIMEvent", RemoteAddress: "10.0.0.1", Geo: "IL", Device: "Bot",
		LoginIDs: []string{"a@b.c", "+1555"},
		Data: json.RawMessage(`{"scim_request":{"emails":[{"value":"a@b.c","primary":true}],"name":{"givenName":"Ann"},"active":true,"count":3},` +
			`"phone":15550100,"list":[{"email":"x@y.z"}],"note":"<keep & this>","n":1.50}`),
	}
	m := maskPII(e)
	if m.LoginIDs[0] != Masked || m.LoginIDs[1] != Masked || e.LoginIDs[0] != "a@b.c" {
		t.Fatalf("login ids: %v (original %v)", m.LoginIDs, e.LoginIDs)
	}
	want := `{"list":[{"email":"***"}],"n":1.50,"note":"<keep & this>","phone":"***","scim_request":{"active":true,"count":3,"emails":[{"primary":true,"value":"***"}],"name":{"givenName":"***"}}}`
	if string(m.Data) != want {
		t.Fatalf("got  %s\nwant %s", m.Data, want)
	}
	if m.UserID != "U1" || m.RemoteAddress != "10.0.0.1" || m.Geo != "IL" || m.Device != "Bot" || m.ID != "e1" {
		t.Fatalf("non-PII field changed: %+v", m)
	}
	if e2 := maskPII(event.Event{Data: json.RawMessage(`null`)}); string(e2.Data) != "null" {
		t.Fatalf("null data: %s", e2.Data)
	}
}

func TestRedactAndRestore(t *testing.T) {
	prev := json.RawMessage(`{"url":"https://u:pw@h/x","token":"t1","nested":{"apiKey":"k"},"headers":{"A":"1"},"index":"main"}`)
	red := RedactKeys(prev, DefaultSecretKeys...)
	for _, s := range []string{"t1", `"k"`, `"1"`, ":pw@"} {
		if strings.Contains(string(red), s) {
			t.Fatalf("redacted view holds %s: %s", s, red)
		}
	}
	// A client edits the index and sends the rest back as shown.
	next := json.RawMessage(strings.Replace(string(red), `"main"`, `"audit"`, 1))
	got, err := restoreRedacted(next, prev, red)
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]any
	json.Unmarshal(got, &g)
	if g["token"] != "t1" || g["url"] != "https://u:pw@h/x" || g["index"] != "audit" || g["nested"].(map[string]any)["apiKey"] != "k" {
		t.Fatalf("restored: %s", got)
	}
	// A new secret replaces the old one.
	got, _ = restoreRedacted(json.RawMessage(`{"token":"t2"}`), prev, red)
	if !strings.Contains(string(got), "t2") {
		t.Fatalf("new secret lost: %s", got)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for f, want := range map[int]time.Duration{1: lo, 2: 2 * lo, 3: 4 * lo, 5: 16 * lo, 6: hi, 50: hi} {
		for range 20 {
			d := backoff(lo, hi, f)
			if d < want/2 || d > want {
				t.Fatalf("backoff after %d failures = %v, want within [%v, %v]", f, d, want/2, want)
			}
		}
	}
}
