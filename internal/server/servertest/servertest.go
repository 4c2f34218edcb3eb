// Package servertest runs the real audittrail server in-process for tests:
// the same composition root as `audittrail serve` (server.Run), on a
// loopback port, with a fresh data directory (or a fresh PostgreSQL
// database), bootstrapped, and stopped when the test ends.
//
//	inst := servertest.Start(t, servertest.Options{})
//	c := inst.Client(t) // admin key, bootstrap project
//	id, err := c.Audit().CreateEvent(ctx, client.CreateEventOptions{…})
//
// Tests drive it over HTTP through the public client, as a user would;
// Components gives the few that need it the running subsystems.
package servertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/server"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// Store names for Options.Store.
const (
	StoreEmbedded = config.StoreEmbedded
	StorePostgres = config.StorePostgres
)

// How long Start waits for /healthz and Stop for the server to end: long
// enough for a loaded machine running tests of many packages at once.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
)

// Options describe the server to start. The zero value is an embedded
// store in a temporary directory with the search rate limit off.
type Options struct {
	// Store is StoreEmbedded (default) or StorePostgres.
	Store string
	// PostgresURL is the database for StorePostgres; empty means a fresh
	// database from pgtest (the test is skipped unless
	// AUDITTRAIL_INTEGRATION=1).
	PostgresURL string
	// DataDir defaults to t.TempDir(); pass one to start a second server on
	// the data of a first.
	DataDir string
	// Configure adjusts the configuration after the defaults above.
	Configure func(*config.Config)
	// Extensions start after the built-in subsystems, as in
	// server.MainWith.
	Extensions []server.Extension
}

// Instance is a running server.
type Instance struct {
	// URL is the server's root, e.g. "http://127.0.0.1:41234".
	URL string
	// Creds are the bootstrap credentials: the company, its default
	// project and an admin key for every project.
	Creds server.Credentials
	// Config is the configuration the server runs with.
	Config config.Config
	// Components are the running subsystems (store, directory, stream
	// manager), for tests that must reach behind the API.
	Components server.Components

	opts   Options
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs a server and waits until /healthz answers 200. It is stopped
// when the test ends (Stop may be called earlier).
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = opts.DataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.SearchRateLimit = 0
	cfg.RetentionInterval = 0
	cfg.ShutdownTimeout = 10 * time.Second
	if opts.Store != "" {
		cfg.Store = opts.Store
	}
	if cfg.Store == StorePostgres {
		if opts.PostgresURL == "" {
			opts.PostgresURL = pgtest.NewDatabase(t)
		}
		cfg.PostgresURL = config.Secret(opts.PostgresURL)
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	inst := &Instance{Config: cfg, opts: opts}
	inst.start(t)
	t.Cleanup(func() { inst.Stop(t) })
	return inst
}

func (inst *Instance) start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("servertest: listen: %v", err)
	}
	if inst.logs == nil {
		inst.logs = &syncBuffer{}
	}
	inst.URL = "http://" + ln.Addr().String()
	inst.done = make(chan error, 1)
	inst.once = sync.Once{}
	ctx, cancel := context.WithCancel(context.Background())
	inst.cancel = cancel
	// A channel, not a variable: the extension runs on the server's
	// goroutine.
	comps := make(chan server.Components, 1)
	capture := func(_ context.Context, c server.Components) (func(context.Context) error, error) {
		comps <- c
		return nil, nil
	}
	exts := append([]server.Extension{capture}, inst.opts.Extensions...)
	logger := server.NewLogger(inst.Config, inst.logs)
	go func() {
		inst.done <- server.Run(ctx, inst.Config, server.RunOptions{Logger: logger, Listener: ln, Extensions: exts})
	}()
	if err := inst.waitHealthy(); err != nil {
		cancel()
		t.Fatalf("servertest: %v\nserver logs:\n%s", err, inst.Logs())
	}
	// Extensions ran before /healthz turned 200.
	inst.Components = <-comps
	creds, err := server.ReadBootstrap(inst.Config.DataDir)
	if err != nil {
		cancel()
		t.Fatalf("servertest: read bootstrap: %v", err)
	}
	inst.Creds = creds
}

func (inst *Instance) waitHealthy() error {
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-inst.done:
			inst.done <- err // Stop reads it again
			return fmt.Errorf("server exited during start: %v", err)
		default:
		}
		resp, err := hc.Get(inst.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("server not healthy within %s", startTimeout)
}

// Stop shuts the server down (as on SIGTERM) and fails the test if the
// shutdown failed. Calling it again does nothing.
func (inst *Instance) Stop(t testing.TB) {
	t.Helper()
	inst.once.Do(func() {
		inst.cancel()
		select {
		case err := <-inst.done:
			if err != nil {
				t.Errorf("servertest: server stopped with: %v\nserver logs:\n%s", err, inst.Logs())
			}
		case <-time.After(stopTimeout):
			t.Errorf("servertest: server did not stop within %s", stopTimeout)
		}
	})
}

// Restart stops the server and starts a new one on the same data (data
// directory or database) and a new port: what a process restart does.
// Clients made before must be made again (the URL changed).
func (inst *Instance) Restart(t testing.TB) {
	t.Helper()
	inst.Stop(t)
	inst.start(t)
}

// Logs returns everything the server logged so far.
func (inst *Instance) Logs() string { return inst.logs.String() }

// Client returns an SDK client with the bootstrap admin key, scoped to the
// bootstrap project.
func (inst *Instance) Client(t testing.TB) *client.Client {
	t.Helper()
	return inst.ClientFor(t, inst.Creds.ProjectID, inst.Creds.ManagementKey)
}

// ClientFor returns an SDK client with the given project ("" for none)
// and management key.
func (inst *Instance) ClientFor(t testing.TB, projectID, managementKey string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: inst.URL, ProjectID: projectID, ManagementKey: managementKey})
	if err != nil {
		t.Fatalf("servertest: client: %v", err)
	}
	return c
}

// NewCompany adds another company with one project and an admin key to the
// running server's directory (the API has no call for it: companies come
// from bootstrap), for isolation tests.
func (inst *Instance) NewCompany(t testing.TB) server.Credentials {
	t.Helper()
	ctx := context.Background()
	dir := inst.Components.Directory
	now := time.Now().UTC()
	creds := server.Credentials{CompanyID: tenancy.NewCompanyID(), ProjectID: tenancy.NewProjectID()}
	keyID := tenancy.NewKeyID()
	key, hash := tenancy.NewKeySecret(keyID)
	creds.ManagementKey = key
	if err := dir.CreateCompany(ctx, tenancy.Company{ID: creds.CompanyID, Name: "servertest", Settings: tenancy.DefaultSettings(), Created: now}); err != nil {
		t.Fatalf("servertest: create company: %v", err)
	}
	if err := dir.CreateProject(ctx, tenancy.Project{ID: creds.ProjectID, CompanyID: creds.CompanyID, Name: "servertest", Created: now}); err != nil {
		t.Fatalf("servertest: create project: %v", err)
	}
	if err := dir.CreateKey(ctx, tenancy.Key{ID: keyID, CompanyID: creds.CompanyID, Name: "servertest admin", Role: tenancy.RoleAdmin, Hash: hash, Created: now}); err != nil {
		t.Fatalf("servertest: create key: %v", err)
	}
	return creds
}

// NewKey creates a management key of the bootstrap company with role,
// limited to projectIDs (none: every project), and returns it in full.
func (inst *Instance) NewKey(t testing.TB, role tenancy.Role, projectIDs ...string) string {
	t.Helper()
	keyID := tenancy.NewKeyID()
	key, hash := tenancy.NewKeySecret(keyID)
	if err := inst.Components.Directory.CreateKey(context.Background(), tenancy.Key{ID: keyID, CompanyID: inst.Creds.CompanyID,
		Name: "servertest " + string(role), Role: role, ProjectIDs: projectIDs, Hash: hash, Created: time.Now().UTC()}); err != nil {
		t.Fatalf("servertest: create key: %v", err)
	}
	return key
}

// NewProject creates a project of the bootstrap company and returns its id.
func (inst *Instance) NewProject(t testing.TB, name string) string {
	t.Helper()
	id := tenancy.NewProjectID()
	if err := inst.Components.Directory.CreateProject(context.Background(), tenancy.Project{ID: id, CompanyID: inst.Creds.CompanyID,
		Name: name, Created: time.Now().UTC()}); err != nil {
		t.Fatalf("servertest: create project: %v", err)
	}
	return id
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log
// into while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
