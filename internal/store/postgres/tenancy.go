package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audittrail/audittrail/internal/tenancy"
)

// Directory is the tenancy.Directory over PostgreSQL. Unreachable-server
// failures wrap store.ErrUnavailable, as the event store's do, so the API
// answers 503 for both.
type Directory struct {
	db     *DB
	closed atomic.Bool
}

var _ tenancy.Directory = (*Directory)(nil)

func (d *Directory) check(ctx context.Context) error {
	if d.closed.Load() {
		return tenancy.ErrClosed
	}
	return ctx.Err()
}

// Close marks the directory closed; the pool stays open until DB.Close.
func (d *Directory) Close() error {
	d.closed.Store(true)
	return nil
}

func isUniqueViolation(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "23505"
}

// nullTime maps the zero time to NULL and back, since "never" is stored as
// the absence of a time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func (d *Directory) CreateCompany(ctx context.Context, c tenancy.Company) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	if c.ID == "" {
		return fmt.Errorf("%w: company without an id", tenancy.ErrInvalid)
	}
	_, err := d.db.pool.Exec(ctx, `
		INSERT INTO companies (id, name, search_window_days, retention_days, search_rate_limit, created)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		c.ID, c.Name, c.Settings.SearchWindowDays, c.Settings.RetentionDays, c.Settings.SearchRateLimit, c.Created)
	if isUniqueViolation(err) {
		return fmt.Errorf("create company %s: %w", c.ID, tenancy.ErrExists)
	}
	return classify(ctx, "create company", err)
}

const companyColumns = "id, name, search_window_days, retention_days, search_rate_limit, created"

func scanCompany(row pgx.CollectableRow) (tenancy.Company, error) {
	var c tenancy.Company
	err := row.Scan(&c.ID, &c.Name, &c.Settings.SearchWindowDays, &c.Settings.RetentionDays, &c.Settings.SearchRateLimit, &c.Created)
	return c, err
}

func (d *Directory) Companies(ctx context.Context) ([]tenancy.Company, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	rows, err := d.db.pool.Query(ctx, "SELECT "+companyColumns+" FROM companies ORDER BY created, id")
	if err != nil {
		return nil, classify(ctx, "list companies", err)
	}
	out, err := pgx.CollectRows(rows, scanCompany)
	return out, classify(ctx, "list companies", err)
}

func (d *Directory) Company(ctx context.Context, id string) (tenancy.Company, error) {
	if err := d.check(ctx); err != nil {
		return tenancy.Company{}, err
	}
	rows, err := d.db.pool.Query(ctx, "SELECT "+companyColumns+" FROM companies WHERE id = $1", id)
	if err != nil {
		return tenancy.Company{}, classify(ctx, "get company", err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanCompany)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("company %s: %w", id, tenancy.ErrNotFound)
	}
	return c, classify(ctx, "get company", err)
}

func (d *Directory) UpdateSettings(ctx context.Context, companyID string, s tenancy.Settings) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	tag, err := d.db.pool.Exec(ctx, `
		UPDATE companies SET search_window_days = $2, retention_days = $3, search_rate_limit = $4
		 WHERE id = $1`, companyID, s.SearchWindowDays, s.RetentionDays, s.SearchRateLimit)
	if err != nil {
		return classify(ctx, "update settings", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("company %s: %w", companyID, tenancy.ErrNotFound)
	}
	return nil
}

func (d *Directory) CreateProject(ctx context.Context, p tenancy.Project) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	if p.ID == "" {
		return fmt.Errorf("%w: project without an id", tenancy.ErrInvalid)
	}
	tag, err := d.db.pool.Exec(ctx, `
		INSERT INTO projects (id, company_id, name, created)
		SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM companies WHERE id = $2)`,
		p.ID, p.CompanyID, p.Name, p.Created)
	if isUniqueViolation(err) {
		return fmt.Errorf("create project %s: %w", p.ID, tenancy.ErrExists)
	}
	if err != nil {
		return classify(ctx, "create project", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create project %s: company %s: %w", p.ID, p.CompanyID, tenancy.ErrNotFound)
	}
	return nil
}

func scanProject(row pgx.CollectableRow) (tenancy.Project, error) {
	var p tenancy.Project
	err := row.Scan(&p.ID, &p.CompanyID, &p.Name, &p.Created)
	return p, err
}

func (d *Directory) Projects(ctx context.Context, companyID string) ([]tenancy.Project, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	rows, err := d.db.pool.Query(ctx, "SELECT id, company_id, name, created FROM projects WHERE company_id = $1 ORDER BY created, id", companyID)
	if err != nil {
		return nil, classify(ctx, "list projects", err)
	}
	out, err := pgx.CollectRows(rows, scanProject)
	return out, classify(ctx, "list projects", err)
}

func (d *Directory) Project(ctx context.Context, id string) (tenancy.Project, error) {
	if err := d.check(ctx); err != nil {
		return tenancy.Project{}, err
	}
	rows, err := d.db.pool.Query(ctx, "SELECT id, company_id, name, created FROM projects WHERE id = $1", id)
	if err != nil {
		return tenancy.Project{}, classify(ctx, "get project", err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanProject)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("project %s: %w", id, tenancy.ErrNotFound)
	}
	return p, classify(ctx, "get project", err)
}

func (d *Directory) DeleteProject(ctx context.Context, companyID, id string) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	tag, err := d.db.pool.Exec(ctx, "DELETE FROM projects WHERE company_id = $1 AND id = $2", companyID, id)
	if err != nil {
		return classify(ctx, "delete project", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("project %s: %w", id, tenancy.ErrNotFound)
	}
	return nil
}

const keyColumns = "id, company_id, name, role, project_ids, hash, created, expires, revoked, rotated"

func scanKey(row pgx.CollectableRow) (tenancy.Key, error) {
	var k tenancy.Key
	var role string
	var expires, revoked, rotated *time.Time
	err := row.Scan(&k.ID, &k.CompanyID, &k.Name, &role, &k.ProjectIDs, &k.Hash, &k.Created, &expires, &revoked, &rotated)
	k.Role = tenancy.Role(role)
	k.Expires, k.Revoked, k.Rotated = fromNull(expires), fromNull(revoked), fromNull(rotated)
	if len(k.ProjectIDs) == 0 {
		k.ProjectIDs = nil
	}
	return k, err
}

func keyArgs(k tenancy.Key) []any {
	projects := k.ProjectIDs
	if projects == nil {
		projects = []string{}
	}
	hash := k.Hash
	if hash == nil {
		hash = []byte{}
	}
	return []any{k.ID, k.CompanyID, k.Name, string(k.Role), projects, hash, k.Created,
		nullTime(k.Expires), nullTime(k.Revoked), nullTime(k.Rotated)}
}

func (d *Directory) CreateKey(ctx context.Context, k tenancy.Key) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	if k.ID == "" {
		return fmt.Errorf("%w: key without an id", tenancy.ErrInvalid)
	}
	tag, err := d.db.pool.Exec(ctx, "INSERT INTO management_keys ("+keyColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM companies WHERE id = $2)`, keyArgs(k)...)
	if isUniqueViolation(err) {
		return fmt.Errorf("create key %s: %w", k.ID, tenancy.ErrExists)
	}
	if err != nil {
		return classify(ctx, "create key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create key %s: company %s: %w", k.ID, k.CompanyID, tenancy.ErrNotFound)
	}
	return nil
}

func (d *Directory) Keys(ctx context.Context, companyID string) ([]tenancy.Key, error) {
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	rows, err := d.db.pool.Query(ctx, "SELECT "+keyColumns+" FROM management_keys WHERE company_id = $1 ORDER BY created, id", companyID)
	if err != nil {
		return nil, classify(ctx, "list keys", err)
	}
	out, err := pgx.CollectRows(rows, scanKey)
	return out, classify(ctx, "list keys", err)
}

func (d *Directory) Key(ctx context.Context, id string) (tenancy.Key, error) {
	if err := d.check(ctx); err != nil {
		return tenancy.Key{}, err
	}
	rows, err := d.db.pool.Query(ctx, "SELECT "+keyColumns+" FROM management_keys WHERE id = $1", id)
	if err != nil {
		return tenancy.Key{}, classify(ctx, "get key", err)
	}
	k, err := pgx.CollectExactlyOneRow(rows, scanKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, fmt.Errorf("key %s: %w", id, tenancy.ErrNotFound)
	}
	return k, classify(ctx, "get key", err)
}

func (d *Directory) UpdateKey(ctx context.Context, k tenancy.Key) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	tag, err := d.db.pool.Exec(ctx, `
		UPDATE management_keys SET name = $3, role = $4, project_ids = $5, hash = $6,
		       created = $7, expires = $8, revoked = $9, rotated = $10
		 WHERE id = $1 AND company_id = $2`, keyArgs(k)...)
	if err != nil {
		return classify(ctx, "update key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("key %s: %w", k.ID, tenancy.ErrNotFound)
	}
	return nil
}
