package scim

import (
	"encoding/json"
	"testing"
	"time"
)

var fixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"userName", "userName"},
		{"name.givenName", "name.givenName"},
		{`emails[type eq "work"].value`, `emails[type eq "work"].value`},
		{`members[value eq "2819c223"]`, `members[value eq "2819c223"]`},
		{`addresses[type eq "work" and primary eq true].streetAddress`, `addresses[(type eq "work" and primary eq true)].streetAddress`},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"},
		{`emails[value ew "]x"]`, `emails[value ew "]x"]`},
		{`emails[type eq 'work'].value`, `emails[type eq "work"].value`},
	} {
		p, err := ParsePath(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if p.String() != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, p, tc.want)
		}
	}
	p, _ := ParsePath("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
	if p.URI != "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" || p.Attr != "manager" || p.SubAttr != "value" {
		t.Errorf("%+v", p)
	}
	for _, bad := range []string{"", "emails[", `emails[type eq "work"`, "emails[type xx 1]", "name.", ".x", "a b", "emails[type eq]", "urn:", "1abc", `emails[type eq "work"]x`} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	var user map[string]any
	_ = json.Unmarshal([]byte(`{"userName":"Bjensen","active":true,"meta":{"created":"2011-08-01T18:29:49Z"},
		"name":{"familyName":"Jensen"},"emails":[{"type":"work","value":"bjensen@example.com"},{"type":"home","value":"babs@jensen.org","primary":true}],
		"x509Certificates":[],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","level":3}}`), &user)
	for _, tc := range []struct {
		f    string
		want bool
	}{
		{`userName eq "bjensen"`, true},
		{`USERNAME Eq "bjensen"`, true},
		{`userName ne "bjensen"`, false},
		{`name.familyName co "ens"`, true},
		{`userName sw "B"`, true},
		{`userName ew "sen"`, true},
		{`title pr`, false},
		{`x509Certificates pr`, false},
		{`active eq true`, true},
		{`active eq false`, false},
		{`meta.created gt "2011-05-13T04:42:34Z"`, true},
		{`emails[type eq "work" and value co "@example.com"]`, true},
		{`emails[type eq "work" and value co "@jensen.org"]`, false},
		{`emails.type eq "home"`, true},
		{`userName eq "x" or userName eq "bjensen"`, true},
		{`userName eq "x" or userName eq "y" and active eq true`, false},
		{`not (userName eq "x")`, true},
		{`(userName eq "x" or active eq true) and name.familyName eq "jensen"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:level ge 3`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:level lt 3`, false},
		{`title eq null`, true},
	} {
		f, err := ParseFilter(tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.f, err)
			continue
		}
		if got := f.Match(user); got != tc.want {
			t.Errorf("%s (%s): %v, want %v", tc.f, f, got, tc.want)
		}
		// The printed form parses to the same tree.
		again, err := ParseFilter(f.String())
		if err != nil || again.String() != f.String() {
			t.Errorf("%s: reprint %q: %v", tc.f, f.String(), err)
		}
	}
	deep := ""
	for range 40 {
		deep += "("
	}
	if _, err := ParseFilter(deep + `a eq 1` + deep); err == nil {
		t.Error("deep nesting accepted")
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		`emails[type eq "work"].value`, `members[value eq "x" or value eq "y"]`, "name.givenName",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
		`userName eq "a" and not (active eq false)`, `a[b[c eq 1]]`, `x gt 1.5e3`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParsePath(s); err == nil {
			again, err := ParsePath(p.String())
			if err != nil || again.String() != p.String() {
				t.Fatalf("%q printed as %q, which reparses as %v, %v", s, p.String(), again, err)
			}
		}
		if fl, err := ParseFilter(s); err == nil {
			again, err := ParseFilter(fl.String())
			if err != nil || again.String() != fl.String() {
				t.Fatalf("%q printed as %q, which reparses with %v", s, fl.String(), err)
			}
			fl.Match(map[string]any{"a": []any{map[string]any{"b": "x"}}, "x": 2.0})
		}
	})
}
