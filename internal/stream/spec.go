package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

var (
	// ErrInvalid wraps every validation failure; errors.As a *FieldError
	// for the field name.
	ErrInvalid = errors.New("stream: invalid connector")
	// ErrNotFound: no connector with that id in that company.
	ErrNotFound = errors.New("stream: connector not found")
	// ErrUnknownType: no destination registered under that type name.
	ErrUnknownType = errors.New("stream: unknown destination type")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("stream: manager closed")
)

// FieldError names the invalid field of a connector spec, e.g.
// "filters[1].operator" or "config.url".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a *FieldError; destination factories use it so the HTTP
// layer can answer 400 naming the field.
func Invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Level selects the event levels a connector delivers.
type Level string

const (
	LevelProject Level = "project"
	LevelCompany Level = "company"
	LevelBoth    Level = "both"
)

// Filter is Descope's audit-webhook filter shape.
type Filter struct {
	// FilterType is "all", "actions" or "tenants" (the Node SDK calls it "key").
	FilterType string `json:"filterType"`
	// Operator is "includes" or "excludes".
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

// UnmarshalJSON accepts the Node SDK's "key" as a synonym of "filterType".
func (f *Filter) UnmarshalJSON(b []byte) error {
	var in struct {
		FilterType string   `json:"filterType"`
		Key        string   `json:"key"`
		Operator   string   `json:"operator"`
		Values     []string `json:"values"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	f.FilterType, f.Operator, f.Values = in.FilterType, in.Operator, in.Values
	if f.FilterType == "" {
		f.FilterType = in.Key
	}
	return nil
}

// Spec is a connector as configured: where to deliver (Type and its Config,
// which holds the destination's secrets) and what (scope, filters, masking).
type Spec struct {
	ID        string `json:"id"`
	CompanyID string `json:"companyId"`
	// ProjectID limits project-level events to one project; empty means
	// every project of the company.
	ProjectID   string `json:"projectId,omitempty"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Type names the destination ("webhook", "splunk", …).
	Type string `json:"type"`
	// Level defaults to "project" when ProjectID is set, else "both".
	Level   Level    `json:"level"`
	Filters []Filter `json:"filters,omitempty"`
	MaskPII bool     `json:"maskPII"`
	// Config is the destination-specific JSON; it holds secrets and is only
	// ever shown redacted after creation.
	Config  json.RawMessage `json:"config"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
}

// Limits on a spec, so a connector cannot make every event's filtering
// expensive.
const (
	maxNameLen      = 256
	maxFilters      = 20
	maxFilterValues = 1000
	maxConfigBytes  = 64 << 10
)

// normalize fills defaults and validates what the engine itself checks;
// the destination factory validates Config.
func (s *Spec) normalize() error {
	if s.CompanyID == "" {
		return Invalid("companyId", "is required")
	}
	if s.Type == "" {
		return Invalid("type", "is required")
	}
	if strings.TrimSpace(s.Name) == "" {
		return Invalid("name", "is required")
	}
	if len(s.Name) > maxNameLen {
		return Invalid("name", fmt.Sprintf("longer than %d bytes", maxNameLen))
	}
	if len(s.Description) > 4*maxNameLen {
		return Invalid("description", fmt.Sprintf("longer than %d bytes", 4*maxNameLen))
	}
	switch s.Level {
	case "":
		s.Level = LevelBoth
		if s.ProjectID != "" {
			s.Level = LevelProject
		}
	case LevelProject, LevelCompany, LevelBoth:
	default:
		return Invalid("level", `must be "project", "company" or "both"`)
	}
	if err := validateFilters(s.Filters); err != nil {
		return err
	}
	if len(s.Config) > maxConfigBytes {
		return Invalid("config", fmt.Sprintf("larger than %d bytes", maxConfigBytes))
	}
	if len(s.Config) == 0 {
		s.Config = json.RawMessage("{}")
	}
	if !json.Valid(s.Config) {
		return Invalid("config", "is not valid JSON")
	}
	return nil
}

func validateFilters(filters []Filter) error {
	if len(filters) > maxFilters {
		return Invalid("filters", fmt.Sprintf("has more than %d entries", maxFilters))
	}
	for i := range filters {
		f := &filters[i]
		field := fmt.Sprintf("filters[%d]", i)
		switch f.FilterType {
		case "all", "actions", "tenants":
		case "":
			return Invalid(field+".filterType", "is required")
		default:
			return Invalid(field+".filterType", `must be "all", "actions" or "tenants"`)
		}
		switch f.Operator {
		case "includes", "excludes":
		case "":
			return Invalid(field+".operator", "is required")
		default:
			return Invalid(field+".operator", `must be "includes" or "excludes"`)
		}
		if f.FilterType != "all" && len(f.Values) == 0 {
			return Invalid(field+".values", "must list at least one value")
		}
		if len(f.Values) > maxFilterValues {
			return Invalid(field+".values", fmt.Sprintf("has more than %d entries", maxFilterValues))
		}
	}
	return nil
}

// Destination is one entry of the factory map the server hands to the
// Manager: how to build the sink and how to hide its secrets.
type Destination struct {
	New Factory
	// Redact returns config with every secret replaced; nil means
	// RedactKeys(config, DefaultSecretKeys...).
	Redact func(config json.RawMessage) json.RawMessage
}

// Redacted replaces each secret in a spec shown after creation.
const Redacted = "REDACTED"

// DefaultSecretKeys are the substrings of JSON key names (case-insensitive)
// whose values RedactKeys hides when a destination names none of its own.
var DefaultSecretKeys = []string{"password", "secret", "token", "apikey", "api_key", "credential", "authorization", "headers", "privatekey", "private_key", "passphrase"}

// RedactKeys replaces every string under a key whose lower-cased name
// contains one of keys (whole objects included, so "headers" hides every
// header value) with Redacted, and the password of any URL-looking string.
func RedactKeys(config json.RawMessage, keys ...string) json.RawMessage {
	var v any
	if err := json.Unmarshal(config, &v); err != nil {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	v = redactValue(v, false, keys)
	out, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	return out
}

func redactValue(v any, secret bool, keys []string) any {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			t[k] = redactValue(child, secret || keyMatches(k, keys), keys)
		}
		return t
	case []any:
		for i, child := range t {
			t[i] = redactValue(child, secret, keys)
		}
		return t
	case string:
		if secret {
			return Redacted
		}
		return redactURLPassword(t)
	default:
		if secret && t != nil {
			return Redacted
		}
		return t
	}
}

func keyMatches(k string, keys []string) bool {
	k = strings.ToLower(k)
	for _, s := range keys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// redactURLPassword hides the password of a URL with userinfo.
func redactURLPassword(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Redacted)
		return u.String()
	}
	return s
}

// restoreRedacted returns next with every value that equals, at the same
// path, the redacted view of prev replaced by prev's value: a client may
// send back what Get showed it and keep the secrets it cannot see.
func restoreRedacted(next, prev, prevRedacted json.RawMessage) (json.RawMessage, error) {
	var n, p, r any
	if err := json.Unmarshal(next, &n); err != nil {
		return nil, err
	}
	if json.Unmarshal(prev, &p) != nil || json.Unmarshal(prevRedacted, &r) != nil {
		return next, nil
	}
	out, err := json.Marshal(restoreValue(n, p, r))
	if err != nil {
		return nil, err
	}
	return out, nil
}

func restoreValue(n, p, r any) any {
	switch nt := n.(type) {
	case map[string]any:
		pm, ok1 := p.(map[string]any)
		rm, ok2 := r.(map[string]any)
		if !ok1 || !ok2 {
			return n
		}
		for k, child := range nt {
			nt[k] = restoreValue(child, pm[k], rm[k])
		}
		return nt
	case []any:
		pa, ok1 := p.([]any)
		ra, ok2 := r.([]any)
		if !ok1 || !ok2 || len(pa) != len(ra) {
			return n
		}
		for i := range nt {
			if i < len(pa) {
				nt[i] = restoreValue(nt[i], pa[i], ra[i])
			}
		}
		return nt
	case string:
		if rs, ok := r.(string); ok && rs == nt && strings.Contains(rs, Redacted) {
			return p
		}
		return n
	default:
		return n
	}
}
