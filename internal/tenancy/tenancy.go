// Package tenancy holds companies, projects, management keys and company
// settings, and the Directory seam that persists them (a file for the
// embedded deployment, PostgreSQL for a fleet).
package tenancy

import (
	"context"
	"errors"
	"time"
)

var (
	ErrNotFound = errors.New("tenancy: not found")
	ErrExists   = errors.New("tenancy: already exists")
)

// Role is what a management key may do.
type Role string

const (
	RoleAdmin  Role = "admin"  // everything, including the admin API
	RoleWriter Role = "writer" // create events (and manage stream connectors)
	RoleReader Role = "reader" // search
)

// Settings a company admin may change.
type Settings struct {
	// SearchWindowDays is how far back `from` may reach (Descope: 30).
	SearchWindowDays int `json:"searchWindowDays"`
	// RetentionDays: older events are deleted; never less than the window.
	RetentionDays int `json:"retentionDays"`
	// SearchRateLimit is searches per minute per project; 0 means no limit.
	// nil means the server's default (--search-rate-limit).
	SearchRateLimit *int `json:"searchRateLimit"`
}

// DefaultSettings are those of a new company.
func DefaultSettings() Settings {
	return Settings{SearchWindowDays: 30, RetentionDays: 90}
}

type Company struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Settings Settings  `json:"settings"`
	Created  time.Time `json:"created"`
}

type Project struct {
	ID        string    `json:"id"`
	CompanyID string    `json:"companyId"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
}

// Key is a management key as stored: never the secret, only its hash.
type Key struct {
	ID        string `json:"id"`
	CompanyID string `json:"companyId"`
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	// ProjectIDs limits the key to these projects; empty means all.
	ProjectIDs []string  `json:"projectIds"`
	Hash       []byte    `json:"-"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires,omitzero"` // zero: never
	Revoked    time.Time `json:"revoked,omitzero"` // zero: active
	Rotated    time.Time `json:"rotated,omitzero"`
}

// Directory persists tenancy records. Implementations are safe for
// concurrent use and pass tenancy/tenancytest.
type Directory interface {
	CreateCompany(ctx context.Context, c Company) error // ErrExists
	Companies(ctx context.Context) ([]Company, error)
	Company(ctx context.Context, id string) (Company, error)
	UpdateSettings(ctx context.Context, companyID string, s Settings) error

	CreateProject(ctx context.Context, p Project) error
	Projects(ctx context.Context, companyID string) ([]Project, error)
	Project(ctx context.Context, id string) (Project, error)
	DeleteProject(ctx context.Context, companyID, id string) error

	CreateKey(ctx context.Context, k Key) error
	Keys(ctx context.Context, companyID string) ([]Key, error)
	Key(ctx context.Context, id string) (Key, error)
	// UpdateKey replaces the stored key with the same ID (revoke, rotate).
	UpdateKey(ctx context.Context, k Key) error

	Close() error
}
