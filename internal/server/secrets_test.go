package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// transcript records every API response body the test receives, except
// those marked as the one creation response that shows a secret.
type transcript struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	responses int
	// allowNext lets the next response through unrecorded: the creation
	// or rotation answer that shows a new key once.
	allowNext bool
}

func (tr *transcript) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.responses++
	if tr.allowNext {
		tr.allowNext = false
		return resp, nil
	}
	fmt.Fprintf(&tr.buf, "%s %s -> %d\n", r.Method, r.URL.Path, resp.StatusCode)
	for k, v := range resp.Header {
		fmt.Fprintf(&tr.buf, "%s: %s\n", k, strings.Join(v, ","))
	}
	tr.buf.Write(body)
	tr.buf.WriteByte('\n')
	return resp, nil
}

// creation runs fn, whose one HTTP call is allowed to show a secret.
func (tr *transcript) creation(fn func()) {
	tr.mu.Lock()
	tr.allowNext = true
	tr.mu.Unlock()
	fn()
}

// failingDestination answers every delivery with an error that echoes
// what it was sent, headers included, as careless services do: the
// connector's error reports must not carry that echo into logs or
// health.
func failingDestination(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s=%s ", k, strings.Join(v, ","))
		}
		fmt.Fprintf(w, "query=%s", r.URL.RawQuery)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// closedPort is an address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNoSecretLeaks runs a full scenario — bootstrap, keys created, used,
// rotated and revoked, wrong keys tried, connectors with every kind of
// destination secret failing to deliver, SCIM operations with passwords
// and basic-auth headers, configuration secrets — and then searches every
// log line and every API response (but the one creation answer of each
// key) for every secret value.
func TestNoSecretLeaks(t *testing.T) {
	const (
		redisPassword = "redis-pass-Zq8v1"
		pgPassword    = "pg-pass-Wm4k2"
	)
	store := ""
	pgURL := ""
	if os.Getenv("AUDITTRAIL_INTEGRATION") == "1" {
		// PostgreSQL's trust authentication ignores the password, so the
		// URL works and its password is a secret the logs must not show.
		store = servertest.StorePostgres
	}
	inst := servertest.Start(t, servertest.Options{Store: store, Configure: func(c *config.Config) {
		if c.Store == config.StorePostgres {
			pgURL = strings.Replace(string(c.PostgresURL), "postgres@", "postgres:"+pgPassword+"@", 1)
			if !strings.Contains(pgURL, pgPassword) {
				pgURL = strings.Replace(string(c.PostgresURL), "://", "://postgres:"+pgPassword+"@", 1)
			}
			c.PostgresURL = config.Secret(pgURL)
		}
		c.LogLevel = -8 // debug: everything that can be logged is
	}})
	_ = redisPassword // Redis here has no password; AUTH would fail the start (see SECURITY.md)
	tr := &transcript{}
	hc := &http.Client{Transport: tr}
	ctx := context.Background()
	newClient := func(project, key string) *client.Client {
		c, err := client.New(client.Config{BaseURL: inst.URL, ProjectID: project, ManagementKey: key, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	secrets := map[string]string{"bootstrap key": inst.Creds.ManagementKey}
	if pgURL != "" {
		secrets["postgres password"] = pgPassword
	}
	admin := newClient(inst.Creds.ProjectID, inst.Creds.ManagementKey)

	// Keys: created, used, rotated, revoked; wrong ones tried.
	var writerKey, readerKey, rotatedOld, rotatedNew string
	var rotID, revID string
	tr.creation(func() {
		_, writerKey, _ = must2(t)(admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "writer", Role: "writer"}))
	})
	tr.creation(func() {
		k, s, _ := must2(t)(admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "reader", Role: "reader", ProjectIDs: []string{inst.Creds.ProjectID}}))
		readerKey, revID = s, k.ID
	})
	tr.creation(func() {
		k, s, _ := must2(t)(admin.Keys().Create(ctx, client.CreateKeyOptions{Name: "to rotate", Role: "admin"}))
		rotatedOld, rotID = s, k.ID
	})
	tr.creation(func() { _, rotatedNew, _ = must2(t)(admin.Keys().Rotate(ctx, rotID)) })
	for name, k := range map[string]string{"writer key": writerKey, "reader key": readerKey, "rotated-away key": rotatedOld, "rotated key": rotatedNew} {
		if k == "" {
			t.Fatalf("%s not created", name)
		}
		secrets[name] = k
	}
	if _, err := admin.Keys().Revoke(ctx, revID); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Keys().List(ctx); err != nil {
		t.Fatal(err)
	}
	writer := newClient(inst.Creds.ProjectID, writerKey)
	// A wrong secret differs in its last character (flipped, so it can never
	// equal the real one).
	last := "A"
	if strings.HasSuffix(writerKey, last) {
		last = "B"
	}
	for _, k := range []string{readerKey, rotatedOld, writerKey[:len(writerKey)-1] + last, "garbage-" + writerKey} {
		// Refused keys: revoked, rotated away, a wrong secret, malformed.
		if _, err := newClient(inst.Creds.ProjectID, k).Audit().Search(ctx, client.SearchOptions{}); err == nil {
			t.Fatalf("a refused key searched")
		}
	}
	if _, err := newClient(inst.Creds.ProjectID, rotatedNew).Audit().Search(ctx, client.SearchOptions{}); err != nil {
		t.Fatal(err)
	}

	// Events carrying request headers with credentials, and SCIM
	// operations with passwords and basic-auth headers.
	secrets["request bearer token"] = "req-bearer-Hx93kd"
	secrets["request cookie"] = "sess-cookie-Jd82Ls"
	secrets["scim password"] = "scim-user-pass-Tq7"
	secrets["scim basic password"] = "scim-basic-pass-Pw5"
	basic := base64.StdEncoding.EncodeToString([]byte("okta:" + secrets["scim basic password"]))
	secrets["scim basic header"] = basic
	if _, err := writer.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "LoginSucceed", ActorID: "a", TenantID: "t", Type: "info",
		RequestContext: &client.RequestContext{IP: "10.1.2.3", UserAgent: "Mozilla/5.0", Headers: map[string]string{
			"Authorization": "Bearer " + secrets["request bearer token"], "Cookie": "sid=" + secrets["request cookie"], "Accept": "*/*"}}}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []client.SCIMOperation{
		{Method: "POST", Path: "/scim/v2/Users", TenantID: "t", ActorID: "okta",
			Request:        map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ann@example.com", "password": secrets["scim password"]},
			Result:         map[string]any{"id": "u1", "userName": "ann@example.com"},
			RequestContext: &client.RequestContext{IP: "10.9.9.9", Headers: map[string]string{"Authorization": "Basic " + basic}}},
		{Method: "PATCH", Path: "/scim/v2/Users/u1", TenantID: "t", ActorID: "okta",
			Request:        map[string]any{"Operations": []any{map[string]any{"op": "replace", "path": "password", "value": secrets["scim password"]}}},
			RequestContext: &client.RequestContext{Headers: map[string]string{"Authorization": "Basic " + basic}}},
	} {
		if _, err := writer.Audit().RecordSCIM(ctx, op); err != nil {
			t.Fatalf("SCIM: %v", err)
		}
	}

	// Connectors with every kind of secret, all failing to deliver.
	fail := failingDestination(t)
	secrets["webhook bearer token"] = "wh-bearer-Kd83nf"
	secrets["webhook hmac secret"] = "wh-hmac-Lm29xq"
	secrets["webhook header secret"] = "wh-header-Vb61zt"
	secrets["webhook basic password"] = "wh-basic-Nc47ws"
	secrets["webhook api key token"] = "wh-apikey-Gh58rp"
	secrets["splunk token"] = "splunk-tok-Qw12er"
	secrets["datadog api key"] = "dd-key-Rt34ty"
	secrets["webhook basic header"] = base64.StdEncoding.EncodeToString([]byte("u:" + secrets["webhook basic password"]))
	specs := []struct {
		typ    string
		config string
	}{
		{"webhook", fmt.Sprintf(`{"url":%q,"authentication":{"bearerToken":%q},"hmacSecret":%q,"headers":{"X-Custom-Secret":%q}}`,
			fail.URL, secrets["webhook bearer token"], secrets["webhook hmac secret"], secrets["webhook header secret"])},
		{"webhook", fmt.Sprintf(`{"url":%q,"authentication":{"basic":{"username":"u","password":%q}}}`, fail.URL+"/basic", secrets["webhook basic password"])},
		{"webhook", fmt.Sprintf(`{"url":%q,"authentication":{"apiKey":{"key":"X-Api-Key","token":%q}}}`, "http://"+closedPort(t), secrets["webhook api key token"])},
		{"splunk", fmt.Sprintf(`{"url":%q,"token":%q}`, fail.URL, secrets["splunk token"])},
		{"datadog", fmt.Sprintf(`{"url":%q,"apiKey":%q}`, fail.URL, secrets["datadog api key"])},
	}
	adminAuth := bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey)
	var ids []string
	for i, s := range specs {
		st, body := recordedCall(t, hc, "POST", inst.URL+"/v1/mgmt/connectors", adminAuth,
			fmt.Sprintf(`{"name":"c%d","type":%q,"config":%s}`, i, s.typ, s.config))
		var v struct {
			ID string `json:"id"`
		}
		if st != http.StatusCreated || json.Unmarshal(body, &v) != nil || v.ID == "" {
			t.Fatalf("create %s connector: %d %s", s.typ, st, body)
		}
		ids = append(ids, v.ID)
	}
	// Descope's createAuditWebhook, with basic auth.
	st, body := recordedCall(t, hc, "POST", inst.URL+"/v2/mgmt/connector/audit/web/set", adminAuth,
		fmt.Sprintf(`{"name":"descope","url":%q,"authentication":{"basic":{"username":"u","password":%q}},"hmacSecret":%q}`,
			fail.URL+"/descope", secrets["webhook basic password"], secrets["webhook hmac secret"]))
	var set struct {
		ID string `json:"id"`
	}
	if st != http.StatusOK || json.Unmarshal(body, &set) != nil || set.ID == "" {
		t.Fatalf("createAuditWebhook: %d %s", st, body)
	}
	ids = append(ids, set.ID)
	for i := range 5 {
		if _, err := writer.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: fmt.Sprintf("Streamed%d", i), ActorID: "a", TenantID: "t", Type: "info"}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every connector has failed at least once (its error is
	// in its health and in the log); test deliveries fail too, with the
	// destination's answer in the API error.
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			st, body := recordedCall(t, hc, "GET", inst.URL+"/v1/mgmt/connectors/"+id+"/health", adminAuth, "")
			var h stream.Health
			if st != http.StatusOK || json.Unmarshal(body, &h) != nil {
				t.Fatalf("health: %d %s", st, body)
			}
			if h.LastError != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("connector %s never failed: %s", id, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st, body := recordedCall(t, hc, "POST", inst.URL+"/v1/mgmt/connectors/"+id+"/test", adminAuth, ""); st != http.StatusBadGateway {
			t.Fatalf("test delivery to a failing destination: %d %s", st, body)
		}
		recordedCall(t, hc, "GET", inst.URL+"/v1/mgmt/connectors/"+id, adminAuth, "")
		// An update that leaves the redacted values as shown keeps them.
		recordedCall(t, hc, "POST", inst.URL+"/v1/mgmt/connectors/"+id+"/pause", adminAuth, "")
	}
	recordedCall(t, hc, "GET", inst.URL+"/v1/mgmt/connectors", adminAuth, "")

	// Everything an API caller reads back.
	if _, _, err := admin.Audit().SearchAll(ctx, client.SearchOptions{Levels: []client.Level{client.LevelProject, client.LevelCompany}}); err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if _, err := admin.Audit().Export(ctx, client.ExportOptions{}, client.FormatNDJSON, &exp); err != nil {
		t.Fatal(err)
	}
	recordedCall(t, hc, "GET", inst.URL+"/v1/mgmt/company/settings", bearer("", inst.Creds.ManagementKey), "")
	recordedCall(t, hc, "GET", inst.URL+"/metrics", "", "")
	recordedCall(t, hc, "GET", inst.URL+"/healthz", "", "")

	logs := inst.Logs()
	if len(logs) < 1000 || tr.responses < 20 {
		t.Fatalf("too little to search: %d bytes of logs, %d responses", len(logs), tr.responses)
	}
	if !strings.Contains(logs, "delivery failed") {
		t.Fatalf("the failing deliveries were not logged:\n%s", logs)
	}
	// Key secrets: the part after the id; an id alone is not secret.
	search := map[string]string{}
	for name, v := range secrets {
		search[name] = v
		if _, sec, err := tenancy.ParseKey(v); err == nil {
			search[name+" (secret part)"] = sec
		}
	}
	recorded := tr.buf.String()
	for name, v := range search {
		if i := strings.Index(logs, v); i >= 0 {
			t.Errorf("the %s appears in the server log: …%s…", name, excerpt(logs, i))
		}
		if i := strings.Index(recorded, v); i >= 0 {
			t.Errorf("the %s appears in an API response: …%s…", name, excerpt(recorded, i))
		}
	}
	// The data directory keeps only hashes of keys.
	filepath.WalkDir(inst.Config.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path) == "bootstrap.json" {
			return nil // bootstrap.json is how the first key reaches its operator
		}
		b, _ := os.ReadFile(path)
		for _, name := range []string{"writer key", "reader key", "rotated key", "rotated-away key"} {
			if _, sec, err := tenancy.ParseKey(secrets[name]); err == nil && bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds the %s's secret", path, name)
			}
		}
		return nil
	})
	t.Logf("searched %d secret values in %d bytes of logs (%d lines) and %d API responses (%d bytes)",
		len(search), len(logs), strings.Count(logs, "\n"), tr.responses, len(recorded))
}

func recordedCall(t *testing.T, hc *http.Client, method, url, auth, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func excerpt(s string, i int) string {
	return s[max(0, i-120):min(len(s), i+60)]
}

// must2 fails the test on the error of a (value, value, error) call.
func must2(t *testing.T) func(a client.Key, b string, err error) (client.Key, string, error) {
	return func(a client.Key, b string, err error) (client.Key, string, error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b, nil
	}
}

// TestKeyLookupByHash: the directory holds each key as the SHA-256 of the
// whole key, looked up by its id and compared in constant time (the code
// path is tenancy.AuthenticateKey: subtle.ConstantTimeCompare); a record
// holding the right hash but no secret authenticates, and one whose hash
// differs in one bit does not.
func TestKeyLookupByHash(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	dir := inst.Components.Directory
	keyID := tenancy.NewKeyID()
	key, hash := tenancy.NewKeySecret(keyID)
	if err := dir.CreateKey(ctx, tenancy.Key{ID: keyID, CompanyID: inst.Creds.CompanyID, Name: "by hash", Role: tenancy.RoleReader, Hash: hash, Created: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	stored, err := dir.Key(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Hash, tenancy.HashKey(key)) || len(stored.Hash) != 32 {
		t.Fatalf("stored hash %x is not SHA-256 of the key", stored.Hash)
	}
	b, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := tenancy.ParseKey(key)
	if bytes.Contains(b, []byte(sec)) {
		t.Fatal("the stored key record holds the secret")
	}
	if st, _ := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", bearer(inst.Creds.ProjectID, key), `{}`); st != http.StatusOK {
		t.Fatalf("key stored only as its hash: %d", st)
	}
	// Same id, a different secret: the hash differs, the key is refused.
	other, _ := tenancy.NewKeySecret(keyID)
	if st, _ := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", bearer(inst.Creds.ProjectID, other), `{}`); st != http.StatusUnauthorized {
		t.Fatalf("a wrong secret for a known id: %d", st)
	}
}

// TestRedisPasswordNotLogged: the Redis URL's password appears in no log
// line and no answer, whether Redis refuses it (this Redis has no
// password) or cannot be reached.
func TestRedisPasswordNotLogged(t *testing.T) {
	const password = "redis-pass-Zq8v1"
	for _, addr := range []string{"127.0.0.1:6379", closedPort(t)} {
		inst := servertest.Start(t, servertest.Options{Configure: func(c *config.Config) {
			c.RedisURL = config.Secret("redis://:" + password + "@" + addr + "/0")
			c.SearchRateLimit = 100
			c.LogLevel = -8
		}})
		st, body := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey), `{}`)
		if st < 400 {
			t.Logf("Redis at %s accepted the search (%d)", addr, st)
		}
		inst.Stop(t)
		if strings.Contains(string(body), password) {
			t.Fatalf("the Redis password is in the answer: %s", body)
		}
		if logs := inst.Logs(); strings.Contains(logs, password) {
			i := strings.Index(logs, password)
			t.Fatalf("the Redis password is in the log: …%s…", excerpt(logs, i))
		} else if !strings.Contains(logs, "redis_url") {
			t.Fatalf("the configuration was not logged at all:\n%s", logs)
		}
		t.Logf("Redis at %s: search answered %d %.120s", addr, st, body)
	}
}
