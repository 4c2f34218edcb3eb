package ledger_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
)

func TestKeyCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ledger.key")
	s1, v1, err := ledger.LoadOrCreateKey(path, "audit.example")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.HasPrefix(v1, "audit.example+") || strings.Contains(v1, "PRIVATE") {
		t.Fatalf("verifier key %q", v1)
	}
	// The second start reads the same key back.
	s2, v2, err := ledger.LoadOrCreateKey(path, "audit.example")
	if err != nil || v2 != v1 || s2.KeyHash() != s1.KeyHash() {
		t.Fatalf("reloaded key differs: %q vs %q, %v", v2, v1, err)
	}
	// A key given by configuration works the same and signs verifiable
	// checkpoints.
	raw, _ := os.ReadFile(path)
	s3, v3, err := ledger.ParseSigningKey(strings.TrimSpace(string(raw)))
	if err != nil || v3 != v1 {
		t.Fatalf("ParseSigningKey: %q, %v", v3, err)
	}
	cp, err := ledger.SignCheckpointForTest(s3, ledger.TreeID{CompanyID: "c", ProjectID: "p"}, 3, make([]byte, 32), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.VerifyCheckpoint(cp.Note, v1, "audittrail/c/project/p"); err != nil {
		t.Fatalf("checkpoint signed with the configured key: %v", err)
	}
	// A bad key is refused without being echoed.
	_, _, err = ledger.ParseSigningKey("PRIVATE+KEY+x+00000000+c2VjcmV0LXZhbHVl")
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("bad key: %v", err)
	}
}
