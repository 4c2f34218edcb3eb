// Package tenancytest is the conformance suite every tenancy.Directory
// must pass:
//
//	tenancytest.Run(t, func(t *testing.T) tenancy.Directory { return openEmpty(t) })
//	tenancytest.RunReopen(t, func(t *testing.T) (tenancy.Directory, func(*testing.T) tenancy.Directory) { … })
//
// Beyond the Directory interface's comments it requires: lists ordered by
// (Created, ID); times kept to at least the millisecond; creating a project
// or key of an unknown company is ErrNotFound; UpdateKey and DeleteProject
// of a record in another company are ErrNotFound and change nothing; a
// deleted project stays in the ProjectIDs of keys scoped to it; returned
// records are copies.
package tenancytest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/tenancy"
)

// Run runs the suite. newDir must return an empty directory; the suite
// closes it at the end of each subtest.
func Run(t *testing.T, newDir func(t *testing.T) tenancy.Directory) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, d tenancy.Directory)
	}{
		{"Companies", testCompanies},
		{"Projects", testProjects},
		{"Keys", testKeys},
		{"Copies", testCopies},
		{"Concurrent", testConcurrent},
		{"Authenticate", testAuthenticate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDir(t)
			t.Cleanup(func() { d.Close() })
			tc.fn(t, d)
		})
	}
}

// RunReopen checks that everything survives closing and reopening. newDir
// returns an empty directory and a function that opens its data again
// (the suite closes the previous one first).
func RunReopen(t *testing.T, newDir func(t *testing.T) (tenancy.Directory, func(t *testing.T) tenancy.Directory)) {
	d, reopen := newDir(t)
	defer func() { d.Close() }()
	ctx := t.Context()
	w := fill(t, d)
	want := snapshot(t, d, w.companies)

	cycle := func(when string) {
		t.Helper()
		if err := d.Close(); err != nil {
			t.Fatalf("%s: Close: %v", when, err)
		}
		d = reopen(t)
		if got := snapshot(t, d, w.companies); got != want {
			t.Fatalf("%s: directory differs after reopen:\n got %s\nwant %s", when, got, want)
		}
	}
	cycle("first reopen")

	// Changes of every kind, then again.
	k := w.keys[0]
	k.Revoked = at(50)
	must(t, d.UpdateKey(ctx, k))
	must(t, d.DeleteProject(ctx, w.projects[1].CompanyID, w.projects[1].ID))
	limit := 0
	must(t, d.UpdateSettings(ctx, w.companies[1], tenancy.Settings{SearchWindowDays: 7, RetentionDays: 7, SearchRateLimit: &limit}))
	must(t, d.CreateProject(ctx, tenancy.Project{ID: "P-late", CompanyID: w.companies[0], Name: "late", Created: at(60)}))
	want = snapshot(t, d, w.companies)
	cycle("reopen after changes")
	if _, err := d.Project(ctx, w.projects[1].ID); !errors.Is(err, tenancy.ErrNotFound) {
		t.Fatalf("deleted project back after reopen: %v", err)
	}
}

// at is a fixed instant plus n minutes, at millisecond precision.
func at(n int) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n)*time.Minute + 123*time.Millisecond)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", what, err, want)
	}
}

type world struct {
	companies []string
	projects  []tenancy.Project
	keys      []tenancy.Key
}

// fill creates two companies with projects and keys of every shape.
func fill(t *testing.T, d tenancy.Directory) world {
	t.Helper()
	ctx := t.Context()
	var w world
	rate := 25
	for i, id := range []string{"C-beta", "C-alpha"} { // created out of ID order
		s := tenancy.DefaultSettings()
		if i == 0 {
			s.SearchRateLimit = &rate
		}
		must(t, d.CreateCompany(ctx, tenancy.Company{ID: id, Name: "Company " + id, Settings: s, Created: at(i)}))
		w.companies = append(w.companies, id)
	}
	for i := range 4 {
		p := tenancy.Project{ID: fmt.Sprintf("P-%d", 3-i), CompanyID: w.companies[i%2], Name: fmt.Sprintf("Projekt %d ✓", i), Created: at(10 + i/2)}
		must(t, d.CreateProject(ctx, p))
		w.projects = append(w.projects, p)
	}
	for i, role := range []tenancy.Role{tenancy.RoleAdmin, tenancy.RoleWriter, tenancy.RoleReader, tenancy.RoleReader} {
		k := tenancy.Key{ID: fmt.Sprintf("K-%d", i), CompanyID: w.companies[i%2], Name: fmt.Sprintf("key %d", i), Role: role,
			Hash: bytes.Repeat([]byte{byte(i + 1)}, 32), Created: at(20)}
		switch i {
		case 1:
			k.ProjectIDs = []string{w.projects[1].ID, w.projects[3].ID}
		case 2:
			k.Expires = at(1000)
		case 3:
			k.Rotated = at(30)
		}
		must(t, d.CreateKey(ctx, k))
		w.keys = append(w.keys, k)
	}
	return w
}

// snapshot renders everything the directory holds for the companies.
func snapshot(t *testing.T, d tenancy.Directory, companies []string) string {
	t.Helper()
	ctx := t.Context()
	var b bytes.Buffer
	cs, err := d.Companies(ctx)
	must(t, err)
	for _, c := range cs {
		fmt.Fprintf(&b, "company %s\n", companyString(c))
	}
	for _, id := range companies {
		ps, err := d.Projects(ctx, id)
		must(t, err)
		for _, p := range ps {
			fmt.Fprintf(&b, "project %s\n", projectString(p))
		}
		ks, err := d.Keys(ctx, id)
		must(t, err)
		for _, k := range ks {
			fmt.Fprintf(&b, "key %s\n", keyString(k))
		}
	}
	return b.String()
}

func companyString(c tenancy.Company) string {
	rate := "default"
	if c.Settings.SearchRateLimit != nil {
		rate = fmt.Sprint(*c.Settings.SearchRateLimit)
	}
	return fmt.Sprintf("%s %q window=%d retention=%d rate=%s created=%s", c.ID, c.Name,
		c.Settings.SearchWindowDays, c.Settings.RetentionDays, rate, ms(c.Created))
}

func projectString(p tenancy.Project) string {
	return fmt.Sprintf("%s company=%s %q created=%s", p.ID, p.CompanyID, p.Name, ms(p.Created))
}

func keyString(k tenancy.Key) string {
	projects := k.ProjectIDs
	if len(projects) == 0 {
		projects = nil
	}
	return fmt.Sprintf("%s company=%s %q role=%s projects=%q hash=%x created=%s expires=%s revoked=%s rotated=%s",
		k.ID, k.CompanyID, k.Name, k.Role, projects, k.Hash, ms(k.Created), ms(k.Expires), ms(k.Revoked), ms(k.Rotated))
}

// ms prints a time at millisecond precision in UTC, zero as "-": what every
// directory must keep.
func ms(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func testCompanies(t *testing.T, d tenancy.Directory) {
	ctx := t.Context()
	if cs, err := d.Companies(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("new directory: Companies = %v, %v", cs, err)
	}
	w := fill(t, d)
	cs, err := d.Companies(ctx)
	must(t, err)
	if len(cs) != 2 || cs[0].ID != "C-beta" || cs[1].ID != "C-alpha" {
		t.Fatalf("Companies not in creation order: %v", cs)
	}
	got, err := d.Company(ctx, "C-beta")
	must(t, err)
	if g, want := companyString(got), companyString(cs[0]); g != want || got.Settings.SearchRateLimit == nil || *got.Settings.SearchRateLimit != 25 {
		t.Fatalf("Company = %s, want %s", g, want)
	}
	wantErr(t, "duplicate CreateCompany", d.CreateCompany(ctx, tenancy.Company{ID: "C-beta", Name: "again", Created: at(5)}), tenancy.ErrExists)
	if c, _ := d.Company(ctx, "C-beta"); c.Name != "Company C-beta" {
		t.Fatalf("duplicate CreateCompany replaced the company: %q", c.Name)
	}
	_, err = d.Company(ctx, "C-none")
	wantErr(t, "Company(unknown)", err, tenancy.ErrNotFound)
	if err := d.CreateCompany(ctx, tenancy.Company{Name: "no id"}); err == nil {
		t.Error("CreateCompany without an ID succeeded")
	}

	// Settings: nil rate limit (server default) and 0 (unlimited) differ.
	for _, rate := range []*int{nil, ptr(0), ptr(7)} {
		s := tenancy.Settings{SearchWindowDays: 14, RetentionDays: 400, SearchRateLimit: rate}
		must(t, d.UpdateSettings(ctx, w.companies[1], s))
		c, err := d.Company(ctx, w.companies[1])
		must(t, err)
		want := tenancy.Company{ID: w.companies[1], Name: "Company C-alpha", Settings: s, Created: at(1)}
		if companyString(c) != companyString(want) {
			t.Fatalf("after UpdateSettings: %s, want %s", companyString(c), companyString(want))
		}
	}
	if c, _ := d.Company(ctx, w.companies[0]); *c.Settings.SearchRateLimit != 25 || c.Settings.RetentionDays != 90 {
		t.Fatalf("UpdateSettings changed another company: %s", companyString(c))
	}
	wantErr(t, "UpdateSettings(unknown)", d.UpdateSettings(ctx, "C-none", tenancy.DefaultSettings()), tenancy.ErrNotFound)
}

func ptr(v int) *int { return &v }

func testProjects(t *testing.T, d tenancy.Directory) {
	ctx := t.Context()
	w := fill(t, d)
	for _, c := range w.companies {
		ps, err := d.Projects(ctx, c)
		must(t, err)
		var want []string
		for _, p := range w.projects {
			if p.CompanyID == c {
				want = append(want, projectString(p))
			}
		}
		got := make([]string, len(ps))
		for i, p := range ps {
			got[i] = projectString(p)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Projects(%s) = %q, want %q (only its own, by creation)", c, got, want)
		}
	}
	if ps, err := d.Projects(ctx, "C-none"); err != nil || len(ps) != 0 {
		t.Fatalf("Projects(unknown company) = %v, %v; want none", ps, err)
	}
	p, err := d.Project(ctx, w.projects[2].ID)
	must(t, err)
	if projectString(p) != projectString(w.projects[2]) {
		t.Fatalf("Project = %s, want %s", projectString(p), projectString(w.projects[2]))
	}
	_, err = d.Project(ctx, "P-none")
	wantErr(t, "Project(unknown)", err, tenancy.ErrNotFound)
	wantErr(t, "duplicate CreateProject", d.CreateProject(ctx, tenancy.Project{ID: w.projects[0].ID, CompanyID: w.companies[1], Name: "x", Created: at(99)}), tenancy.ErrExists)
	wantErr(t, "CreateProject(unknown company)", d.CreateProject(ctx, tenancy.Project{ID: "P-orphan", CompanyID: "C-none", Created: at(99)}), tenancy.ErrNotFound)
	if _, err := d.Project(ctx, "P-orphan"); !errors.Is(err, tenancy.ErrNotFound) {
		t.Fatalf("refused project stored anyway: %v", err)
	}

	victim := w.projects[1] // in company 1, scoped by key 1
	wantErr(t, "DeleteProject(wrong company)", d.DeleteProject(ctx, w.companies[0], victim.ID), tenancy.ErrNotFound)
	if _, err := d.Project(ctx, victim.ID); err != nil {
		t.Fatalf("DeleteProject with the wrong company deleted it: %v", err)
	}
	must(t, d.DeleteProject(ctx, victim.CompanyID, victim.ID))
	_, err = d.Project(ctx, victim.ID)
	wantErr(t, "Project(deleted)", err, tenancy.ErrNotFound)
	wantErr(t, "DeleteProject twice", d.DeleteProject(ctx, victim.CompanyID, victim.ID), tenancy.ErrNotFound)
	ps, err := d.Projects(ctx, victim.CompanyID)
	must(t, err)
	if len(ps) != 1 || ps[0].ID != w.projects[3].ID {
		t.Fatalf("after delete, Projects = %v", ps)
	}
	k, err := d.Key(ctx, w.keys[1].ID)
	must(t, err)
	if !slices.Equal(k.ProjectIDs, w.keys[1].ProjectIDs) {
		t.Fatalf("deleting a project changed a key's scope to %q (an empty list would mean every project)", k.ProjectIDs)
	}
}

func testKeys(t *testing.T, d tenancy.Directory) {
	ctx := t.Context()
	w := fill(t, d)
	for _, c := range w.companies {
		ks, err := d.Keys(ctx, c)
		must(t, err)
		var got, want []string
		for _, k := range ks {
			got = append(got, keyString(k))
		}
		for _, k := range w.keys {
			if k.CompanyID == c {
				want = append(want, keyString(k))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Keys(%s) =\n%q\nwant\n%q", c, got, want)
		}
	}
	for _, want := range w.keys {
		k, err := d.Key(ctx, want.ID)
		must(t, err)
		if keyString(k) != keyString(want) {
			t.Fatalf("Key = %s\nwant %s", keyString(k), keyString(want))
		}
	}
	_, err := d.Key(ctx, "K-none")
	wantErr(t, "Key(unknown)", err, tenancy.ErrNotFound)
	dup := w.keys[2]
	dup.Name = "impostor"
	dup.CompanyID = w.companies[1]
	wantErr(t, "duplicate CreateKey", d.CreateKey(ctx, dup), tenancy.ErrExists)
	wantErr(t, "CreateKey(unknown company)", d.CreateKey(ctx, tenancy.Key{ID: "K-orphan", CompanyID: "C-none", Role: tenancy.RoleAdmin, Hash: []byte{1}, Created: at(1)}), tenancy.ErrNotFound)
	if _, err := d.Key(ctx, "K-orphan"); !errors.Is(err, tenancy.ErrNotFound) {
		t.Fatalf("refused key stored anyway: %v", err)
	}

	// Revoke, then rotate another: every field of the update is kept.
	revoked := w.keys[0]
	revoked.Revoked = at(40)
	must(t, d.UpdateKey(ctx, revoked))
	rotated := w.keys[1]
	rotated.Hash = bytes.Repeat([]byte{0xEE}, 32)
	rotated.Rotated = at(41)
	rotated.Name = "renamed"
	must(t, d.UpdateKey(ctx, rotated))
	for _, want := range []tenancy.Key{revoked, rotated, w.keys[2]} {
		k, err := d.Key(ctx, want.ID)
		must(t, err)
		if keyString(k) != keyString(want) {
			t.Fatalf("after UpdateKey: %s\nwant %s", keyString(k), keyString(want))
		}
	}
	wantErr(t, "UpdateKey(unknown)", d.UpdateKey(ctx, tenancy.Key{ID: "K-none", CompanyID: w.companies[0]}), tenancy.ErrNotFound)
	hijack := w.keys[2]
	hijack.CompanyID = w.companies[1]
	hijack.Role = tenancy.RoleAdmin
	wantErr(t, "UpdateKey(another company's key)", d.UpdateKey(ctx, hijack), tenancy.ErrNotFound)
	if k, _ := d.Key(ctx, w.keys[2].ID); keyString(k) != keyString(w.keys[2]) {
		t.Fatalf("UpdateKey across companies changed the key: %s", keyString(k))
	}
}

// testCopies: callers keep and change what they pass and get; the
// directory's records must not change with them.
func testCopies(t *testing.T, d tenancy.Directory) {
	ctx := t.Context()
	rate := 3
	c := tenancy.Company{ID: "C1", Name: "c", Settings: tenancy.Settings{SearchWindowDays: 30, RetentionDays: 90, SearchRateLimit: &rate}, Created: at(0)}
	must(t, d.CreateCompany(ctx, c))
	rate = 99
	k := tenancy.Key{ID: "K1", CompanyID: "C1", Role: tenancy.RoleReader, ProjectIDs: []string{"P1"}, Hash: []byte{1, 2, 3}, Created: at(0)}
	must(t, d.CreateKey(ctx, k))
	k.ProjectIDs[0] = "P-other"
	k.Hash[0] = 9

	got, err := d.Company(ctx, "C1")
	must(t, err)
	if *got.Settings.SearchRateLimit != 3 {
		t.Fatalf("directory shares the caller's settings: rate %d", *got.Settings.SearchRateLimit)
	}
	*got.Settings.SearchRateLimit = 50
	gk, err := d.Key(ctx, "K1")
	must(t, err)
	if gk.ProjectIDs[0] != "P1" || gk.Hash[0] != 1 {
		t.Fatalf("directory shares the caller's key slices: %q %x", gk.ProjectIDs, gk.Hash)
	}
	gk.ProjectIDs[0] = "P-mutated"
	gk.Hash[0] = 7
	again, err := d.Key(ctx, "K1")
	must(t, err)
	ks, err := d.Keys(ctx, "C1")
	must(t, err)
	ks[0].ProjectIDs[0] = "P-mutated-too"
	again2, err := d.Key(ctx, "K1")
	must(t, err)
	c2, err := d.Company(ctx, "C1")
	must(t, err)
	if again.ProjectIDs[0] != "P1" || again.Hash[0] != 1 || again2.ProjectIDs[0] != "P1" || *c2.Settings.SearchRateLimit != 3 {
		t.Fatal("directory returns its own memory: a caller's change leaked into it")
	}
}

func testConcurrent(t *testing.T, d tenancy.Directory) {
	ctx := t.Context()
	must(t, d.CreateCompany(ctx, tenancy.Company{ID: "C1", Name: "c", Settings: tenancy.DefaultSettings(), Created: at(0)}))
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("%d-%d", w, i)
				if err := d.CreateProject(ctx, tenancy.Project{ID: "P" + id, CompanyID: "C1", Created: at(i)}); err != nil {
					errs <- err
				}
				if err := d.CreateKey(ctx, tenancy.Key{ID: "K" + id, CompanyID: "C1", Role: tenancy.RoleReader, Hash: []byte(id), Created: at(i)}); err != nil {
					errs <- err
				}
				if _, err := d.Projects(ctx, "C1"); err != nil {
					errs <- err
				}
			}
		})
	}
	// Racing creates of one ID: exactly one wins.
	var wins sync.WaitGroup
	results := make(chan error, workers)
	for range workers {
		wins.Go(func() {
			results <- d.CreateProject(ctx, tenancy.Project{ID: "P-race", CompanyID: "C1", Created: at(0)})
		})
	}
	wg.Wait()
	wins.Wait()
	close(errs)
	close(results)
	for err := range errs {
		t.Error(err)
	}
	ok := 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, tenancy.ErrExists):
			t.Errorf("racing CreateProject: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d racing creates of one project succeeded, want 1", ok, workers)
	}
	ps, err := d.Projects(ctx, "C1")
	must(t, err)
	ks, err := d.Keys(ctx, "C1")
	must(t, err)
	if len(ps) != workers*each+1 || len(ks) != workers*each {
		t.Fatalf("after concurrent creates: %d projects, %d keys; want %d, %d", len(ps), len(ks), workers*each+1, workers*each)
	}
}

// testAuthenticate runs key authentication against the directory: the
// hash must survive storage, and a revocation or rotation must take effect
// on the very next call.
func testAuthenticate(t *testing.T, d tenancy.Directory) {
	ctx := t.Context()
	w := fill(t, d)
	var iss tenancy.Issuer
	company := w.companies[1]
	own, other := w.projects[1].ID, w.projects[3].ID // both in company 1
	foreign := w.projects[0].ID                      // company 0
	mk := func(role tenancy.Role, projects ...string) (tenancy.Key, string) {
		t.Helper()
		k, secret, err := iss.NewKey(tenancy.Key{CompanyID: company, Name: "test", Role: role, ProjectIDs: projects})
		must(t, err)
		must(t, d.CreateKey(ctx, k))
		return k, secret
	}
	admin, adminSecret := mk(tenancy.RoleAdmin)
	scoped, scopedSecret := mk(tenancy.RoleReader, own)

	p, err := tenancy.Authenticate(ctx, d, own, adminSecret)
	must(t, err)
	if p.KeyID != admin.ID || p.CompanyID != company || p.Role != tenancy.RoleAdmin || p.ProjectID != own {
		t.Fatalf("Authenticate = %+v", p)
	}
	if _, err := tenancy.Authenticate(ctx, d, "", adminSecret); err != nil {
		t.Fatalf("Authenticate without a project: %v", err)
	}
	p, err = tenancy.Authenticate(ctx, d, own, scopedSecret)
	must(t, err)
	if p.Require(tenancy.RoleReader) != nil || !errors.Is(p.Require(tenancy.RoleWriter), tenancy.ErrForbidden) {
		t.Fatal("a reader key must search and not write")
	}
	_, err = tenancy.Authenticate(ctx, d, other, scopedSecret)
	wantErr(t, "key used outside its projects", err, tenancy.ErrForbidden)
	_, err = tenancy.Authenticate(ctx, d, foreign, adminSecret)
	wantErr(t, "another company's project", err, tenancy.ErrNotFound)
	_, err = tenancy.Authenticate(ctx, d, "P-none", adminSecret)
	wantErr(t, "unknown project", err, tenancy.ErrNotFound)

	_, err = tenancy.Authenticate(ctx, d, own, flip(adminSecret, len(adminSecret)-5))
	wantErr(t, "wrong secret", err, tenancy.ErrWrongSecret)
	unknown, _ := tenancy.NewKeySecret(tenancy.NewKeyID())
	_, err = tenancy.Authenticate(ctx, d, own, unknown)
	wantErr(t, "unknown key", err, tenancy.ErrUnauthenticated)
	// Another key's secret under this key's id.
	_, err = tenancy.Authenticate(ctx, d, own, admin.ID+scopedSecret[len(scoped.ID):])
	wantErr(t, "secret of another key", err, tenancy.ErrUnauthenticated)

	// Rotation: the old secret stops at once, the new one works.
	rotated, newSecret, err := iss.Rotate(admin)
	must(t, err)
	must(t, d.UpdateKey(ctx, rotated))
	_, err = tenancy.Authenticate(ctx, d, own, adminSecret)
	wantErr(t, "old secret after rotate", err, tenancy.ErrUnauthenticated)
	if _, err := tenancy.Authenticate(ctx, d, own, newSecret); err != nil {
		t.Fatalf("new secret after rotate: %v", err)
	}
	// Revocation takes effect on the next call.
	rotated.Revoked = time.Now()
	must(t, d.UpdateKey(ctx, rotated))
	_, err = tenancy.Authenticate(ctx, d, own, newSecret)
	wantErr(t, "revoked key", err, tenancy.ErrKeyRevoked)
	// Expiry.
	exp, expSecret := mk(tenancy.RoleWriter)
	exp.Expires = time.Now().Add(-time.Millisecond)
	must(t, d.UpdateKey(ctx, exp))
	_, err = tenancy.Authenticate(ctx, d, own, expSecret)
	wantErr(t, "expired key", err, tenancy.ErrKeyExpired)
	exp.Expires = time.Now().Add(time.Hour)
	must(t, d.UpdateKey(ctx, exp))
	if _, err := tenancy.Authenticate(ctx, d, own, expSecret); err != nil {
		t.Fatalf("key expiring in an hour: %v", err)
	}
}

// flip changes the character at i to another of the base64url alphabet.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}
