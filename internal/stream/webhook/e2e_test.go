package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
	"github.com/audittrail/audittrail/internal/stream/webhook"
)

// receiverWith is a webhook receiver that checks the request with check
// and then the body's wire format.
func receiverWith(check func(r *http.Request, body []byte) error) *streamtest.Receiver {
	return &streamtest.Receiver{Decode: func(r *http.Request, body []byte) ([]string, error) {
		if err := check(r, body); err != nil {
			return nil, err
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			return nil, fmt.Errorf("Content-Type = %q", ct)
		}
		return decodeAudits(body)
	}}
}

func header(r *http.Request, name, want string) error {
	if got := r.Header.Get(name); got != want {
		return fmt.Errorf("%s = %q, want %q", name, got, want)
	}
	return nil
}

// TestEndToEnd: webhooks created through the HTTP API of the real server
// (the native route and Descope's createAuditWebhook) receive every event
// ingested over HTTP, project-level events of two projects and
// company-level ones, through three outages mid-stream (500s, dropped
// connections, answers lost after the receiver took the batch): every
// event arrives, in ingest order, repeated only within the batch in
// flight, signed and authenticated as configured. One receiver is HTTPS
// with a self-signed certificate (insecure), with a bearer token, an HMAC
// secret and a custom header; one takes basic auth, one an API key header.
func TestEndToEnd(t *testing.T) { endToEnd(t, servertest.Options{}) }

// TestEndToEndPostgres is TestEndToEnd on the PostgreSQL store, whose
// ReadFrom must never skip an event committed late (its read horizon).
func TestEndToEndPostgres(t *testing.T) {
	endToEnd(t, servertest.Options{Store: servertest.StorePostgres})
}

func endToEnd(t *testing.T, opts servertest.Options) {
	const secret, descopeSecret = "e2e-hmac", "descope-hmac"
	signedBy := func(secret string, r *http.Request, body []byte) error {
		return verifySignature(secret, body, r.Header.Get(webhook.SignatureHeader))
	}
	unsigned := func(r *http.Request) error {
		if r.Header.Get(webhook.SignatureHeader) != "" {
			return errors.New("signed without an hmacSecret")
		}
		return nil
	}
	tlsRV := receiverWith(func(r *http.Request, body []byte) error {
		if r.TLS == nil {
			return errors.New("not over TLS")
		}
		return errors.Join(header(r, "Authorization", "Bearer tok-123"), header(r, "X-Team", "security"), signedBy(secret, r, body))
	})
	basicRV := receiverWith(func(r *http.Request, body []byte) error {
		if u, p, ok := r.BasicAuth(); !ok || u != "audit" || p != "p:w" {
			return fmt.Errorf("basic auth %q %q %v", u, p, ok)
		}
		return unsigned(r)
	})
	apiKeyRV := receiverWith(func(r *http.Request, body []byte) error {
		return errors.Join(header(r, "X-Api-Key", "k-1"), header(r, "Authorization", ""), unsigned(r))
	})
	descopeRV := receiverWith(func(r *http.Request, body []byte) error {
		return errors.Join(header(r, "X-Env", "prod"), signedBy(descopeSecret, r, body))
	})
	tlsSrv := httptest.NewTLSServer(tlsRV)
	defer tlsSrv.Close()
	basicSrv := httptest.NewServer(basicRV)
	defer basicSrv.Close()
	apiKeySrv := httptest.NewServer(apiKeyRV)
	defer apiKeySrv.Close()
	descopeSrv := httptest.NewServer(descopeRV)
	defer descopeSrv.Close()

	r := e2e.Start(t, opts)
	ids := []string{
		r.Connector("webhook", "https", map[string]any{"url": tlsSrv.URL, "insecure": true, "hmacSecret": secret,
			"authentication": map[string]any{"bearerToken": "tok-123"}, "headers": map[string]string{"X-Team": "security"}}),
		r.Connector("webhook", "basic", map[string]any{"url": basicSrv.URL,
			"authentication": map[string]any{"basic": map[string]string{"username": "audit", "password": "p:w"}}}),
		r.Connector("webhook", "apikey", map[string]any{"url": apiKeySrv.URL,
			"authentication": map[string]any{"apiKey": map[string]string{"key": "X-Api-Key", "token": "k-1"}}}),
	}
	// Descope's call, with the bootstrap project in the Authorization
	// header: a webhook of that project's project-level events.
	descopeID, err := r.Client.Connectors().SetAuditWebhook(context.Background(), client.AuditWebhook{
		Name: "descope", URL: descopeSrv.URL, HMACSecret: descopeSecret, Headers: map[string]string{"X-Env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	rvs := []*streamtest.Receiver{tlsRV, basicRV, apiKeyRV, descopeRV}
	r.Exercise(ids, e2e.HTTPOutages(rvs...)...)

	sent := r.Sent()
	var ofProject []event.Event
	for _, e := range sent {
		if e.Level == event.LevelProject && e.ProjectID == r.Projects[0] {
			ofProject = append(ofProject, e)
		}
	}
	streamtest.Eventually(t, 60*time.Second, "the Descope webhook's events", func() bool {
		got := map[string]bool{}
		for _, id := range descopeRV.IDs() {
			got[id] = true
		}
		for _, e := range ofProject {
			if !got[e.ID] {
				return false
			}
		}
		return true
	})
	if h := r.Health(descopeID); h.FailedAttempts == 0 || h.Delivered < uint64(len(ofProject)) {
		t.Fatalf("the Descope webhook's health %+v: it went through the outages too", h)
	}
	for i, rv := range rvs {
		if errs := rv.Errors(); len(errs) > 0 {
			t.Fatalf("receiver %d refused %d requests: %v", i, len(errs), errs[0])
		}
		want := ofProject
		if rv != descopeRV {
			want = r.SentTo(ids[i])
		}
		dups := e2e.CheckOnceInOrder(t, want, e2e.InOrder(rv.IDs()), true)
		t.Logf("receiver %d: %d events once each in order, %d repeats of batches whose answer was lost", i, len(want), dups)
	}
	if len(ofProject) == 0 || len(ofProject) == len(sent) {
		t.Fatalf("the project webhook's share is %d of %d events: the test does not tell levels apart", len(ofProject), len(sent))
	}
}
