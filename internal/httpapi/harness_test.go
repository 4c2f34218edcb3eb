package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/metrics"
	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/server"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// env is a real API over a real embedded store and file directory,
// bootstrapped like a first start, served by httptest.
type env struct {
	t       *testing.T
	api     *httpapi.API
	srv     *httptest.Server
	st      store.Store
	dir     tenancy.Directory
	creds   server.Credentials
	logs    *syncBuffer
	metrics *metrics.Registry
	ready   bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type envOption func(*httpapi.Options)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	dataDir := t.TempDir()
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dataDir, "events"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := tenancy.OpenFileDirectory(filepath.Join(dataDir, "tenancy.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, dir: dir, logs: &syncBuffer{}, metrics: metrics.NewRegistry(), ready: true}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := server.Bootstrap(context.Background(), dir, dataDir, io.Discard, logger); err != nil {
		t.Fatal(err)
	}
	if e.creds, err = server.ReadBootstrap(dataDir); err != nil {
		t.Fatal(err)
	}
	o := httpapi.Options{
		Store:     st,
		Directory: dir,
		Authenticate: func(ctx context.Context, key string) (tenancy.Key, error) {
			return tenancy.AuthenticateKey(ctx, dir, key)
		},
		Keys:            tenancy.Issuer{},
		Limiter:         ratelimit.NewMemory(),
		SearchRateLimit: 0,
		Logger:          logger,
		Metrics:         e.metrics,
		Ready:           func() bool { return e.ready },
	}
	for _, fn := range opts {
		fn(&o)
	}
	e.api, err = httpapi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(func() {
		e.srv.Close()
		st.Close()
		dir.Close()
	})
	return e
}

// client returns an SDK client for projectID ("" for none) and key.
func (e *env) client(projectID, key string) *client.Client {
	e.t.Helper()
	c, err := client.New(client.Config{BaseURL: e.srv.URL, ProjectID: projectID, ManagementKey: key})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// admin is the bootstrap admin on the default project.
func (e *env) admin() *client.Client { return e.client(e.creds.ProjectID, e.creds.ManagementKey) }

func (e *env) auth() string { return "Bearer " + e.creds.ProjectID + ":" + e.creds.ManagementKey }

type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResponse) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %q", r.status, r.body)
	}
	return m
}

// errorCode checks Descope's error body and returns its code.
func (r rawResponse) errorCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	code, _ := m["errorCode"].(string)
	if code == "" || m["errorDescription"] == "" || m["errorMessage"] == nil {
		t.Fatalf("not a Descope error body: %s", r.body)
	}
	return code
}

func (e *env) do(method, path, auth, contentType string, body []byte) rawResponse {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) post(path, body string) rawResponse {
	e.t.Helper()
	return e.do("POST", path, e.auth(), "application/json", []byte(body))
}

// count is the number of events the store holds for the bootstrap company
// (both levels), read directly from the store.
func (e *env) count() int {
	e.t.Helper()
	res, err := e.st.Search(context.Background(), storeQuery(e.creds))
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Total
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
