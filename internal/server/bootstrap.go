package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/audittrail/audittrail/internal/tenancy"
)

// Credentials are what bootstrap.json holds: enough to make the first
// calls (`Authorization: Bearer <projectId>:<managementKey>`).
type Credentials struct {
	CompanyID     string `json:"companyId"`
	ProjectID     string `json:"projectId"`
	ManagementKey string `json:"managementKey"`
}

// LogValue keeps the management key out of logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("companyId", c.CompanyID), slog.String("projectId", c.ProjectID), slog.String("managementKey", "REDACTED"))
}

// ReadBootstrap reads <dataDir>/bootstrap.json.
func ReadBootstrap(dataDir string) (Credentials, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, BootstrapFile))
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", BootstrapFile, err)
	}
	if c.CompanyID == "" || c.ProjectID == "" || c.ManagementKey == "" {
		return Credentials{}, fmt.Errorf("%s: incomplete", BootstrapFile)
	}
	return c, nil
}

// Bootstrap gives a directory with no company its first company, default
// project and admin key, and writes them to <dataDir>/bootstrap.json
// (0600). A directory that already holds a company is left alone.
//
// The file is written before the directory records, so a crash between
// the two loses nothing: the next start finds the file, no company, and
// creates the same company, project and key from it.
func Bootstrap(ctx context.Context, dir tenancy.Directory, dataDir string, stdout io.Writer, log *slog.Logger) error {
	companies, err := dir.Companies(ctx)
	if err != nil {
		return fmt.Errorf("list companies: %w", err)
	}
	if len(companies) > 0 {
		return nil
	}

	creds, err := ReadBootstrap(dataDir)
	switch {
	case err == nil:
		log.Info("resuming an interrupted bootstrap", "credentials", creds)
	case errors.Is(err, fs.ErrNotExist):
		creds = Credentials{CompanyID: tenancy.NewCompanyID(), ProjectID: tenancy.NewProjectID()}
		creds.ManagementKey, _ = tenancy.NewKeySecret(tenancy.NewKeyID())
		if err := writeFileAtomic(filepath.Join(dataDir, BootstrapFile), creds); err != nil {
			return err
		}
	default:
		return fmt.Errorf("read %s: %w", BootstrapFile, err)
	}

	keyID, _, err := tenancy.ParseKey(creds.ManagementKey)
	if err != nil {
		return fmt.Errorf("%s: management key: %w", BootstrapFile, err)
	}
	now := time.Now().UTC()
	if err := dir.CreateCompany(ctx, tenancy.Company{ID: creds.CompanyID, Name: "default", Settings: tenancy.DefaultSettings(), Created: now}); err != nil && !errors.Is(err, tenancy.ErrExists) {
		return fmt.Errorf("create company: %w", err)
	}
	if err := dir.CreateProject(ctx, tenancy.Project{ID: creds.ProjectID, CompanyID: creds.CompanyID, Name: "default", Created: now}); err != nil && !errors.Is(err, tenancy.ErrExists) {
		return fmt.Errorf("create project: %w", err)
	}
	key := tenancy.Key{ID: keyID, CompanyID: creds.CompanyID, Name: "bootstrap admin", Role: tenancy.RoleAdmin,
		Hash: tenancy.HashKey(creds.ManagementKey), Created: now}
	if err := dir.CreateKey(ctx, key); err != nil && !errors.Is(err, tenancy.ErrExists) {
		return fmt.Errorf("create admin key: %w", err)
	}

	fmt.Fprintf(stdout, "audittrail: first start: created a company, a default project and an admin key.\n"+
		"  company id:      %s\n  project id:      %s\n  management key:  %s\n"+
		"They are saved in %s (mode 0600). The key is not shown again.\n",
		creds.CompanyID, creds.ProjectID, creds.ManagementKey, filepath.Join(dataDir, BootstrapFile))
	log.Info("bootstrap complete", "credentials", creds)
	return nil
}

// writeFileAtomic writes v as JSON to path with mode 0600: temp file,
// fsync, rename, fsync of the directory, so a crash leaves either no file
// or the whole file.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("open data dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync data dir: %w", err)
	}
	return nil
}
