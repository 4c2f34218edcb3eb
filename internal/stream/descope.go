package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// WebhookType is the destination type name of HTTP webhooks, the one
// Descope's createAuditWebhook creates.
const WebhookType = "webhook"

// DescopeWebhook is the body of Descope's createAuditWebhook
// (POST /v2/mgmt/connector/audit/web/set).
type DescopeWebhook struct {
	Name           string            `json:"name"`
	Description    string            `json:"description"`
	URL            string            `json:"url"`
	Authentication *WebhookAuth      `json:"authentication,omitempty"`
	HMACSecret     string            `json:"hmacSecret,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	Insecure       bool              `json:"insecure,omitempty"`
	Filters        []Filter          `json:"filters,omitempty"`
}

// WebhookAuth is Descope's webhook authentication: exactly one of its
// members is set.
type WebhookAuth struct {
	BearerToken string      `json:"bearerToken,omitempty"`
	Basic       *BasicAuth  `json:"basic,omitempty"`
	APIKey      *APIKeyAuth `json:"apiKey,omitempty"`
}

type BasicAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// APIKeyAuth sends Token in the header named Key.
type APIKeyAuth struct {
	Key   string `json:"key"`
	Token string `json:"token"`
}

// WebhookConfig is the config of a "webhook" connector: Descope's fields,
// so a Descope body converts without renaming.
type WebhookConfig struct {
	URL            string            `json:"url"`
	Authentication *WebhookAuth      `json:"authentication,omitempty"`
	HMACSecret     string            `json:"hmacSecret,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	Insecure       bool              `json:"insecure,omitempty"`
}

// Validate checks a webhook config; field names are relative to config.
func (c *WebhookConfig) Validate() error {
	if c.URL == "" {
		return Invalid("url", "is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Invalid("url", "must be an absolute http or https URL")
	}
	if a := c.Authentication; a != nil {
		set := 0
		if a.BearerToken != "" {
			set++
		}
		if a.Basic != nil {
			set++
			if a.Basic.Username == "" {
				return Invalid("authentication.basic.username", "is required")
			}
		}
		if a.APIKey != nil {
			set++
			if a.APIKey.Key == "" {
				return Invalid("authentication.apiKey.key", "is required")
			}
			if a.APIKey.Token == "" {
				return Invalid("authentication.apiKey.token", "is required")
			}
		}
		if set > 1 {
			return Invalid("authentication", "must set only one of bearerToken, basic and apiKey")
		}
	}
	for k := range c.Headers {
		if k == "" {
			return Invalid("headers", "has an empty header name")
		}
	}
	return nil
}

// FromDescopeWebhook converts a createAuditWebhook body into a webhook
// Spec. The caller sets CompanyID and ProjectID from the management key.
// Unknown keys are ignored, as Descope's SDKs may add some.
func FromDescopeWebhook(body []byte) (Spec, error) {
	var w DescopeWebhook
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Spec{}, Invalid(te.Field, fmt.Sprintf("must be a %s", te.Type))
		}
		return Spec{}, fmt.Errorf("%w: malformed JSON body", ErrInvalid)
	}
	if w.Name == "" {
		return Spec{}, Invalid("name", "is required")
	}
	if err := validateFilters(w.Filters); err != nil {
		return Spec{}, err
	}
	cfg := WebhookConfig{URL: w.URL, Authentication: w.Authentication, HMACSecret: w.HMACSecret, Headers: w.Headers, Insecure: w.Insecure}
	if err := cfg.Validate(); err != nil {
		return Spec{}, err
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return Spec{}, fmt.Errorf("encode webhook config: %w", err)
	}
	s := Spec{Name: w.Name, Description: w.Description, Type: WebhookType, Filters: w.Filters, Config: raw}
	return s, nil
}
