// Package webhook delivers batches to an HTTP(S) endpoint, the destination
// Descope's createAuditWebhook configures.
//
// Each batch is one POST with Content-Type application/json and the body
//
//	{"audits":[<record>,…]}
//
// plus, when the server keeps a tamper-evident ledger, an "evidence"
// object beside "audits" (docs/tamper-evidence.md).
//
// where each record is the shape search returns (with its stable "id" for
// dedupe), in ingest order. When hmacSecret is set the header
// x-descope-webhook-s256 carries the standard base64 encoding (with
// padding) of HMAC-SHA256(hmacSecret, body), as Descope documents
// (docs.descope.com/connectors/connector-hmac-usage: digest('base64')).
// The body is compact JSON without HTML escaping, so both a receiver that
// signs the raw body and one that signs JSON.stringify(parsed body), as
// Descope's own examples do, compute the same signature.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
)

// SignatureHeader carries the body's HMAC-SHA256, base64-encoded.
const SignatureHeader = "x-descope-webhook-s256"

// Sign returns the x-descope-webhook-s256 value of body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Sink posts batches to one webhook URL.
type Sink struct {
	cfg    stream.WebhookConfig
	client *http.Client
	header http.Header
}

var _ stream.Sink = (*Sink)(nil)

// Headers a user may not override: they carry the body's framing or our
// own authentication.
var reserved = map[string]bool{"Content-Length": true, "Content-Type": true, "Host": true, "Transfer-Encoding": true, http.CanonicalHeaderKey(SignatureHeader): true}

// New is the stream.Factory of "webhook"; config is stream.WebhookConfig.
func New(config json.RawMessage) (stream.Sink, error) {
	var cfg stream.WebhookConfig
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, stream.Invalid("config", "must be a webhook config object: "+err.Error())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, v := range cfg.Headers {
		ck := http.CanonicalHeaderKey(k)
		if reserved[ck] {
			return nil, stream.Invalid("headers."+k, "is set by audittrail and cannot be overridden")
		}
		h.Set(ck, v)
	}
	if a := cfg.Authentication; a != nil {
		switch {
		case a.BearerToken != "":
			h.Set("Authorization", "Bearer "+a.BearerToken)
		case a.Basic != nil:
			r, _ := http.NewRequest(http.MethodPost, "http://x", nil)
			r.SetBasicAuth(a.Basic.Username, a.Basic.Password)
			h.Set("Authorization", r.Header.Get("Authorization"))
		case a.APIKey != nil:
			h.Set(a.APIKey.Key, a.APIKey.Token)
		}
	}
	h.Set("Content-Type", "application/json")
	return &Sink{cfg: cfg, client: httpsink.NewClient(cfg.Insecure), header: h}, nil
}

// Redact hides the authentication secrets, the HMAC secret, every custom
// header value and any password in the URL.
func Redact(config json.RawMessage) json.RawMessage {
	return stream.RedactKeys(config, "bearertoken", "password", "token", "hmacsecret", "headers")
}

// Connect does nothing: HTTP connections are made, and remade, per request.
func (s *Sink) Connect(context.Context) error { return nil }

type body struct {
	Audits []event.Event `json:"audits"`
	// Evidence proves the audits against a signed checkpoint when the
	// server keeps a ledger (docs/tamper-evidence.md); absent otherwise, so
	// Descope-shaped receivers see nothing new.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	payload, err := httpsink.Marshal(body{Audits: b.Events, Evidence: b.Evidence})
	if err != nil {
		return err
	}
	h := s.header.Clone()
	if s.cfg.HMACSecret != "" {
		h.Set(SignatureHeader, Sign(s.cfg.HMACSecret, payload))
	}
	_, err = httpsink.Post(ctx, s.client, s.cfg.URL, h, payload)
	return err
}

func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// Destination is the registry entry of "webhook".
func Destination() stream.Destination {
	return stream.Destination{New: New, Redact: Redact}
}
