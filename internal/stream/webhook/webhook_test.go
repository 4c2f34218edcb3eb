package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/webhook"
)

// verifySignature is what a receiver does, written independently of Sign:
// base64 of HMAC-SHA256 over the raw body.
func verifySignature(secret string, body []byte, got string) error {
	raw, err := base64.StdEncoding.DecodeString(got)
	if err != nil {
		return fmt.Errorf("signature is not base64: %q", got)
	}
	mac := hmac.New(sha256New(), []byte(secret))
	mac.Write(body)
	if !hmac.Equal(raw, mac.Sum(nil)) {
		return errors.New("signature mismatch")
	}
	return nil
}

func decodeAudits(body []byte) ([]string, error) {
	var b struct {
		Audits []map[string]any `json:"audits"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("body is not {\"audits\":[…]}: %w", err)
	}
	ids := make([]string, 0, len(b.Audits))
	for _, a := range b.Audits {
		id, _ := a["id"].(string)
		if id == "" {
			return nil, errors.New("record without id")
		}
		if _, ok := a["occurred"].(string); !ok {
			return nil, fmt.Errorf("record %s: occurred is not a string", id)
		}
		for _, k := range []string{"projectId", "action", "type", "externalIds", "tenants", "level"} {
			if _, ok := a[k]; !ok {
				return nil, fmt.Errorf("record %s lacks %s", id, k)
			}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func TestWebhookHTTPSEndToEnd(t *testing.T) {
	const secret = "s3cret-hmac"
	rv := &streamtest.Receiver{Decode: func(r *http.Request, body []byte) ([]string, error) {
		if r.TLS == nil {
			return nil, errors.New("not over TLS")
		}
		if got := r.Header.Get("Authorization"); got != "Bearer tok-123" {
			return nil, fmt.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("X-Team"); got != "security" {
			return nil, fmt.Errorf("X-Team = %q", got)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			return nil, fmt.Errorf("Content-Type = %q", ct)
		}
		if err := verifySignature(secret, body, r.Header.Get("X-Descope-Webhook-S256")); err != nil {
			return nil, err
		}
		return decodeAudits(body)
	}}
	srv := httptest.NewTLSServer(rv)
	defer srv.Close()
	cfg := fmt.Sprintf(`{"url":%q,"authentication":{"bearerToken":"tok-123"},"hmacSecret":%q,"headers":{"X-Team":"security"},"insecure":true}`, srv.URL, secret)
	streamtest.Exercise(t, "webhook", webhook.Destination(), json.RawMessage(cfg), rv)
}

func TestWebhookAuthModesOverHTTP(t *testing.T) {
	cases := []struct {
		name, auth string
		check      func(r *http.Request) error
	}{
		{"basic", `{"basic":{"username":"u","password":"p:w"}}`, func(r *http.Request) error {
			u, p, ok := r.BasicAuth()
			if !ok || u != "u" || p != "p:w" {
				return fmt.Errorf("basic auth = %q %q %v", u, p, ok)
			}
			return nil
		}},
		{"apiKey", `{"apiKey":{"key":"X-Api-Key","token":"k-1"}}`, func(r *http.Request) error {
			if got := r.Header.Get("X-Api-Key"); got != "k-1" {
				return fmt.Errorf("X-Api-Key = %q", got)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gotErr error
			calls := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				gotErr = tc.check(r)
				if r.Header.Get(webhook.SignatureHeader) != "" {
					gotErr = errors.New("signed without an hmacSecret")
				}
			}))
			defer srv.Close()
			sink, err := webhook.New(json.RawMessage(fmt.Sprintf(`{"url":%q,"authentication":%s}`, srv.URL, tc.auth)))
			if err != nil {
				t.Fatal(err)
			}
			evs := streamtest.Events("C1", "P1", "x", 2)
			if err := sink.Write(context.Background(), stream.Batch{Events: evs}); err != nil {
				t.Fatal(err)
			}
			if calls != 1 || gotErr != nil {
				t.Fatalf("calls=%d err=%v", calls, gotErr)
			}
		})
	}
}

func TestWebhookRefusesSelfSignedUnlessInsecure(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	sink, err := webhook.New(json.RawMessage(fmt.Sprintf(`{"url":%q}`, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	err = sink.Write(context.Background(), stream.Batch{Events: streamtest.Events("C1", "P1", "x", 1)})
	if err == nil {
		t.Fatal("self-signed certificate accepted without insecure")
	}
	if strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("error leaks the URL: %v", err)
	}
}

func TestWebhookStatusErrorAndNoURLInErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusUnauthorized)
	}))
	defer srv.Close()
	u := srv.URL + "/hook?token=supersecret"
	sink, _ := webhook.New(json.RawMessage(fmt.Sprintf(`{"url":%q}`, u)))
	err := sink.Write(context.Background(), stream.Batch{Events: streamtest.Events("C1", "P1", "x", 1)})
	var se *httpsink.StatusError
	if !errors.As(err, &se) || se.Code != 401 || !errors.Is(err, httpsink.ErrRefused) {
		t.Fatalf("err = %v", err)
	}
	srv.Close()
	err = sink.Write(context.Background(), stream.Batch{Events: streamtest.Events("C1", "P1", "x", 1)})
	if err == nil || strings.Contains(err.Error(), "supersecret") {
		t.Fatalf("err = %v", err)
	}
}

func TestWebhookConfigValidation(t *testing.T) {
	cases := map[string]string{
		`{}`:                "url",
		`{"url":"ftp://x"}`: "url",
		`{"url":"https://x","headers":{"Content-Type":"a"}}`:                                "headers.Content-Type",
		`{"url":"https://x","authentication":{"bearerToken":"a","basic":{"username":"u"}}}`: "authentication",
		`{"url":"https://x","authentication":{"apiKey":{"key":"","token":"t"}}}`:            "authentication.apiKey.key",
		`{"url":"https://x","bogus":1}`:                                                     "config",
	}
	for cfg, field := range cases {
		_, err := webhook.New(json.RawMessage(cfg))
		var fe *stream.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: err = %v, want field %s", cfg, err, field)
		}
	}
}

func TestRedactHidesSecrets(t *testing.T) {
	cfg := `{"url":"https://u:pw@example.com/h","authentication":{"basic":{"username":"u","password":"pw"}},"hmacSecret":"hs","headers":{"X-Key":"hv"}}`
	out := string(webhook.Redact(json.RawMessage(cfg)))
	for _, secret := range []string{`"pw"`, ":pw@", `"hs"`, `"hv"`} {
		if strings.Contains(out, secret) {
			t.Fatalf("redacted config still holds %s: %s", secret, out)
		}
	}
	if !strings.Contains(out, "example.com/h") || !strings.Contains(out, `"username":"u"`) {
		t.Fatalf("redaction hid too much: %s", out)
	}
}

// The signature must match what a JavaScript receiver computes over
// JSON.stringify(JSON.parse(body)): no HTML escaping of <, > and &.
func TestBodyHasNoHTMLEscaping(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body = make([]byte, r.ContentLength)
		r.Body.Read(body)
	}))
	defer srv.Close()
	sink, _ := webhook.New(json.RawMessage(fmt.Sprintf(`{"url":%q,"hmacSecret":"x"}`, srv.URL)))
	ev := streamtest.Events("C1", "P1", "x", 1)[0]
	ev.UserID = "<a&b>"
	if err := sink.Write(context.Background(), stream.Batch{Events: []event.Event{ev}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"userId":"<a&b>"`) {
		t.Fatalf("body escapes HTML: %s", body)
	}
}

func sha256New() func() hash.Hash { return sha256.New }
