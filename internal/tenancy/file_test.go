package tenancy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/tenancy"
	"github.com/audittrail/audittrail/internal/tenancy/tenancytest"
)

func openFile(t *testing.T, path string) *tenancy.FileDirectory {
	t.Helper()
	d, err := tenancy.OpenFileDirectory(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFileDirectoryConformance(t *testing.T) {
	tenancytest.Run(t, func(t *testing.T) tenancy.Directory {
		return openFile(t, filepath.Join(t.TempDir(), "tenancy.json"))
	})
}

func TestFileDirectoryReopen(t *testing.T) {
	tenancytest.RunReopen(t, func(t *testing.T) (tenancy.Directory, func(*testing.T) tenancy.Directory) {
		path := filepath.Join(t.TempDir(), "tenancy.json")
		return openFile(t, path), func(t *testing.T) tenancy.Directory { return openFile(t, path) }
	})
}

func TestFileDirectoryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tenancy.json")
	d := openFile(t, path)
	ctx := t.Context()
	k, secret, err := tenancy.Issuer{}.NewKey(tenancy.Key{CompanyID: "C1", Role: tenancy.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CreateCompany(ctx, tenancy.Company{ID: "C1", Settings: tenancy.DefaultSettings()}); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600: it holds key hashes", st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret[len(k.ID)+1:]) {
		t.Error("the secret itself is in the file")
	}
	if !strings.Contains(string(b), `"hash"`) {
		t.Error("the key hash is not in the file")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}

	// A second process (or a second open) must not write the same file.
	if d2, err := tenancy.OpenFileDirectory(path); err == nil {
		d2.Close()
		t.Error("a second OpenFileDirectory of an open file succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Companies(ctx); err != tenancy.ErrClosed {
		t.Errorf("Companies after Close = %v, want ErrClosed", err)
	}

	// The key still authenticates after reopening: its hash was persisted.
	d = openFile(t, path)
	defer d.Close()
	if _, err := tenancy.Authenticate(ctx, d, "", secret); err != nil {
		t.Fatalf("Authenticate after reopen: %v", err)
	}
}

func TestFileDirectoryRefusesBadFile(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":     `{"version":1,"companies":[`,
		"wrong version": `{"version":99,"companies":[],"projects":[],"keys":[]}`,
		"unknown field": `{"version":1,"companies":[],"projects":[],"keys":[],"extra":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tenancy.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if d, err := tenancy.OpenFileDirectory(path); err == nil {
				d.Close()
				t.Fatal("opened a damaged file as if it were fine")
			}
		})
	}
}

func TestFileDirectoryWriteFailureChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenancy.json")
	d := openFile(t, path)
	defer d.Close()
	// A non-empty directory where the file was makes the rename fail, even
	// for root.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateCompany(t.Context(), tenancy.Company{ID: "C1"}); err == nil {
		t.Fatal("CreateCompany succeeded though the file could not be written")
	}
	if cs, _ := d.Companies(t.Context()); len(cs) != 0 {
		t.Fatalf("a failed write still changed memory: %v", cs)
	}
}

func TestBootstrap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenancy.json")
	d := openFile(t, path)
	b, err := tenancy.Bootstrap(t.Context(), d, tenancy.Issuer{})
	if err != nil || b == nil {
		t.Fatalf("Bootstrap = %v, %v", b, err)
	}
	p, err := tenancy.Authenticate(t.Context(), d, b.ProjectID, b.ManagementKey)
	if err != nil {
		t.Fatalf("bootstrap key does not authenticate: %v", err)
	}
	if p.Role != tenancy.RoleAdmin || p.CompanyID != b.CompanyID || !p.AllProjects() || p.KeyID != b.KeyID {
		t.Fatalf("bootstrap principal = %+v", p)
	}
	d.Close()
	d = openFile(t, path)
	defer d.Close()
	if again, err := tenancy.Bootstrap(t.Context(), d, tenancy.Issuer{}); err != nil || again != nil {
		t.Fatalf("second Bootstrap = %+v, %v; want nothing created", again, err)
	}
	if cs, _ := d.Companies(t.Context()); len(cs) != 1 {
		t.Fatalf("%d companies after two starts", len(cs))
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	d, err := tenancy.OpenFileDirectory(filepath.Join(b.TempDir(), "tenancy.json"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	bs, err := tenancy.Bootstrap(b.Context(), d, tenancy.Issuer{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := tenancy.Authenticate(b.Context(), d, bs.ProjectID, bs.ManagementKey); err != nil {
			b.Fatal(err)
		}
	}
}
