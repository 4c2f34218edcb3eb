// Package descopenode runs Descope's own Node SDK, and the audittrail CLI,
// against a freshly built `audittrail serve`: the end-to-end proof that the
// wire format is Descope's.
package descopenode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func requireIntegration(t *testing.T) {
	t.Helper()
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("needs node, npm packages and a built server: set AUDITTRAIL_INTEGRATION=1 to run")
	}
}

// server is one running `audittrail serve` with its bootstrap credentials.
type server struct {
	bin       string
	url       string
	dataDir   string
	projectID string
	key       string
	logMu     sync.Mutex
	log       bytes.Buffer
	cmd       *exec.Cmd
	exited    chan struct{}
	stopOnce  sync.Once
}

func (s *server) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.Write(p)
}

func (s *server) logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildBinary compiles cmd/audittrail once per test process.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "audittrail-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "audittrail")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/audittrail")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/audittrail: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs `audittrail serve` on a temp data dir and a free port and
// waits until /healthz says ready (bootstrap.json written).
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{bin: buildBinary(t), dataDir: t.TempDir(), exited: make(chan struct{})}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.url = "http://" + addr
	s.cmd = exec.Command(s.bin, "serve", "--data-dir", s.dataDir, "--addr", addr)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	// Keep the environment from configuring this server differently.
	s.cmd.Env = cleanEnv()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("server exited during start-up:\n%s", s.logs())
		default:
		}
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not healthy after 60s:\n%s", s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, "bootstrap.json"))
	if err != nil {
		t.Fatalf("healthy but no bootstrap.json: %v", err)
	}
	var boot struct {
		ProjectID     string `json:"projectId"`
		ManagementKey string `json:"managementKey"`
	}
	if err := json.Unmarshal(b, &boot); err != nil || boot.ProjectID == "" || boot.ManagementKey == "" {
		t.Fatalf("bootstrap.json %s: %v", b, err)
	}
	s.projectID, s.key = boot.ProjectID, boot.ManagementKey
	return s
}

// stop sends SIGTERM (graceful shutdown) and kills after 15 s.
func (s *server) stop(t *testing.T) {
	s.stopOnce.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			t.Errorf("server ignored SIGTERM for 15s; killing it")
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs())
		}
	})
}

// cleanEnv is the process environment without AUDITTRAIL_* settings, so a
// developer's shell cannot point the tests elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUDITTRAIL_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *server) env() []string {
	return append(cleanEnv(),
		"AUDITTRAIL_URL="+s.url,
		"AUDITTRAIL_PROJECT_ID="+s.projectID,
		"AUDITTRAIL_MANAGEMENT_KEY="+s.key,
	)
}

var tapCount = regexp.MustCompile(`(?m)^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$`)

func TestDescopeNodeSDK(t *testing.T) {
	requireIntegration(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; the Descope Node SDK check needs Node 20 or later")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@descope", "node-sdk", "package.json")); err != nil {
		// scripts/test.sh runs `npm ci` first; do it here when run alone.
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	s := startServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap")
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("node --test failed: %v", err)
	}
	counts := map[string]int{}
	for _, m := range tapCount.FindAllStringSubmatch(string(out), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	// A run that skipped everything (no server variables) must not pass.
	if counts["pass"] < 10 || counts["fail"] != 0 || counts["skipped"] != 0 || counts["cancelled"] != 0 {
		t.Fatalf("node test summary %v: want ≥ 10 passed and nothing failed, skipped or cancelled", counts)
	}
}

// TestCLIAgainstServer drives the built binary's client commands against
// the real server: emit, search (table and JSON), export and the admin
// commands, end to end.
func TestCLIAgainstServer(t *testing.T) {
	requireIntegration(t)
	s := startServer(t)
	cli := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(s.bin, args...)
		cmd.Env = s.env()
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String(), errOut.String(), code
	}
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := cli(stdin, args...)
		if code != 0 {
			t.Fatalf("audittrail %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
		return out
	}

	// Lift the default 10 searches a minute: this test makes more.
	mustRun("", "settings", "set", "--search-rate-limit", "0")

	id := strings.TrimSpace(mustRun("", "emit", "--action", "CliCheck", "--actor", "ci", "--tenant", "acme",
		"--user", "u1", "--data", `{"note":"hello quetzal"}`, "--type", "warn"))
	if id == "" {
		t.Fatal("emit printed no id")
	}
	var batch strings.Builder
	for i := range 2345 {
		fmt.Fprintf(&batch, `{"id":"batch-%d","action":"BatchCheck","tenants":["acme"],"externalIds":["user%d@example.com"]}`+"\n", i, i%7)
	}
	ids := strings.Fields(mustRun(batch.String(), "emit"))
	if len(ids) != 2345 || ids[0] != "batch-0" {
		t.Fatalf("batch emit printed %d ids", len(ids))
	}
	// Re-sending the same ids stores nothing new.
	mustRun(batch.String(), "emit")

	table := mustRun("", "search", "--tenant", "acme", "--text", "quetzal", "--from", "1h")
	if !strings.Contains(table, "CliCheck") || !strings.Contains(table, "1–1 of 1 matching events") {
		t.Fatalf("search table:\n%s", table)
	}
	jsonOut := mustRun("", "search", "--json", "--login-id", "user3@example.com", "--size", "1000")
	lines := strings.Split(strings.TrimSpace(jsonOut), "\n")
	if len(lines) != 335 { // i%7 == 3 for i < 2345
		t.Fatalf("login-id search: %d records, want 335", len(lines))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["action"] != "BatchCheck" {
		t.Fatalf("NDJSON record %s: %v", lines[0], err)
	}
	if _, ok := rec["occurred"].(string); !ok {
		t.Fatalf("occurred is not a string: %v", rec["occurred"])
	}

	exportFile := filepath.Join(t.TempDir(), "acme.ndjson")
	_, progress, code := cli("", "export", "--tenant", "acme", "-o", exportFile)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, progress)
	}
	if !strings.Contains(progress, "exported 2346 events to "+exportFile) {
		t.Fatalf("export progress: %q", progress)
	}
	f, err := os.Open(exportFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("export line: %v", err)
		}
		seen[r.ID] = true
	}
	if len(seen) != 2346 || !seen[id] || !seen["batch-2344"] {
		t.Fatalf("export holds %d distinct ids", len(seen))
	}
	csvOut := mustRun("", "export", "--format", "csv", "--action", "CliCheck", "--quiet")
	if !strings.HasPrefix(csvOut, "id,") || strings.Count(csvOut, "\n") != 2 {
		t.Fatalf("CSV export:\n%s", csvOut)
	}

	// Admin commands: a reader key can search but not emit.
	mustRun("", "projects", "create", "staging")
	if out := mustRun("", "projects", "list"); !strings.Contains(out, "staging") {
		t.Fatalf("projects list:\n%s", out)
	}
	secret := strings.TrimSpace(mustRun("", "keys", "create", "--name", "ro", "--role", "reader", "--expires", "1d"))
	if !strings.Contains(secret, ".") {
		t.Fatalf("key secret %q", secret)
	}
	if _, errOut, code := cli("", "emit", "--key", secret, "--action", "X", "--actor", "a", "--tenant", "t"); code != 1 || !strings.Contains(errOut, "HTTP 403") {
		t.Fatalf("reader emit: exit %d, %s", code, errOut)
	}
	mustRun("", "search", "--key", secret, "--size", "1")
	keyID := strings.SplitN(secret, ".", 2)[0]
	mustRun("", "keys", "revoke", keyID)
	if _, errOut, code := cli("", "search", "--key", secret); code != 1 || !strings.Contains(errOut, "HTTP 401") {
		t.Fatalf("revoked key: exit %d, %s", code, errOut)
	}
	if out := mustRun("", "search", "--level", "company", "--action", "ManagementKeyRevoked", "--json"); !strings.Contains(out, keyID) {
		t.Fatalf("no company-level ManagementKeyRevoked event naming %s:\n%s", keyID, out)
	}
}
