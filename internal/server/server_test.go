package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/tenancy"
)

type running struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	stdout *bytes.Buffer
}

// start runs the server in-process on a loopback port and waits for
// /healthz.
func start(t *testing.T, cfg config.Config) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1), stdout: &bytes.Buffer{}}
	exited := make(chan struct{})
	var runErr error
	go func() {
		runErr = Run(ctx, cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Stdout: r.stdout, Listener: ln})
		close(exited)
		r.done <- runErr
	}()
	waitHealthy(t, r.url, func() error {
		select {
		case <-exited:
			return fmt.Errorf("server exited: %v", runErr)
		default:
			return nil
		}
	})
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
}

// waitHealthy polls /healthz until it answers 200; exited reports a
// server that died meanwhile.
func waitHealthy(t *testing.T, url string, exited func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := exited(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("server not healthy in 30s")
}

func testConfig(t *testing.T) config.Config {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.SearchRateLimit = 0
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func TestBootstrapOnceAndRestart(t *testing.T) {
	cfg := testConfig(t)
	r := start(t, cfg)
	creds, err := ReadBootstrap(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(cfg.DataDir, BootstrapFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap.json mode %v (%v)", fi.Mode(), err)
	}
	if !strings.Contains(r.stdout.String(), creds.ManagementKey) || !strings.Contains(r.stdout.String(), creds.ProjectID) {
		t.Fatalf("credentials not printed: %q", r.stdout)
	}
	c, err := client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "A", ActorID: "a", TenantID: "t", Type: "info"})
	if err != nil {
		t.Fatal(err)
	}
	r.stop(t)

	// A later start creates nothing, prints nothing, keeps the event.
	r = start(t, cfg)
	defer r.stop(t)
	if r.stdout.Len() != 0 {
		t.Fatalf("second start printed %q", r.stdout)
	}
	again, err := ReadBootstrap(cfg.DataDir)
	if err != nil || again != creds {
		t.Fatalf("bootstrap.json changed: %v", err)
	}
	c, _ = client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	projects, err := c.Projects().List(ctx)
	if err != nil || len(projects) != 1 {
		t.Fatalf("projects after restart: %v %v", projects, err)
	}
	if got, err := c.Audit().Get(ctx, id); err != nil || got.ID != id {
		t.Fatalf("event after restart: %v", err)
	}
}

// A crash after bootstrap.json was written but before the directory held
// the company must not lose the credentials: the next start completes it.
func TestBootstrapResumes(t *testing.T) {
	dataDir := t.TempDir()
	want := Credentials{CompanyID: tenancy.NewCompanyID(), ProjectID: tenancy.NewProjectID()}
	want.ManagementKey, _ = tenancy.NewKeySecret(tenancy.NewKeyID())
	if err := writeFileAtomic(filepath.Join(dataDir, BootstrapFile), want); err != nil {
		t.Fatal(err)
	}
	dir, err := tenancy.OpenFileDirectory(filepath.Join(dataDir, tenancyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	ctx := context.Background()
	if err := Bootstrap(ctx, dir, dataDir, io.Discard, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	k, err := tenancy.AuthenticateKey(ctx, dir, want.ManagementKey)
	if err != nil || k.CompanyID != want.CompanyID || k.Role != tenancy.RoleAdmin {
		t.Fatalf("resumed key: %+v %v", k, err)
	}
	if p, err := dir.Project(ctx, want.ProjectID); err != nil || p.CompanyID != want.CompanyID {
		t.Fatalf("resumed project: %v", err)
	}
	// And a second call is a no-op.
	if err := Bootstrap(ctx, dir, dataDir, io.Discard, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if cs, _ := dir.Companies(ctx); len(cs) != 1 {
		t.Fatalf("%d companies", len(cs))
	}
}

func TestRetention(t *testing.T) {
	dataDir := t.TempDir()
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dataDir, eventsDir), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir, err := tenancy.OpenFileDirectory(filepath.Join(dataDir, tenancyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	ctx := context.Background()
	if err := Bootstrap(ctx, dir, dataDir, io.Discard, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	creds, _ := ReadBootstrap(dataDir)
	now := time.Now()
	mk := func(id string, age time.Duration) event.Event {
		return event.Event{ID: id, CompanyID: creds.CompanyID, ProjectID: creds.ProjectID, Level: event.LevelProject,
			Action: "A", Type: "info", Occurred: now.Add(-age).UnixMilli()}
	}
	events := []event.Event{mk("keep", 10*day), mk("window", 35*day), mk("gone", 200*day)}
	if err := st.Append(ctx, events); err != nil {
		t.Fatal(err)
	}
	s := &Server{log: slog.New(slog.DiscardHandler), store: st, dir: dir}
	count := func() map[string]bool {
		res, err := st.Search(ctx, query.Query{CompanyID: creds.CompanyID, ProjectID: creds.ProjectID, IncludeProject: true, Size: 100})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, e := range res.Events {
			out[e.ID] = true
		}
		return out
	}
	s.enforceRetention(ctx, now)
	if got := count(); !got["keep"] || !got["window"] || got["gone"] {
		t.Fatalf("after default retention (90 days): %v", got)
	}
	// Retention below the window is raised to the window: nothing a user
	// may still search for goes.
	set := tenancy.Settings{SearchWindowDays: 30, RetentionDays: 5}
	if err := dir.UpdateSettings(ctx, creds.CompanyID, set); err != nil && !errors.Is(err, tenancy.ErrInvalid) {
		t.Fatal(err)
	}
	set = tenancy.Settings{SearchWindowDays: 30, RetentionDays: 30}
	if err := dir.UpdateSettings(ctx, creds.CompanyID, set); err != nil {
		t.Fatal(err)
	}
	s.enforceRetention(ctx, now)
	if got := count(); !got["keep"] || got["window"] {
		t.Fatalf("after 30-day retention: %v", got)
	}
}

// TestGracefulShutdown: a request in flight when shutdown starts is
// finished and acknowledged, new connections are refused meanwhile, and
// what was acknowledged is there after the restart.
func TestGracefulShutdown(t *testing.T) {
	cfg := testConfig(t)
	r := start(t, cfg)
	creds, _ := ReadBootstrap(cfg.DataDir)
	var body strings.Builder
	body.WriteString(`{"events":[`)
	for i := range 2000 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"action":"Bulk","actorId":"a","data":{"pad":"` + strings.Repeat("x", 200) + `"}}`)
	}
	body.WriteString(`]}`)
	b := body.String()

	conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /v1/mgmt/audit/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer " + creds.ProjectID + ":" + creds.ManagementKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+b[:len(b)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the handler is reading the body
	r.cancel()
	time.Sleep(100 * time.Millisecond) // shutdown has begun
	if c2, err := net.DialTimeout("tcp", strings.TrimPrefix(r.url, "http://"), time.Second); err == nil {
		c2.Close()
		t.Fatal("new connections accepted during shutdown")
	}
	select {
	case err := <-r.done:
		t.Fatalf("server stopped with a request in flight: %v", err)
	default:
	}
	if _, err := io.WriteString(conn, b[len(b)/2:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request cut: %v", err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("in-flight request: %d %s", resp.StatusCode, respBody)
	}
	var out struct{ IDs []string }
	if err := json.Unmarshal(respBody, &out); err != nil || len(out.IDs) != 2000 {
		t.Fatalf("in-flight response: %v %.200s", err, respBody)
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}

	r = start(t, cfg)
	defer r.stop(t)
	c, _ := client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	_, total, err := c.Audit().SearchAll(context.Background(), client.SearchOptions{Actions: []string{"Bulk"}, Size: 1})
	if err != nil || total != 2000 {
		t.Fatalf("after restart %d of 2000 acknowledged events (%v)", total, err)
	}
}

func TestPostgresBackend(t *testing.T) {
	url := pgtest.NewDatabase(t) // skips unless AUDITTRAIL_INTEGRATION=1
	cfg := testConfig(t)
	cfg.Store = config.StorePostgres
	cfg.PostgresURL = config.Secret(url)
	r := start(t, cfg)
	creds, err := ReadBootstrap(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	ctx := context.Background()
	id, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "PgEvent", ActorID: "a", TenantID: "t", Type: "info"})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{Actions: []string{"PgEvent"}})
	if err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("search on postgres: %v %v", recs, err)
	}
	r.stop(t)

	// The company lives in the database: a second instance with a fresh
	// data dir creates nothing and serves the same key.
	cfg2 := cfg
	cfg2.DataDir = t.TempDir()
	r = start(t, cfg2)
	defer r.stop(t)
	if _, err := ReadBootstrap(cfg2.DataDir); err == nil {
		t.Fatal("second instance bootstrapped again")
	}
	c, _ = client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	if got, err := c.Audit().Get(ctx, id); err != nil || got.ID != id {
		t.Fatalf("event through the second instance: %v", err)
	}
}

// TestPostgresConcurrentBootstrap starts several instances at once on an
// empty database: exactly one company must come of it.
func TestPostgresConcurrentBootstrap(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const instances = 3
	var runs []*running
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := testConfig(t)
			cfg.Store = config.StorePostgres
			cfg.PostgresURL = config.Secret(url)
			r := start(t, cfg)
			mu.Lock()
			runs = append(runs, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	bootstrapped := 0
	for _, r := range runs {
		if r.stdout.Len() > 0 {
			bootstrapped++
		}
		r.stop(t)
	}
	if bootstrapped != 1 {
		t.Fatalf("%d instances bootstrapped", bootstrapped)
	}
}

func TestMainExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"--store", "nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "store must be") {
		t.Fatalf("bad flag: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := Main(context.Background(), []string{"-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "data-dir") {
		t.Fatalf("help: exit %d, %q", code, errOut.String())
	}
}
