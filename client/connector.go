package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// ErrDestinationFailed matches the error of a test delivery the
// destination refused or never acknowledged (HTTP 502); errors.As still
// gives the *Error with the destination's message.
var ErrDestinationFailed = errors.New("audittrail: destination failed")

// Connector types the server knows (GET /v1/mgmt/connectors lists the
// configured ones; an unknown type is refused naming the known ones).
const (
	ConnectorWebhook = "webhook"
	ConnectorSplunk  = "splunk"
	ConnectorDatadog = "datadog"
	ConnectorSumo    = "sumo"
	ConnectorOTLP    = "otlp"
	ConnectorSyslog  = "syslog"
	ConnectorNATS    = "nats"
	ConnectorKafka   = "kafka"
	ConnectorS3      = "s3"
)

// Connector levels: which events a connector streams.
const (
	ConnectorLevelProject = "project" // events of projects
	ConnectorLevelCompany = "company" // company-level events (keys, projects, settings)
	ConnectorLevelBoth    = "both"
)

// ConnectorFilter is Descope's audit-webhook filter: FilterType "all",
// "actions" or "tenants"; Operator "includes" or "excludes". Filters are
// ANDed.
type ConnectorFilter struct {
	FilterType string   `json:"filterType"`
	Operator   string   `json:"operator"`
	Values     []string `json:"values,omitempty"`
}

// Connector is a stream destination as the server shows it: its Config
// with every secret replaced by "REDACTED".
type Connector struct {
	ID        string `json:"id"`
	CompanyID string `json:"companyId"`
	// ProjectID is empty for a company-wide connector.
	ProjectID   string            `json:"projectId,omitempty"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Type        string            `json:"type"`
	Level       string            `json:"level"`
	Filters     []ConnectorFilter `json:"filters,omitempty"`
	MaskPII     bool              `json:"maskPII"`
	Config      json.RawMessage   `json:"config"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
	Health      ConnectorHealth   `json:"health"`
}

// Connector delivery states.
const (
	ConnectorActive     = "active"
	ConnectorPaused     = "paused"
	ConnectorFailing    = "failing"
	ConnectorAutoPaused = "auto-paused"
)

// ConnectorHealth is how a connector's delivery is going.
type ConnectorHealth struct {
	State       string `json:"state"`
	BreakerOpen bool   `json:"breakerOpen"`
	// Cursor is the sequence number of the last event delivered (or
	// skipped by the filters); Head the newest in the store.
	Cursor     uint64  `json:"cursor"`
	Head       uint64  `json:"head"`
	LagEvents  uint64  `json:"lagEvents"`
	LagSeconds float64 `json:"lagSeconds"`

	Delivered      uint64    `json:"delivered"`
	Batches        uint64    `json:"batches"`
	FailedAttempts uint64    `json:"failedAttempts"`
	FailedEvents   uint64    `json:"failedEvents"`
	LastSuccess    time.Time `json:"lastSuccess,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	LastErrorAt    time.Time `json:"lastErrorAt,omitzero"`
	FailingSince   time.Time `json:"failingSince,omitzero"`
}

// ConnectorOptions describe a connector to create, or the whole new
// description of one to update.
type ConnectorOptions struct {
	Name        string
	Description string
	// Type is one of the Connector* constants; on update, empty keeps it.
	Type string
	// Level is one of the ConnectorLevel* constants; empty means
	// ConnectorLevelProject for a project's connector, else
	// ConnectorLevelBoth.
	Level   string
	Filters []ConnectorFilter
	MaskPII bool
	// Config is the destination's configuration: anything that encodes to
	// a JSON object (a struct, a map, a json.RawMessage). On update, nil
	// keeps the current one, and a value sent back as Get showed it
	// ("REDACTED") keeps that secret.
	Config any
	// ProjectID makes the connector a project's. Empty means: the key's
	// project for a key limited to one project, else company-wide on
	// create and unchanged on update.
	ProjectID string
}

func (o ConnectorOptions) body() any {
	return struct {
		Name        string            `json:"name"`
		Description string            `json:"description,omitempty"`
		Type        string            `json:"type,omitempty"`
		Level       string            `json:"level,omitempty"`
		Filters     []ConnectorFilter `json:"filters,omitempty"`
		MaskPII     bool              `json:"maskPII"`
		Config      any               `json:"config,omitempty"`
		ProjectID   string            `json:"projectId,omitempty"`
	}{o.Name, o.Description, o.Type, o.Level, o.Filters, o.MaskPII, o.Config, o.ProjectID}
}

// AuditWebhook is the body of Descope's createAuditWebhook.
type AuditWebhook struct {
	Name           string                 `json:"name"`
	Description    string                 `json:"description,omitempty"`
	URL            string                 `json:"url"`
	Authentication *WebhookAuthentication `json:"authentication,omitempty"`
	// HMACSecret signs each delivery: header x-descope-webhook-s256 holds
	// the hex HMAC-SHA256 of the body.
	HMACSecret string            `json:"hmacSecret,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	// Insecure skips verification of the receiver's TLS certificate.
	Insecure bool              `json:"insecure,omitempty"`
	Filters  []ConnectorFilter `json:"filters,omitempty"`
}

// WebhookAuthentication sets exactly one way to authenticate deliveries.
type WebhookAuthentication struct {
	BearerToken string            `json:"bearerToken,omitempty"`
	Basic       *WebhookBasicAuth `json:"basic,omitempty"`
	// APIKey sends Token in the header named Key.
	APIKey *WebhookAPIKey `json:"apiKey,omitempty"`
}

type WebhookBasicAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type WebhookAPIKey struct {
	Key   string `json:"key"`
	Token string `json:"token"`
}

// Connectors holds the calls on stream connectors (writer or admin keys).
// A client scoped to a project whose key is limited to projects sees only
// those projects' connectors.
type Connectors struct{ c *Client }

// Connectors gives the calls on stream connectors.
func (c *Client) Connectors() *Connectors { return &Connectors{c: c} }

func connectorPath(id string, action string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty connector id", ErrBadRequest)
	}
	p := "/v1/mgmt/connectors/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p, nil
}

// SetAuditWebhook is Descope's createAuditWebhook: it creates a webhook,
// or updates the one of the same name in the same project, and returns
// its connector id.
func (cs *Connectors) SetAuditWebhook(ctx context.Context, w AuditWebhook) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := cs.c.call(ctx, http.MethodPost, "/v2/mgmt/connector/audit/web/set", w, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// Create makes a connector; it streams every event acknowledged after it
// returned.
func (cs *Connectors) Create(ctx context.Context, opts ConnectorOptions) (Connector, error) {
	var out Connector
	err := cs.c.call(ctx, http.MethodPost, "/v1/mgmt/connectors", opts.body(), &out)
	return out, err
}

// List returns the connectors the key may see, oldest first.
func (cs *Connectors) List(ctx context.Context) ([]Connector, error) {
	var out struct {
		Connectors []Connector `json:"connectors"`
	}
	if err := cs.c.call(ctx, http.MethodGet, "/v1/mgmt/connectors", nil, &out); err != nil {
		return nil, err
	}
	return out.Connectors, nil
}

// Get returns one connector.
func (cs *Connectors) Get(ctx context.Context, id string) (Connector, error) {
	return cs.viewCall(ctx, http.MethodGet, id, "", nil)
}

// Update replaces a connector's description, keeping its id, cursor and
// counters (see ConnectorOptions for what empty fields mean).
func (cs *Connectors) Update(ctx context.Context, id string, opts ConnectorOptions) (Connector, error) {
	return cs.viewCall(ctx, http.MethodPut, id, "", opts.body())
}

// Delete stops and removes a connector.
func (cs *Connectors) Delete(ctx context.Context, id string) error {
	p, err := connectorPath(id, "")
	if err != nil {
		return err
	}
	return cs.c.call(ctx, http.MethodDelete, p, nil, nil)
}

// Pause stops delivery; events keep accumulating behind the cursor.
func (cs *Connectors) Pause(ctx context.Context, id string) (Connector, error) {
	return cs.viewCall(ctx, http.MethodPost, id, "pause", nil)
}

// Resume restarts delivery from the cursor (also after an auto-pause).
func (cs *Connectors) Resume(ctx context.Context, id string) (Connector, error) {
	return cs.viewCall(ctx, http.MethodPost, id, "resume", nil)
}

// Test sends one synthetic event (action "AuditStreamTest") to the
// destination. A destination that fails gives an error matching
// ErrDestinationFailed whose *Error holds the destination's message.
func (cs *Connectors) Test(ctx context.Context, id string) error {
	p, err := connectorPath(id, "test")
	if err != nil {
		return err
	}
	err = cs.c.call(ctx, http.MethodPost, p, nil, nil)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadGateway {
		return fmt.Errorf("%w: %w", ErrDestinationFailed, err)
	}
	return err
}

// Replay rewinds the connector to the first stored event that occurred at
// or after from, and returns its new cursor.
func (cs *Connectors) Replay(ctx context.Context, id string, from time.Time) (uint64, error) {
	p, err := connectorPath(id, "replay")
	if err != nil {
		return 0, err
	}
	in := struct {
		From string `json:"from"`
	}{from.UTC().Format(time.RFC3339Nano)}
	var out struct {
		Cursor uint64 `json:"cursor"`
	}
	if err := cs.c.call(ctx, http.MethodPost, p, in, &out); err != nil {
		return 0, err
	}
	return out.Cursor, nil
}

// Health returns how a connector's delivery is going.
func (cs *Connectors) Health(ctx context.Context, id string) (ConnectorHealth, error) {
	p, err := connectorPath(id, "health")
	if err != nil {
		return ConnectorHealth{}, err
	}
	var out ConnectorHealth
	err = cs.c.call(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

func (cs *Connectors) viewCall(ctx context.Context, method, id, action string, in any) (Connector, error) {
	p, err := connectorPath(id, action)
	if err != nil {
		return Connector{}, err
	}
	var out Connector
	err = cs.c.call(ctx, method, p, in, &out)
	return out, err
}
