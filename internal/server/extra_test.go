package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audittrail test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	cfg := testConfig(t)
	var pool *x509.CertPool
	cfg.TLSCert, cfg.TLSKey, pool = writeSelfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, RunOptions{Listener: ln}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + ln.Addr().String()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(url + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS healthz: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	creds, _ := ReadBootstrap(cfg.DataDir)
	c, _ := client.New(client.Config{BaseURL: url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey, HTTPClient: hc})
	if _, err := c.Audit().CreateEvent(context.Background(), client.CreateEventOptions{Action: "A", ActorID: "a", TenantID: "t", Type: "info"}); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP on the TLS port gets nowhere.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}
}

func TestExtensions(t *testing.T) {
	cfg := testConfig(t)
	var order []string
	ext := func(name string) Extension {
		return func(ctx context.Context, c Components) (func(context.Context) error, error) {
			c.API.Handle("GET /v1/mgmt/ext/"+name, tenancy.RoleReader, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(name))
			}))
			order = append(order, "start "+name)
			return func(context.Context) error { order = append(order, "stop "+name); return nil }, nil
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, RunOptions{Listener: ln, Extensions: []Extension{ext("a"), ext("b")}}) }()
	url := "http://" + ln.Addr().String()
	waitHealthy(t, url, func() error { return nil })
	creds, _ := ReadBootstrap(cfg.DataDir)
	req, _ := http.NewRequest("GET", url+"/v1/mgmt/ext/b", nil)
	req.Header.Set("Authorization", "Bearer "+creds.ProjectID+":"+creds.ManagementKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mounted route: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	if len(order) != 4 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] || order[3] != want[3] {
		t.Fatalf("order %v", order)
	}

	// An extension that fails to start fails the start, cleanly.
	cfg2 := testConfig(t)
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	boom := errors.New("boom")
	err = Run(context.Background(), cfg2, RunOptions{Listener: ln2, Extensions: []Extension{
		func(context.Context, Components) (func(context.Context) error, error) { return nil, boom },
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("failing extension: %v", err)
	}
}

func TestRedisRateLimit(t *testing.T) {
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("needs Redis on 127.0.0.1:6379: set AUDITTRAIL_INTEGRATION=1")
	}
	// Two servers with separate data dirs would be two companies; one
	// server with a fresh project per run keeps the Redis keys apart.
	cfg := testConfig(t)
	cfg.SearchRateLimit = 3
	cfg.RedisURL = "redis://127.0.0.1:6379/0"
	r := start(t, cfg)
	defer r.stop(t)
	creds, _ := ReadBootstrap(cfg.DataDir)
	c, _ := client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	ctx := context.Background()
	for i := range 3 {
		if _, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{}); err != nil {
			t.Fatalf("search %d: %v", i, err)
		}
	}
	_, _, err := c.Audit().SearchAll(ctx, client.SearchOptions{})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.RetryAfter < time.Second {
		t.Fatalf("4th search through Redis: %v", err)
	}
}

// TestBuiltInSubsystems: the console, the event catalogue and the SCIM
// endpoint are mounted by the composition root.
func TestBuiltInSubsystems(t *testing.T) {
	cfg := testConfig(t)
	r := start(t, cfg)
	defer r.stop(t)
	creds, _ := ReadBootstrap(cfg.DataDir)
	get := func(method, path, auth, body string) int {
		req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	auth := "Bearer " + creds.ProjectID + ":" + creds.ManagementKey
	if code := get("GET", "/", "", ""); code != 200 {
		t.Errorf("console page: %d", code)
	}
	if code := get("GET", "/v1/mgmt/audit/actions", auth, ""); code != 200 {
		t.Errorf("catalogue: %d", code)
	}
	if code := get("POST", "/v1/mgmt/audit/scim", auth, `{}`); code != 400 {
		t.Errorf("scim with an empty operation: %d, want 400", code)
	}
}

// TestStreamDelivery: the server runs stream delivery; a webhook connector
// created through Components.Streams receives an event ingested over HTTP,
// and survives a restart.
func TestStreamDelivery(t *testing.T) {
	got := make(chan string, 100)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Audits []struct {
				ID     string `json:"id"`
				Action string `json:"action"`
			} `json:"audits"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(400)
			return
		}
		for _, a := range body.Audits {
			got <- a.Action
		}
	}))
	defer recv.Close()

	cfg := testConfig(t)
	var streams *stream.Manager
	ext := func(ctx context.Context, c Components) (func(context.Context) error, error) {
		streams = c.Streams
		return nil, nil
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, RunOptions{Listener: ln, Extensions: []Extension{ext}}) }()
	url := "http://" + ln.Addr().String()
	waitHealthy(t, url, func() error { return nil })
	creds, _ := ReadBootstrap(cfg.DataDir)
	if _, err := streams.Create(context.Background(), stream.Spec{CompanyID: creds.CompanyID, Name: "hook", Type: stream.WebhookType,
		Config: json.RawMessage(`{"url":"` + recv.URL + `"}`)}); err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(client.Config{BaseURL: url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	if _, err := c.Audit().CreateEvent(context.Background(), client.CreateEventOptions{Action: "Streamed", ActorID: "a", TenantID: "t", Type: "info"}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a != "Streamed" {
			t.Fatalf("delivered %q", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not delivered")
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "audittrail_http_requests_total") || !strings.Contains(string(b), "stream") {
		t.Fatalf("metrics lack the stream families:\n%.2000s", b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// After a restart the connector is still there and delivers.
	r := start(t, cfg)
	defer r.stop(t)
	c, _ = client.New(client.Config{BaseURL: r.url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey})
	if _, err := c.Audit().CreateEvent(context.Background(), client.CreateEventOptions{Action: "AfterRestart", ActorID: "a", TenantID: "t", Type: "info"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case a := <-got:
			if a == "AfterRestart" {
				return
			}
		case <-deadline:
			t.Fatal("no delivery after the restart")
		}
	}
}

// TestFailedStartReleasesTheStore: a start that fails after the store
// opened (here: an unreadable GeoIP database) must release the store's
// lock, so that a corrected start succeeds in the same process.
func TestFailedStartReleasesTheStore(t *testing.T) {
	cfg := testConfig(t)
	cfg.GeoIPDB = filepath.Join(t.TempDir(), "missing.mmdb")
	if err := Run(context.Background(), cfg, RunOptions{}); err == nil || !strings.Contains(err.Error(), "enrich") {
		t.Fatalf("start with a missing GeoIP database: %v", err)
	}
	cfg.GeoIPDB = ""
	r := start(t, cfg)
	r.stop(t)
}
