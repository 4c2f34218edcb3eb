package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/console"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/server"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// env is a real API with the console mounted, over a real embedded store
// and file directory bootstrapped like a first start.
type env struct {
	t       testing.TB
	srv     *httptest.Server
	st      *embedded.Engine
	dir     *tenancy.FileDirectory
	con     *console.Console
	creds   server.Credentials
	limiter *ratelimit.Memory
}

// downLimiter is a shared limiter (Redis, PostgreSQL) that cannot be reached.
type downLimiter struct{}

func (downLimiter) Allow(context.Context, string, int, time.Duration) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("limiter unreachable")
}

type envConfig struct {
	rateLimit int
	tailPoll  time.Duration
	heartbeat time.Duration
	// writeTimeout is the HTTP server's, as `audittrail serve` sets one.
	writeTimeout time.Duration
	// consoleStore, when set, wraps the store the console reads.
	consoleStore func(store.Store) store.Store
	// limiterDown makes the API's limiter fail every call.
	limiterDown bool
}

func newEnv(t testing.TB, cfg envConfig) *env {
	t.Helper()
	dataDir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dataDir, "events"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := tenancy.OpenFileDirectory(filepath.Join(dataDir, "tenancy.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, dir: dir, limiter: ratelimit.NewMemory()}
	if err := server.Bootstrap(context.Background(), dir, dataDir, io.Discard, logger); err != nil {
		t.Fatal(err)
	}
	if e.creds, err = server.ReadBootstrap(dataDir); err != nil {
		t.Fatal(err)
	}
	var limiter ratelimit.Limiter = e.limiter
	if cfg.limiterDown {
		limiter = downLimiter{}
	}
	api, err := httpapi.New(httpapi.Options{
		Store:     st,
		Directory: dir,
		Authenticate: func(ctx context.Context, key string) (tenancy.Key, error) {
			return tenancy.AuthenticateKey(ctx, dir, key)
		},
		Keys:            tenancy.Issuer{},
		Limiter:         limiter,
		SearchRateLimit: cfg.rateLimit,
		Logger:          logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	var conStore store.Store = st
	if cfg.consoleStore != nil {
		conStore = cfg.consoleStore(st)
	}
	e.con, err = console.Register(api, console.Options{
		Store: conStore, Directory: dir, Logger: logger,
		TailPoll: cfg.tailPoll, Heartbeat: cfg.heartbeat,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(api)
	e.srv.Config.WriteTimeout = cfg.writeTimeout
	e.srv.Start()
	t.Cleanup(func() {
		e.con.Close()
		e.srv.Close()
		st.Close()
		dir.Close()
	})
	return e
}

func (e *env) auth() string { return "Bearer " + e.creds.ProjectID + ":" + e.creds.ManagementKey }

func (e *env) client() *client.Client {
	e.t.Helper()
	c, err := client.New(client.Config{BaseURL: e.srv.URL, ProjectID: e.creds.ProjectID, ManagementKey: e.creds.ManagementKey})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// ingest stores records through the batch API.
func (e *env) ingest(recs ...client.Record) {
	e.t.Helper()
	if _, err := e.client().Audit().Ingest(context.Background(), recs); err != nil {
		e.t.Fatal(err)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) post(path, auth, body string) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var m struct {
		ErrorCode string `json:"errorCode"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil || m.ErrorCode == "" {
		t.Fatalf("not an error body (%d): %s", r.status, r.body)
	}
	return m.ErrorCode
}

// sseMessage is one server-sent event.
type sseMessage struct {
	event, id, data string
}

// tail is an open live tail read message by message.
type tail struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan sseMessage
}

func (e *env) openTail(body string) *tail {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/mgmt/audit/tail", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", e.auth())
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	tl := &tail{t: e.t, resp: resp, cancel: cancel, msgs: make(chan sseMessage, 1000)}
	e.t.Cleanup(tl.close)
	if resp.StatusCode != http.StatusOK {
		return tl
	}
	go func() {
		defer close(tl.msgs)
		sc := bufio.NewScanner(resp.Body)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				tl.msgs <- m
				m = sseMessage{}
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				m.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				m.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return tl
}

func (tl *tail) close() { tl.cancel(); tl.resp.Body.Close() }

// next returns the next message other than a heartbeat, failing after d.
func (tl *tail) next(d time.Duration) (sseMessage, bool) {
	tl.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-tl.msgs:
			if !ok {
				return sseMessage{}, false
			}
			if m.event == "heartbeat" {
				continue
			}
			return m, true
		case <-timer.C:
			return sseMessage{}, false
		}
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	_ = json.Compact(&buf, b)
	return buf.String()
}
