package tenancy

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	keyIDPattern   = regexp.MustCompile(`^K[A-Z2-7]{26}$`)
	projectPattern = regexp.MustCompile(`^P[0-9A-Za-z]{27}$`)
	companyPattern = regexp.MustCompile(`^C[0-9A-Za-z]{27}$`)
	keyPattern     = regexp.MustCompile(`^K[A-Z2-7]{26}\.[A-Za-z0-9_-]{43}$`)
)

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		for _, tc := range []struct {
			id string
			re *regexp.Regexp
		}{{NewKeyID(), keyIDPattern}, {NewProjectID(), projectPattern}, {NewCompanyID(), companyPattern}} {
			if !tc.re.MatchString(tc.id) {
				t.Fatalf("%q does not match %s", tc.id, tc.re)
			}
			if seen[tc.id] {
				t.Fatalf("%q generated twice", tc.id)
			}
			seen[tc.id] = true
		}
	}
}

func TestBase62Uniform(t *testing.T) {
	// 62 symbols over 100k draws: each should appear ~1613 times; a modulo
	// bias would give the first 8 symbols ~25% more.
	counts := map[rune]int{}
	s := randomBase62(100_000)
	for _, r := range s {
		counts[r]++
	}
	if len(counts) != 62 {
		t.Fatalf("%d distinct symbols, want 62", len(counts))
	}
	for r, n := range counts {
		if n < 1400 || n > 1830 {
			t.Errorf("symbol %q drawn %d times of 100000, want about 1613", r, n)
		}
	}
}

func TestKeySecret(t *testing.T) {
	id := NewKeyID()
	key, hash := NewKeySecret(id)
	if !keyPattern.MatchString(key) || !strings.HasPrefix(key, id+".") {
		t.Fatalf("key %q has the wrong shape", key)
	}
	gotID, secret, err := ParseKey(key)
	if err != nil || gotID != id || secret != key[len(id)+1:] {
		t.Fatalf("ParseKey(%q) = %q, %q, %v", key, gotID, secret, err)
	}
	if string(HashKey(key)) != string(hash) || len(hash) != 32 {
		t.Fatal("hash is not SHA-256 of the key")
	}
	key2, hash2 := NewKeySecret(id)
	if key2 == key || string(hash2) == string(hash) {
		t.Fatal("two secrets for one id are equal")
	}
}

func TestParseKeyRefuses(t *testing.T) {
	good, _ := NewKeySecret(NewKeyID())
	for name, s := range map[string]string{
		"empty":            "",
		"no dot":           strings.Replace(good, ".", "x", 1),
		"lower-case id":    "k" + good[1:],
		"id not base32":    good[:5] + "1" + good[6:],
		"secret too short": good[:len(good)-1],
		"secret too long":  good + "A",
		"secret not b64":   good[:len(good)-3] + "+/A",
		"padding bits set": good[:len(good)-1] + "B",
		"project prefix":   "P2abc:" + good,
		"spaces":           " " + good[1:],
	} {
		if _, _, err := ParseKey(s); !errors.Is(err, ErrMalformedKey) || !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: ParseKey(%q) = %v, want ErrMalformedKey", name, s, err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	good, _ := NewKeySecret(NewKeyID())
	f.Add(good)
	f.Add("")
	f.Add("K.")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseKey(s)
		if err != nil {
			return
		}
		if id+"."+secret != s || !keyPattern.MatchString(s) {
			t.Fatalf("ParseKey accepted %q as %q . %q", s, id, secret)
		}
	})
}

func TestRoles(t *testing.T) {
	all := []Role{RoleReader, RoleWriter, RoleAdmin, "", "root", "Admin"}
	allows := map[[2]Role]bool{
		{RoleReader, RoleReader}: true,
		{RoleWriter, RoleReader}: true, {RoleWriter, RoleWriter}: true,
		{RoleAdmin, RoleReader}: true, {RoleAdmin, RoleWriter}: true, {RoleAdmin, RoleAdmin}: true,
	}
	for _, have := range all {
		for _, need := range all {
			if got := have.Allows(need); got != allows[[2]Role{have, need}] {
				t.Errorf("%q.Allows(%q) = %v", have, need, got)
			}
		}
	}
}

func TestIssuer(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iss := Issuer{Now: func() time.Time { return now }}
	if _, _, err := iss.NewKey(Key{CompanyID: "C1", Role: "root"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown role: %v", err)
	}
	if _, _, err := iss.NewKey(Key{Role: RoleAdmin}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no company: %v", err)
	}
	scope := []string{"P1"}
	k, secret, err := iss.NewKey(Key{CompanyID: "C1", Role: RoleReader, ProjectIDs: scope})
	if err != nil {
		t.Fatal(err)
	}
	scope[0] = "P-changed"
	if !keyIDPattern.MatchString(k.ID) || !k.Created.Equal(now) || k.ProjectIDs[0] != "P1" || string(k.Hash) != string(HashKey(secret)) {
		t.Fatalf("NewKey = %+v", k)
	}
	now = now.Add(time.Hour)
	r, secret2, err := iss.Rotate(k)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != k.ID || secret2 == secret || string(r.Hash) != string(HashKey(secret2)) || !r.Rotated.Equal(now) || !r.Created.Equal(k.Created) {
		t.Fatalf("Rotate = %+v", r)
	}
	r.Revoked = now
	if _, _, err := iss.Rotate(r); !errors.Is(err, ErrInvalid) {
		t.Errorf("rotating a revoked key: %v", err)
	}
}

func TestSettingsValidate(t *testing.T) {
	neg, zero := -1, 0
	for _, tc := range []struct {
		s  Settings
		ok bool
	}{
		{DefaultSettings(), true},
		{Settings{SearchWindowDays: 30, RetentionDays: 30, SearchRateLimit: &zero}, true},
		{Settings{SearchWindowDays: 0, RetentionDays: 30}, false},
		{Settings{SearchWindowDays: 31, RetentionDays: 30}, false},
		{Settings{SearchWindowDays: 30, RetentionDays: 90, SearchRateLimit: &neg}, false},
		{Settings{SearchWindowDays: MaxSearchWindowDays + 1, RetentionDays: MaxRetentionDays}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}
