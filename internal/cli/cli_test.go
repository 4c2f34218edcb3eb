package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// fixedNow is the clock of every test, so ages like 7d give exact bounds.
var fixedNow = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

type seen struct {
	Method, Path, Query, Auth, Body string
}

type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(b)})
		f.mu.Unlock()
		h(w, r, b)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

type result struct {
	code           int
	stdout, stderr string
}

// cliRun runs the CLI against url with the given environment; terminal
// says whether stderr (and stdin) look like a terminal.
type cliRun struct {
	vars     map[string]string
	stdin    string
	terminal bool
}

func (c cliRun) run(t *testing.T, args ...string) result {
	t.Helper()
	return c.runContext(context.Background(), t, args...)
}

func (c cliRun) runContext(ctx context.Context, t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{
		getenv:        func(k string) string { return c.vars[k] },
		stdin:         strings.NewReader(c.stdin),
		stdout:        &out,
		stderr:        &errOut,
		isTerminal:    func(any) bool { return c.terminal },
		now:           func() time.Time { return fixedNow },
		progressEvery: 0,
	}
	code := run(ctx, e, args)
	return result{code, out.String(), errOut.String()}
}

func connected(url string) cliRun {
	return cliRun{vars: map[string]string{
		"AUDITTRAIL_URL": url, "AUDITTRAIL_PROJECT_ID": "P1", "AUDITTRAIL_MANAGEMENT_KEY": "K1.secret",
		"AUDITTRAIL_DATA_DIR": "/nonexistent",
	}}
}

func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("not JSON: %v: %q", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
}

const twoRecords = `{"audits":[
 {"id":"e2","projectId":"P1","level":"project","userId":"u1","action":"LoginFailed","type":"warn","actorId":"a1",
  "occurred":"1764100800123","device":"Desktop","method":"otp","geo":"US","remoteAddress":"203.0.113.7",
  "externalIds":["john@example.com"],"tenants":["t1","t2"],"data":{"error_message":"bad code"}},
 {"id":"e1","projectId":"P1","level":"project","userId":"evil\u001b[31mred\ttab","action":"LoginSucceed","type":"info",
  "actorId":"","occurred":"1764100000000","device":"","method":"","geo":"","remoteAddress":"",
  "externalIds":[],"tenants":[]}
],"total":1234}`

func TestSearchFlagsToWire(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { reply(w, 200, twoRecords) })
	c := connected(f.URL)
	res := c.run(t, "search", "--user", "u1", "--user=u2,u3", "--action", "LoginFailed", "--exclude-action", "UserRefresh",
		"--actor", "a1", "--device", "Bot,Mobile", "--method", "otp", "--geo", "US", "--ip", "203.0.113.7",
		"--login-id", "john@example.com", "--tenant", "t1", "--tenant", "t2,t3", "--no-tenants", "--text", "john chrome",
		"--from", "7d", "--to", "2026-11-25T19:00:00Z", "--level", "company", "--changed-field", "phone",
		"--size", "50", "--page", "2", "--oldest-first")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	r := f.requests()[0]
	if r.Method != "POST" || r.Path != "/v1/mgmt/audit/search" || r.Auth != "Bearer P1:K1.secret" {
		t.Fatalf("%+v", r)
	}
	from := fixedNow.Add(-7 * 24 * time.Hour).UnixMilli()
	to := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC).UnixMilli()
	sameJSON(t, r.Body, fmt.Sprintf(`{"userIds":["u1","u2","u3"],"actions":["LoginFailed"],"excludedActions":["UserRefresh"],
	  "actorIds":["a1"],"devices":["Bot","Mobile"],"methods":["otp"],"geos":["US"],"remoteAddresses":["203.0.113.7"],
	  "externalIds":["john@example.com"],"tenants":["t1","t2","t3"],"noTenants":true,"text":"john chrome",
	  "from":%d,"to":%d,"levels":["company"],"changedFields":["phone"],"oldestFirst":true,"size":50,"page":2}`, from, to))

	// No filter at all: only the table's page size goes out.
	if res := c.run(t, "search", "--from", "1764000000000"); res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	sameJSON(t, f.requests()[1].Body, `{"from":1764000000000,"size":100}`)
}

func TestSearchTable(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { reply(w, 200, twoRecords) })
	res := connected(f.URL).run(t, "search")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(res.stdout, "\n")
	header, row1, row2 := lines[0], lines[1], lines[2]
	if !strings.HasPrefix(header, "OCCURRED (UTC)") {
		t.Fatalf("header %q", header)
	}
	// Columns line up: ACTION starts at the same offset in every row.
	col := strings.Index(header, "ACTION")
	if !strings.HasPrefix(row1[col:], "LoginFailed") || !strings.HasPrefix(row2[col:], "LoginSucceed") {
		t.Fatalf("misaligned:\n%s", res.stdout)
	}
	for _, want := range []string{"2025-11-25 20:00:00.123Z", "warn", "john@example.com", "t1,t2", "203.0.113.7", "e2"} {
		if !strings.Contains(row1, want) {
			t.Errorf("row 1 lacks %q: %q", want, row1)
		}
	}
	if strings.ContainsAny(row2, "\x1b\t") || !strings.Contains(row2, "evil?[31mred?tab") {
		t.Errorf("control characters not neutralised: %q", row2)
	}
	if !strings.Contains(res.stdout, "1–2 of 1234 matching events (next: --page 1)") {
		t.Errorf("no total line:\n%s", res.stdout)
	}
}

func TestSearchTableEmptyAndPastEnd(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if strings.Contains(string(body), `"page":9`) {
			reply(w, 200, `{"audits":[],"total":12}`)
			return
		}
		reply(w, 200, `{"audits":[],"total":0}`)
	})
	if res := connected(f.URL).run(t, "search"); !strings.Contains(res.stdout, "no matching events") {
		t.Errorf("empty: %q", res.stdout)
	}
	if res := connected(f.URL).run(t, "search", "--page", "9"); !strings.Contains(res.stdout, "page 9 is past the end: 12 matching events") {
		t.Errorf("past end: %q", res.stdout)
	}
}

func TestSearchJSON(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { reply(w, 200, twoRecords) })
	res := connected(f.URL).run(t, "search", "--json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), res.stdout)
	}
	sameJSON(t, lines[0], `{"id":"e2","projectId":"P1","level":"project","userId":"u1","action":"LoginFailed","type":"warn",
	  "actorId":"a1","occurred":"1764100800123","device":"Desktop","method":"otp","geo":"US","remoteAddress":"203.0.113.7",
	  "externalIds":["john@example.com"],"tenants":["t1","t2"],"data":{"error_message":"bad code"}}`)
	if !strings.Contains(res.stderr, "2 of 1234 matching events") {
		t.Errorf("stderr %q", res.stderr)
	}
}

func TestConnection(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { reply(w, 200, `{"audits":[],"total":0}`) })
	// Flags win over the environment.
	c := connected("http://127.0.0.1:1")
	if res := c.run(t, "search", "--url", f.URL, "--project", "P9", "--key", "K9.x"); res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if got := f.requests()[0].Auth; got != "Bearer P9:K9.x" {
		t.Errorf("Authorization %q", got)
	}

	// A key file, and no project: admin-style "Bearer <key>".
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("K7.fromfile\n"), 0o600)
	c = cliRun{vars: map[string]string{"AUDITTRAIL_URL": f.URL, "AUDITTRAIL_MANAGEMENT_KEY_FILE": keyFile, "AUDITTRAIL_DATA_DIR": dir}}
	if res := c.run(t, "search"); res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if got := f.requests()[1].Auth; got != "Bearer K7.fromfile" {
		t.Errorf("Authorization %q", got)
	}

	// Nothing configured: the local server's bootstrap.json.
	os.WriteFile(filepath.Join(dir, "bootstrap.json"), []byte(`{"companyId":"C1","projectId":"PB","managementKey":"KB.boot"}`), 0o600)
	c = cliRun{vars: map[string]string{"AUDITTRAIL_URL": f.URL, "AUDITTRAIL_DATA_DIR": dir}}
	if res := c.run(t, "search"); res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if got := f.requests()[2].Auth; got != "Bearer PB:KB.boot" {
		t.Errorf("Authorization %q", got)
	}

	// No key anywhere is a usage error, before any request.
	c = cliRun{vars: map[string]string{"AUDITTRAIL_URL": f.URL, "AUDITTRAIL_DATA_DIR": t.TempDir()}}
	res := c.run(t, "search")
	if res.code != 2 || !strings.Contains(res.stderr, "no management key") {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if n := len(f.requests()); n != 3 {
		t.Fatalf("%d requests", n)
	}
}

func TestUsageErrors(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { reply(w, 200, `{"audits":[],"total":0}`) })
	c := connected(f.URL)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Commands:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"search", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"search", "--from", "yesterday"}, `--from "yesterday"`},
		{[]string{"search", "--from", "1d", "--to", "2d"}, "is after --to"},
		{[]string{"search", "--size", "0"}, "--size 0"},
		{[]string{"search", "--size", "1001"}, "--size 1001"},
		{[]string{"search", "--page", "-1"}, "--page -1"},
		{[]string{"search", "--level", "galaxy"}, `--level "galaxy"`},
		{[]string{"search", "extra"}, `unexpected argument "extra"`},
		{[]string{"export", "--format", "xml"}, `--format "xml"`},
		{[]string{"emit", "--action", "A", "--data", "[1]"}, "--data"},
		{[]string{"emit", "--type", "warn"}, "--type needs --action"},
		{[]string{"projects"}, "missing subcommand"},
		{[]string{"projects", "create"}, "missing argument"},
		{[]string{"projects", "rename", "x"}, `unknown subcommand "rename"`},
		{[]string{"keys", "create", "--role", "admin"}, "--name is required"},
		{[]string{"keys", "create", "--name", "x", "--role", "root"}, `--role "root"`},
		{[]string{"keys", "create", "--name", "x", "--expires", "soon"}, `--expires "soon"`},
		{[]string{"settings", "set"}, "nothing to set"},
		{[]string{"settings", "set", "--retention-days", "-4"}, "want a whole number"},
		{[]string{"help", "nope"}, `unknown command "nope"`},
	} {
		res := c.run(t, tc.args...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	// Stdin a terminal and no --action: emit explains instead of hanging.
	c.terminal = true
	if res := c.run(t, "emit"); res.code != 2 || !strings.Contains(res.stderr, "pipe NDJSON") {
		t.Errorf("emit at a terminal: %d %q", res.code, res.stderr)
	}
}

func TestServerErrorsExit1WithMessage(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Retry-After", "42")
		reply(w, 429, `{"errorCode":"E130429","errorDescription":"Rate limit exceeded","errorMessage":"at most 10 searches a minute"}`)
	})
	res := connected(f.URL).run(t, "search")
	if res.code != 1 {
		t.Fatalf("exit %d", res.code)
	}
	for _, want := range []string{"at most 10 searches a minute", "E130429", "HTTP 429", "retry after 42s"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q: %q", want, res.stderr)
		}
	}
	// A network failure is exit 1 too.
	res = connected("http://127.0.0.1:1").run(t, "search")
	if res.code != 1 || !strings.Contains(res.stderr, "is the server running?") {
		t.Fatalf("unreachable: exit %d %q", res.code, res.stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	c := connected("http://127.0.0.1:1")
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "search"}, {"search", "--help"}, {"keys", "--help"}, {"keys", "create", "-h"}} {
		res := c.run(t, args...)
		if res.code != 0 || !strings.Contains(res.stdout, "Usage") {
			t.Errorf("%q: exit %d, stdout %q", args, res.code, res.stdout)
		}
	}
	if res := c.run(t, "help", "export"); !strings.Contains(res.stdout, "-oldest-first") || !strings.Contains(res.stdout, "-format") {
		t.Errorf("export help lacks its flags: %s", res.stdout)
	}
	res := c.run(t, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "audittrail ") || !strings.Contains(res.stdout, "client ") {
		t.Errorf("version: %d %q", res.code, res.stdout)
	}
}

func ndjsonStream(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"e%d","action":"A","occurred":"%d"}`+"\n", i, 1764100000000-int64(i))
	}
	return b.String()
}

func TestExportToFileWithPlainProgress(t *testing.T) {
	stream := ndjsonStream(3000)
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Total-Count", "3000")
		// Several writes, so progress sees the stream grow.
		for i := 0; i < len(stream); i += 20000 {
			io.WriteString(w, stream[i:min(i+20000, len(stream))])
			w.(http.Flusher).Flush()
		}
	})
	out := filepath.Join(t.TempDir(), "audit.ndjson")
	res := connected(f.URL).run(t, "export", "--action", "A", "--from", "30d", "-o", out)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != stream {
		t.Fatalf("file: %d bytes, err %v", len(got), err)
	}
	r := f.requests()[0]
	if r.Path != "/v1/mgmt/audit/export" || r.Query != "format=ndjson" {
		t.Fatalf("%s?%s", r.Path, r.Query)
	}
	sameJSON(t, r.Body, fmt.Sprintf(`{"actions":["A"],"from":%d}`, fixedNow.Add(-30*24*time.Hour).UnixMilli()))
	if strings.Contains(res.stderr, "\r") {
		t.Errorf("carriage returns in non-terminal progress: %q", res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	if len(lines) < 3 {
		t.Fatalf("too few progress lines: %q", res.stderr)
	}
	if !strings.Contains(lines[len(lines)-2], "export: 3000/3000 events (100%)") {
		t.Errorf("final progress line %q", lines[len(lines)-2])
	}
	if strings.Contains(lines[len(lines)-3], "3000/3000") {
		t.Errorf("final progress line repeated: %q", res.stderr)
	}
	if want := "exported 3000 events to " + out; lines[len(lines)-1] != want {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], want)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestExportCSVToStdoutWithBar(t *testing.T) {
	stream := "id,occurred\r\ne1,1\r\ne2,2\r\n"
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Total-Count", "2")
		io.WriteString(w, stream)
	})
	c := connected(f.URL)
	c.terminal = true
	res := c.run(t, "export", "--format", "CSV")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if res.stdout != stream {
		t.Fatalf("stdout %q", res.stdout)
	}
	if q := f.requests()[0].Query; q != "format=csv" {
		t.Fatalf("query %q", q)
	}
	if !strings.Contains(res.stderr, "\r[==============================] 100% 2/2 events") {
		t.Errorf("no full bar: %q", res.stderr)
	}
	if !strings.HasSuffix(res.stderr, "exported 2 events to stdout\n") {
		t.Errorf("summary: %q", res.stderr)
	}
}

func TestExportIncompleteKeepsNoFile(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Total-Count", "10")
		io.WriteString(w, ndjsonStream(4))
	})
	dir := t.TempDir()
	out := filepath.Join(dir, "audit.ndjson")
	res := connected(f.URL).run(t, "export", "--quiet", "-o", out)
	if res.code != 1 || !strings.Contains(res.stderr, "4 of 10 records") {
		t.Fatalf("exit %d: %q", res.code, res.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestEmitSingle(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { reply(w, 200, `{"id":"new1"}`) })
	res := connected(f.URL).run(t, "emit", "--action", "ReportExported", "--type", "warn", "--user", "u1", "--actor", "a1",
		"--tenant", "acme", "--data", `{"rows":12,"fmt":"csv"}`, "--occurred", "2026-11-25T19:59:00Z", "--level", "company",
		"--id", "client-1", "--device", "Desktop", "--method", "otp", "--geo", "IL", "--ip", "10.0.0.1", "--login-id", "a@b.c,d@e.f")
	if res.code != 0 || res.stdout != "new1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	r := f.requests()[0]
	if r.Path != "/v1/mgmt/audit/event" {
		t.Fatalf("path %s", r.Path)
	}
	sameJSON(t, r.Body, fmt.Sprintf(`{"userId":"u1","action":"ReportExported","type":"warn","actorId":"a1","tenantId":"acme",
	  "data":{"rows":12,"fmt":"csv"},"id":"client-1","level":"company","occurred":"%d","device":"Desktop","method":"otp",
	  "geo":"IL","remoteAddress":"10.0.0.1","externalIds":["a@b.c","d@e.f"]}`, time.Date(2026, 11, 25, 19, 59, 0, 0, time.UTC).UnixMilli()))

	connected(f.URL).run(t, "emit", "--action", "A", "--actor", "x", "--tenant", "t")
	sameJSON(t, f.requests()[1].Body, `{"userId":"","action":"A","type":"info","actorId":"x","tenantId":"t"}`)
}

func TestEmitBatchFromStdin(t *testing.T) {
	var mu sync.Mutex
	next := 0
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var in struct{ Events []json.RawMessage }
		json.Unmarshal(body, &in)
		mu.Lock()
		defer mu.Unlock()
		ids := make([]string, len(in.Events))
		for i := range ids {
			ids[i] = fmt.Sprintf("id%d", next)
			next++
		}
		b, _ := json.Marshal(map[string]any{"ids": ids})
		reply(w, 200, string(b))
	})
	var input strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&input, `{"action":"A%d","occurred":%d,"externalIds":["x"]}`+"\n", i, 1764100000000+i)
		if i == 10 {
			input.WriteString("\n   \n") // blank lines are skipped
		}
	}
	c := connected(f.URL)
	c.stdin = input.String()
	res := c.run(t, "emit")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	ids := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(ids) != 2500 || ids[0] != "id0" || ids[2499] != "id2499" {
		t.Fatalf("%d ids", len(ids))
	}
	if !strings.Contains(res.stderr, "emitted 2500 events") {
		t.Errorf("stderr %q", res.stderr)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d batches, want 3 (1000+1000+500)", len(reqs))
	}
	var first struct{ Events []map[string]any }
	json.Unmarshal([]byte(reqs[0].Body), &first)
	if len(first.Events) != 1000 || first.Events[0]["occurred"] != "1764100000000" || first.Events[0]["action"] != "A0" {
		t.Fatalf("first batch: %d events, first %v", len(first.Events), first.Events[0])
	}
}

func TestEmitBatchErrorsNameTheLine(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		reply(w, 400, `{"errorCode":"E011003","errorDescription":"Validation failure","errorMessage":"events[1].type: must be \"info\", \"warn\" or \"error\""}`)
	})
	c := connected(f.URL)
	c.stdin = "{\"action\":\"A\"}\n\n{\"action\":\"B\",\"type\":\"bad\"}\n"
	res := c.run(t, "emit")
	if res.code != 1 || !strings.Contains(res.stderr, `stdin line 3: .type: must be "info"`) {
		t.Fatalf("exit %d: %q", res.code, res.stderr)
	}

	c.stdin = "{\"action\":\"A\"}\nnot json\n"
	res = c.run(t, "emit")
	if res.code != 1 || !strings.Contains(res.stderr, "stdin line 2: not a JSON event") {
		t.Fatalf("exit %d: %q", res.code, res.stderr)
	}
	if n := len(f.requests()); n != 1 {
		t.Fatalf("bad input was sent: %d requests", n)
	}
}

func TestProjectsKeysSettings(t *testing.T) {
	key := `{"id":"K2","name":"ci","role":"writer","projectIds":["P1"],"created":"2026-11-25T10:00:00Z","expires":"2026-11-25T12:00:00Z"}`
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/mgmt/projects":
			reply(w, 200, `{"projects":[{"id":"P1","name":"default","created":"2026-11-25T10:00:00Z"}]}`)
		case "POST /v1/mgmt/projects":
			reply(w, 200, `{"project":{"id":"P2","name":"staging","created":"2026-11-25T10:00:00Z"}}`)
		case "DELETE /v1/mgmt/projects/P2":
			reply(w, 200, `{}`)
		case "GET /v1/mgmt/keys":
			reply(w, 200, `{"keys":[`+key+`,{"id":"K1","name":"boot","role":"admin","projectIds":[],"created":"2026-11-25T10:00:00Z"}]}`)
		case "POST /v1/mgmt/keys", "POST /v1/mgmt/keys/K2/rotate":
			reply(w, 200, `{"key":`+key+`,"secret":"K2.topsecret"}`)
		case "POST /v1/mgmt/keys/K2/revoke":
			reply(w, 200, `{"key":{"id":"K2","revoked":"2026-11-25T11:00:00Z"}}`)
		case "GET /v1/mgmt/company/settings":
			reply(w, 200, `{"settings":{"searchWindowDays":30,"retentionDays":90,"searchRateLimit":null}}`)
		case "PATCH /v1/mgmt/company/settings":
			reply(w, 200, `{"settings":{"searchWindowDays":14,"retentionDays":90,"searchRateLimit":0}}`)
		default:
			reply(w, 404, `{"errorCode":"E011404","errorMessage":"unknown project"}`)
		}
	})
	c := connected(f.URL)
	check := func(args []string, wantOut string) result {
		t.Helper()
		res := c.run(t, args...)
		if res.code != 0 || !strings.Contains(res.stdout, wantOut) {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want %q", args, res.code, res.stdout, res.stderr, wantOut)
		}
		return res
	}
	check([]string{"projects", "list"}, "P1  default  2026-11-25T10:00:00Z")
	check([]string{"projects", "create", "staging"}, "created project P2 (staging)")
	check([]string{"projects", "delete", "P2"}, "deleted project P2")
	res := check([]string{"keys", "list"}, "K2  ci    writer  P1        expired")
	if !strings.Contains(res.stdout, "K1  boot  admin   all       active") {
		t.Errorf("keys table:\n%s", res.stdout)
	}
	res = check([]string{"keys", "create", "--name", "ci", "--role", "writer", "--projects", "P1", "--expires", "2h"}, "K2.topsecret")
	if res.stdout != "K2.topsecret\n" || !strings.Contains(res.stderr, "shown this once") {
		t.Errorf("secret output: %q / %q", res.stdout, res.stderr)
	}
	check([]string{"keys", "rotate", "K2", "--json"}, `"secret": "K2.topsecret"`)
	check([]string{"keys", "revoke", "K2"}, "revoked key K2")
	check([]string{"settings", "get"}, "search rate limit  server default")
	res = check([]string{"settings", "set", "--search-window-days", "14", "--search-rate-limit", "0"}, "search window      14 days")
	if !strings.Contains(res.stdout, "search rate limit  none") {
		t.Errorf("settings:\n%s", res.stdout)
	}
	check([]string{"settings", "set", "--search-rate-limit", "default"}, "search window")
	res = c.run(t, "projects", "delete", "P404")
	if res.code != 1 || !strings.Contains(res.stderr, "unknown project (E011404, HTTP 404)") {
		t.Errorf("delete unknown: %d %q", res.code, res.stderr)
	}

	bodies := map[string]string{}
	var patches []string
	for _, r := range f.requests() {
		bodies[r.Method+" "+r.Path] = r.Body
		if r.Method == "PATCH" {
			patches = append(patches, r.Body)
		}
	}
	sameJSON(t, bodies["POST /v1/mgmt/projects"], `{"name":"staging"}`)
	sameJSON(t, bodies["POST /v1/mgmt/keys"], `{"name":"ci","role":"writer","projectIds":["P1"],"expiresInSeconds":7200}`)
	sameJSON(t, patches[0], `{"searchWindowDays":14,"searchRateLimit":0}`)
	sameJSON(t, patches[1], `{"searchRateLimit":null}`)
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", time.Time{}, false},
		{"7d", fixedNow.Add(-7 * 24 * time.Hour), false},
		{"2w", fixedNow.Add(-14 * 24 * time.Hour), false},
		{"15m", fixedNow.Add(-15 * time.Minute), false},
		{"1d12h", fixedNow.Add(-36 * time.Hour), false},
		{"1h30m", fixedNow.Add(-90 * time.Minute), false},
		{"1764100000123", time.UnixMilli(1764100000123).UTC(), false},
		{"2026-11-25T14:00:00Z", time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC), false},
		{"2026-11-25T14:00:00+02:00", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), false},
		{"2026-11-25T14:00:00", time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC), false},
		{"2026-11-25", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), false},
		{"0", time.Time{}, true},
		{"0d", time.Time{}, true},
		{"-7d", time.Time{}, true},
		{"7", time.Date(1970, 1, 1, 0, 0, 0, 7e6, time.UTC), false},
		{"7x", time.Time{}, true},
		{"d", time.Time{}, true},
		{"99999999999d", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	} {
		got, err := parseTime(tc.in, fixedNow)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCell(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "-",
		"plain":                    "plain",
		"a\nb\tc\x1b[0m\u202edone": "a?b?c?[0m?done",
		strings.Repeat("x", 41):    strings.Repeat("x", 39) + "…",
		strings.Repeat("é", 40):    strings.Repeat("é", 40),
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExportInterruptedRemovesPartialFile(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Total-Count", "1000")
		io.WriteString(w, ndjsonStream(2))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a long export still running
	})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	res := connected(f.URL).runContext(ctx, t, "export", "-o", filepath.Join(dir, "audit.ndjson"))
	if res.code != 130 || !strings.Contains(res.stderr, "interrupted") {
		t.Fatalf("exit %d: %q", res.code, res.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "15m", "2026-11-25", "2026-11-25T14:00:00Z", "1764100000123", "0", "9w9d", "-1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s, fixedNow)
		if err != nil {
			return
		}
		// An age never lands after now; epoch ms are never before 1970.
		if d, ok := parseAge(strings.TrimSpace(s)); ok && (d <= 0 || got.After(fixedNow)) {
			t.Fatalf("parseTime(%q) = %v from age %v", s, got, d)
		}
		if isDigits(strings.TrimSpace(s)) && got.UnixMilli() <= 0 {
			t.Fatalf("parseTime(%q) = %v", s, got)
		}
	})
}

func FuzzCell(f *testing.F) {
	f.Add("plain")
	f.Add("a\nb\x1b[31m\u202e")
	f.Fuzz(func(t *testing.T, s string) {
		c := cell(s)
		if utf8.RuneCountInString(c) > maxCell {
			t.Fatalf("cell(%q) has %d runes", s, utf8.RuneCountInString(c))
		}
		for _, r := range c {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("cell(%q) = %q keeps %U", s, c, r)
			}
		}
	})
}

func TestGet(t *testing.T) {
	f := newServer(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.URL.Path == "/v1/mgmt/audit/event/e1" {
			reply(w, 200, `{"id":"e1","action":"A","occurred":"1764100000000","externalIds":["x@y.z"],"tenants":[]}`)
			return
		}
		reply(w, 404, `{"errorCode":"E011404","errorDescription":"Not found","errorMessage":"no event \"e2\""}`)
	})
	res := connected(f.URL).run(t, "get", "e1")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	sameJSON(t, res.stdout, `{"id":"e1","userId":"","action":"A","actorId":"","occurred":"1764100000000","device":"",
	  "method":"","geo":"","remoteAddress":"","externalIds":["x@y.z"],"tenants":[]}`)
	res = connected(f.URL).run(t, "get", "e2")
	if res.code != 1 || !strings.Contains(res.stderr, `no event "e2" (E011404, HTTP 404)`) {
		t.Fatalf("exit %d: %q", res.code, res.stderr)
	}
	if res := connected(f.URL).run(t, "get"); res.code != 2 {
		t.Fatalf("no id: exit %d", res.code)
	}
}
