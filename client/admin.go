package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Roles of a management key.
const (
	RoleAdmin  = "admin"  // everything, including the admin API
	RoleWriter = "writer" // create events, and search
	RoleReader = "reader" // search
)

// Project is a project of the company.
type Project struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Projects holds the admin calls on projects (admin keys only).
type Projects struct{ c *Client }

// List returns the company's projects.
func (p *Projects) List(ctx context.Context) ([]Project, error) {
	var out struct {
		Projects []Project `json:"projects"`
	}
	if err := p.c.call(ctx, http.MethodGet, "/v1/mgmt/projects", nil, &out); err != nil {
		return nil, err
	}
	return out.Projects, nil
}

// Create makes a project.
func (p *Projects) Create(ctx context.Context, name string) (Project, error) {
	var out struct {
		Project Project `json:"project"`
	}
	in := struct {
		Name string `json:"name"`
	}{name}
	if err := p.c.call(ctx, http.MethodPost, "/v1/mgmt/projects", in, &out); err != nil {
		return Project{}, err
	}
	return out.Project, nil
}

// Delete removes a project.
func (p *Projects) Delete(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty project id", ErrBadRequest)
	}
	return p.c.call(ctx, http.MethodDelete, "/v1/mgmt/projects/"+url.PathEscape(id), nil, nil)
}

// Key is a management key as listed: never its secret.
type Key struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
	// ProjectIDs limits the key to these projects; empty means all.
	ProjectIDs []string  `json:"projectIds"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires,omitzero"` // zero: never
	Revoked    time.Time `json:"revoked,omitzero"` // zero: active
	Rotated    time.Time `json:"rotated,omitzero"`
}

// Active reports whether the key is neither revoked nor expired at now.
func (k Key) Active(now time.Time) bool {
	return k.Revoked.IsZero() && (k.Expires.IsZero() || now.Before(k.Expires))
}

// CreateKeyOptions describes a new management key.
type CreateKeyOptions struct {
	Name       string
	Role       string   // RoleAdmin, RoleWriter or RoleReader
	ProjectIDs []string // empty: all projects
	ExpiresIn  time.Duration
}

// Keys holds the admin calls on management keys (admin keys only).
type Keys struct{ c *Client }

// List returns every key of the company, revoked ones included.
func (k *Keys) List(ctx context.Context) ([]Key, error) {
	var out struct {
		Keys []Key `json:"keys"`
	}
	if err := k.c.call(ctx, http.MethodGet, "/v1/mgmt/keys", nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

type keyWithSecret struct {
	Key    Key    `json:"key"`
	Secret string `json:"secret"`
}

// Create makes a key and returns it with its full secret, which the server
// shows this one time only.
func (k *Keys) Create(ctx context.Context, opts CreateKeyOptions) (Key, string, error) {
	in := struct {
		Name             string   `json:"name"`
		Role             string   `json:"role"`
		ProjectIDs       []string `json:"projectIds"`
		ExpiresInSeconds int64    `json:"expiresInSeconds"`
	}{opts.Name, opts.Role, opts.ProjectIDs, int64(opts.ExpiresIn / time.Second)}
	if in.ProjectIDs == nil {
		in.ProjectIDs = []string{}
	}
	if opts.ExpiresIn > 0 && in.ExpiresInSeconds == 0 {
		in.ExpiresInSeconds = 1 // a sub-second expiry must not read as "never"
	}
	var out keyWithSecret
	if err := k.c.call(ctx, http.MethodPost, "/v1/mgmt/keys", in, &out); err != nil {
		return Key{}, "", err
	}
	return out.Key, out.Secret, nil
}

// Revoke disables a key at once.
func (k *Keys) Revoke(ctx context.Context, id string) (Key, error) {
	var out keyWithSecret
	if err := k.keyCall(ctx, id, "revoke", &out); err != nil {
		return Key{}, err
	}
	return out.Key, nil
}

// Rotate gives a key a new secret, returned once; the old one stops working.
func (k *Keys) Rotate(ctx context.Context, id string) (Key, string, error) {
	var out keyWithSecret
	if err := k.keyCall(ctx, id, "rotate", &out); err != nil {
		return Key{}, "", err
	}
	return out.Key, out.Secret, nil
}

func (k *Keys) keyCall(ctx context.Context, id, verb string, out *keyWithSecret) error {
	if id == "" {
		return fmt.Errorf("%w: empty key id", ErrBadRequest)
	}
	return k.c.call(ctx, http.MethodPost, "/v1/mgmt/keys/"+url.PathEscape(id)+"/"+verb, struct{}{}, out)
}

// CompanySettings are the company-wide settings.
type CompanySettings struct {
	SearchWindowDays int `json:"searchWindowDays"`
	RetentionDays    int `json:"retentionDays"`
	// SearchRateLimit is searches per minute per project, 0 for no limit,
	// nil when the server's default applies.
	SearchRateLimit *int `json:"searchRateLimit"`
}

// SettingsUpdate changes the settings that are not nil.
type SettingsUpdate struct {
	SearchWindowDays *int
	RetentionDays    *int
	SearchRateLimit  *int
	// DefaultSearchRateLimit puts the server's default limit back (sent as
	// null); it wins over SearchRateLimit.
	DefaultSearchRateLimit bool
}

// MarshalJSON sends only what changes: an absent key keeps the setting,
// and a null searchRateLimit means the server default.
func (u SettingsUpdate) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if u.SearchWindowDays != nil {
		m["searchWindowDays"] = *u.SearchWindowDays
	}
	if u.RetentionDays != nil {
		m["retentionDays"] = *u.RetentionDays
	}
	switch {
	case u.DefaultSearchRateLimit:
		m["searchRateLimit"] = nil
	case u.SearchRateLimit != nil:
		m["searchRateLimit"] = *u.SearchRateLimit
	}
	return json.Marshal(m)
}

// Settings holds the admin calls on company settings (admin keys only).
type Settings struct{ c *Client }

// Get returns the company's settings.
func (s *Settings) Get(ctx context.Context) (CompanySettings, error) {
	var out struct {
		Settings CompanySettings `json:"settings"`
	}
	if err := s.c.call(ctx, http.MethodGet, "/v1/mgmt/company/settings", nil, &out); err != nil {
		return CompanySettings{}, err
	}
	return out.Settings, nil
}

// Update changes the given settings and returns them all.
func (s *Settings) Update(ctx context.Context, u SettingsUpdate) (CompanySettings, error) {
	var out struct {
		Settings CompanySettings `json:"settings"`
	}
	if err := s.c.call(ctx, http.MethodPatch, "/v1/mgmt/company/settings", u, &out); err != nil {
		return CompanySettings{}, err
	}
	return out.Settings, nil
}

// Int returns a pointer to v, for SettingsUpdate.
func Int(v int) *int { return &v }
