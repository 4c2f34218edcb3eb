package tenancy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/filelock"
)

// FileDirectory keeps the whole directory in memory and in one JSON file,
// rewritten atomically on every change. Tenancy data is small (companies,
// projects, keys: kilobytes) and changes rarely, so whole-file rewrites
// are simpler than any log and never leave a half-applied change.
type FileDirectory struct {
	path   string
	unlock func() error

	mu     sync.RWMutex
	state  fileState
	closed bool
}

var _ Directory = (*FileDirectory)(nil)

// fileState is the file's content. Lists are kept sorted by (Created, ID)
// so listings are stable and the file diffs well.
type fileState struct {
	Version   int         `json:"version"`
	Companies []Company   `json:"companies"`
	Projects  []Project   `json:"projects"`
	Keys      []keyRecord `json:"keys"`
}

// keyRecord stores the hash that Key's JSON form leaves out on purpose.
type keyRecord struct {
	Key
	Hash []byte `json:"hash"`
}

const fileVersion = 1

// OpenFileDirectory opens the directory file at path, creating it (mode
// 0600) when absent. The file is locked against a second process: two
// writers would silently undo each other's changes.
func OpenFileDirectory(path string) (*FileDirectory, error) {
	unlock, err := filelock.Lock(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("lock tenancy directory %s: %w", path, err)
	}
	d := &FileDirectory{path: path, unlock: unlock}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.state = fileState{Version: fileVersion}
		err = d.write(d.state)
	case err == nil:
		err = d.decode(b)
	}
	if err != nil {
		unlock()
		return nil, fmt.Errorf("open tenancy directory %s: %w", path, err)
	}
	return d, nil
}

func (d *FileDirectory) decode(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var st fileState
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if st.Version != fileVersion {
		return fmt.Errorf("file version %d, this build reads %d", st.Version, fileVersion)
	}
	d.state = st
	return nil
}

// write replaces the file with st: temp file, fsync, rename over the old
// one, fsync the directory so the rename itself survives a power cut.
func (d *FileDirectory) write(st fileState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(d.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(d.path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), d.path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// read runs fn under the read lock.
func (d *FileDirectory) read(ctx context.Context, fn func(st *fileState) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	return fn(&d.state)
}

// update applies fn to a copy of the state, writes it, and only then makes
// it current: a failed write leaves memory and file as they were.
func (d *FileDirectory) update(ctx context.Context, fn func(st *fileState) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	next := d.state.clone()
	if err := fn(&next); err != nil {
		return err
	}
	if err := d.write(next); err != nil {
		return fmt.Errorf("write tenancy directory: %w", err)
	}
	d.state = next
	return nil
}

func (st *fileState) clone() fileState {
	out := fileState{
		Version:   st.Version,
		Companies: make([]Company, len(st.Companies)),
		Projects:  slices.Clone(st.Projects),
		Keys:      make([]keyRecord, len(st.Keys)),
	}
	for i, c := range st.Companies {
		out.Companies[i] = cloneCompany(c)
	}
	for i, k := range st.Keys {
		out.Keys[i] = newKeyRecord(k.key())
	}
	return out
}

func cloneCompany(c Company) Company {
	if c.Settings.SearchRateLimit != nil {
		v := *c.Settings.SearchRateLimit
		c.Settings.SearchRateLimit = &v
	}
	return c
}

func cloneKey(k Key) Key {
	k.ProjectIDs = slices.Clone(k.ProjectIDs)
	k.Hash = bytes.Clone(k.Hash)
	return k
}

func byCreated[T any](created func(T) time.Time, id func(T) string) func(a, b T) int {
	return func(a, b T) int {
		if c := created(a).Compare(created(b)); c != 0 {
			return c
		}
		return cmp.Compare(id(a), id(b))
	}
}

var (
	companyOrder = byCreated(func(c Company) time.Time { return c.Created }, func(c Company) string { return c.ID })
	projectOrder = byCreated(func(p Project) time.Time { return p.Created }, func(p Project) string { return p.ID })
	keyOrder     = byCreated(func(k keyRecord) time.Time { return k.Created }, func(k keyRecord) string { return k.ID })
)

func requireID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s without an id", ErrInvalid, kind)
	}
	return nil
}

func (st *fileState) company(id string) int {
	return slices.IndexFunc(st.Companies, func(c Company) bool { return c.ID == id })
}

func (st *fileState) project(id string) int {
	return slices.IndexFunc(st.Projects, func(p Project) bool { return p.ID == id })
}

func (st *fileState) key(id string) int {
	return slices.IndexFunc(st.Keys, func(k keyRecord) bool { return k.ID == id })
}

func (d *FileDirectory) CreateCompany(ctx context.Context, c Company) error {
	if err := requireID("company", c.ID); err != nil {
		return err
	}
	return d.update(ctx, func(st *fileState) error {
		if st.company(c.ID) >= 0 {
			return fmt.Errorf("company %s: %w", c.ID, ErrExists)
		}
		st.Companies = append(st.Companies, cloneCompany(c))
		slices.SortStableFunc(st.Companies, companyOrder)
		return nil
	})
}

func (d *FileDirectory) Companies(ctx context.Context) ([]Company, error) {
	var out []Company
	err := d.read(ctx, func(st *fileState) error {
		out = make([]Company, len(st.Companies))
		for i, c := range st.Companies {
			out[i] = cloneCompany(c)
		}
		return nil
	})
	return out, err
}

func (d *FileDirectory) Company(ctx context.Context, id string) (Company, error) {
	var out Company
	err := d.read(ctx, func(st *fileState) error {
		i := st.company(id)
		if i < 0 {
			return fmt.Errorf("company %s: %w", id, ErrNotFound)
		}
		out = cloneCompany(st.Companies[i])
		return nil
	})
	return out, err
}

func (d *FileDirectory) UpdateSettings(ctx context.Context, companyID string, s Settings) error {
	return d.update(ctx, func(st *fileState) error {
		i := st.company(companyID)
		if i < 0 {
			return fmt.Errorf("company %s: %w", companyID, ErrNotFound)
		}
		st.Companies[i].Settings = s
		st.Companies[i] = cloneCompany(st.Companies[i])
		return nil
	})
}

func (d *FileDirectory) CreateProject(ctx context.Context, p Project) error {
	if err := requireID("project", p.ID); err != nil {
		return err
	}
	return d.update(ctx, func(st *fileState) error {
		if st.company(p.CompanyID) < 0 {
			return fmt.Errorf("company %s of project %s: %w", p.CompanyID, p.ID, ErrNotFound)
		}
		if st.project(p.ID) >= 0 {
			return fmt.Errorf("project %s: %w", p.ID, ErrExists)
		}
		st.Projects = append(st.Projects, p)
		slices.SortStableFunc(st.Projects, projectOrder)
		return nil
	})
}

func (d *FileDirectory) Projects(ctx context.Context, companyID string) ([]Project, error) {
	out := []Project{}
	err := d.read(ctx, func(st *fileState) error {
		for _, p := range st.Projects {
			if p.CompanyID == companyID {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

func (d *FileDirectory) Project(ctx context.Context, id string) (Project, error) {
	var out Project
	err := d.read(ctx, func(st *fileState) error {
		i := st.project(id)
		if i < 0 {
			return fmt.Errorf("project %s: %w", id, ErrNotFound)
		}
		out = st.Projects[i]
		return nil
	})
	return out, err
}

// DeleteProject removes the project. Keys scoped to it keep it in their
// ProjectIDs: dropping it could leave a list empty, which means "every
// project" and would widen the key.
func (d *FileDirectory) DeleteProject(ctx context.Context, companyID, id string) error {
	return d.update(ctx, func(st *fileState) error {
		i := st.project(id)
		if i < 0 || st.Projects[i].CompanyID != companyID {
			return fmt.Errorf("project %s of company %s: %w", id, companyID, ErrNotFound)
		}
		st.Projects = slices.Delete(st.Projects, i, i+1)
		return nil
	})
}

func (d *FileDirectory) CreateKey(ctx context.Context, k Key) error {
	if err := requireID("key", k.ID); err != nil {
		return err
	}
	return d.update(ctx, func(st *fileState) error {
		if st.company(k.CompanyID) < 0 {
			return fmt.Errorf("company %s of key %s: %w", k.CompanyID, k.ID, ErrNotFound)
		}
		if st.key(k.ID) >= 0 {
			return fmt.Errorf("key %s: %w", k.ID, ErrExists)
		}
		st.Keys = append(st.Keys, newKeyRecord(k))
		slices.SortStableFunc(st.Keys, keyOrder)
		return nil
	})
}

func (d *FileDirectory) Keys(ctx context.Context, companyID string) ([]Key, error) {
	out := []Key{}
	err := d.read(ctx, func(st *fileState) error {
		for _, k := range st.Keys {
			if k.CompanyID == companyID {
				out = append(out, k.key())
			}
		}
		return nil
	})
	return out, err
}

func (d *FileDirectory) Key(ctx context.Context, id string) (Key, error) {
	var out Key
	err := d.read(ctx, func(st *fileState) error {
		i := st.key(id)
		if i < 0 {
			return fmt.Errorf("key %s: %w", id, ErrNotFound)
		}
		out = st.Keys[i].key()
		return nil
	})
	return out, err
}

// UpdateKey replaces the key with k.ID. A key never moves between
// companies: one stored under another company is reported not found.
func (d *FileDirectory) UpdateKey(ctx context.Context, k Key) error {
	return d.update(ctx, func(st *fileState) error {
		i := st.key(k.ID)
		if i < 0 || st.Keys[i].CompanyID != k.CompanyID {
			return fmt.Errorf("key %s of company %s: %w", k.ID, k.CompanyID, ErrNotFound)
		}
		st.Keys[i] = newKeyRecord(k)
		slices.SortStableFunc(st.Keys, keyOrder)
		return nil
	})
}

func newKeyRecord(k Key) keyRecord {
	r := keyRecord{Key: cloneKey(k), Hash: bytes.Clone(k.Hash)}
	r.Key.Hash = nil
	return r
}

func (k keyRecord) key() Key {
	out := cloneKey(k.Key)
	out.Hash = bytes.Clone(k.Hash)
	return out
}

// Close releases the file lock; later calls get ErrClosed. Every change was
// already durable when its call returned, so there is nothing to flush.
func (d *FileDirectory) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.closed = true
	return d.unlock()
}
