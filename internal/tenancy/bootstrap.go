package tenancy

import (
	"context"
	"fmt"
)

// Bootstrapped is what the first start creates: printed once and written
// to bootstrap.json (mode 0600) by the caller.
type Bootstrapped struct {
	CompanyID     string `json:"companyId"`
	ProjectID     string `json:"projectId"`
	ManagementKey string `json:"managementKey"`
	KeyID         string `json:"keyId"`
}

// Bootstrap creates a company, a default project and an admin key with
// access to every project, when the directory holds no company yet. It
// returns nil when there is already one. Two processes bootstrapping one
// shared directory at once could both create; the caller serialises them
// (a PostgreSQL advisory lock, or the file directory's own lock).
func Bootstrap(ctx context.Context, dir Directory, iss Issuer) (*Bootstrapped, error) {
	cs, err := dir.Companies(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: list companies: %w", err)
	}
	if len(cs) > 0 {
		return nil, nil
	}
	now := iss.now().UTC()
	c := Company{ID: NewCompanyID(), Name: "Default company", Settings: DefaultSettings(), Created: now}
	if err := dir.CreateCompany(ctx, c); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	p := Project{ID: NewProjectID(), CompanyID: c.ID, Name: "Default project", Created: now}
	if err := dir.CreateProject(ctx, p); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	k, secret, err := iss.NewKey(Key{CompanyID: c.ID, Name: "bootstrap admin", Role: RoleAdmin, Created: now})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := dir.CreateKey(ctx, k); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &Bootstrapped{CompanyID: c.ID, ProjectID: p.ID, ManagementKey: secret, KeyID: k.ID}, nil
}
