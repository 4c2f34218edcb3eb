package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Record is everything persisted about one connector: its spec (with
// secrets), its durable cursor and its health counters.
type Record struct {
	Spec Spec `json:"spec"`
	// Cursor is the Seq of the last event the destination acknowledged (or
	// that the connector's filters skipped); delivery resumes after it.
	Cursor uint64 `json:"cursor"`
	// Paused by a user; AutoPaused after failing for Options.AutoPauseAfter.
	Paused     bool     `json:"paused"`
	AutoPaused bool     `json:"autoPaused"`
	Counters   Counters `json:"counters"`
}

// Counters survive restarts so health and metrics do not reset.
type Counters struct {
	Delivered      uint64    `json:"delivered"` // events acknowledged
	Batches        uint64    `json:"batches"`   // writes acknowledged
	FailedAttempts uint64    `json:"failedAttempts"`
	FailedEvents   uint64    `json:"failedEvents"` // events in failed attempts (retried)
	LastSuccess    time.Time `json:"lastSuccess,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	LastErrorAt    time.Time `json:"lastErrorAt,omitzero"`
	// FailingSince is the first failure of the current run of failures;
	// zero while healthy. Auto-pause measures from it.
	FailingSince time.Time `json:"failingSince,omitzero"`
}

// StateStore persists connector records. The file implementation serves the
// embedded deployment; a PostgreSQL one serves a fleet. Implementations are
// safe for concurrent use.
type StateStore interface {
	Load(ctx context.Context) ([]Record, error)
	// Put creates or replaces the record with the same Spec.ID; it returns
	// only once the record is durable.
	Put(ctx context.Context, r Record) error
	Delete(ctx context.Context, id string) error
}

// Lease grants the right to deliver for one connector. In a fleet only one
// instance may hold a connector's lease (PostgreSQL advisory locks will back
// it); the local implementation always grants it.
type Lease interface {
	// Acquire blocks until the lease is held or ctx ends.
	Acquire(ctx context.Context, connectorID string) (Held, error)
}

// Held is a granted lease.
type Held interface {
	// Lost is closed when the lease was taken away; delivery must stop.
	Lost() <-chan struct{}
	Release()
}

// LocalLease is the single-instance Lease: always granted, never lost.
type LocalLease struct{}

type localHeld struct{}

func (LocalLease) Acquire(ctx context.Context, _ string) (Held, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return localHeld{}, nil
}
func (localHeld) Lost() <-chan struct{} { return nil }
func (localHeld) Release()              {}

// FileState keeps every record in one JSON file, rewritten atomically
// (temp file, fsync, rename, fsync of the directory) with mode 0600 because
// it holds destination secrets.
type FileState struct {
	path    string
	mu      sync.Mutex
	records map[string]Record
}

var _ StateStore = (*FileState)(nil)

type stateFile struct {
	Version    int      `json:"version"`
	Connectors []Record `json:"connectors"`
}

// OpenFileState reads path if it exists; the file is created on first Put.
func OpenFileState(path string) (*FileState, error) {
	f := &FileState{path: path, records: map[string]Record{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stream state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("decode stream state %s: %w", path, err)
	}
	for _, r := range sf.Connectors {
		f.records[r.Spec.ID] = r
	}
	return f, nil
}

func (f *FileState) Load(context.Context) ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Record, 0, len(f.records))
	for _, r := range f.records {
		out = append(out, r)
	}
	return out, nil
}

func (f *FileState) Put(_ context.Context, r Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, had := f.records[r.Spec.ID]
	f.records[r.Spec.ID] = r
	if err := f.writeLocked(); err != nil {
		if had {
			f.records[r.Spec.ID] = prev
		} else {
			delete(f.records, r.Spec.ID)
		}
		return err
	}
	return nil
}

func (f *FileState) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, had := f.records[id]
	if !had {
		return nil
	}
	delete(f.records, id)
	if err := f.writeLocked(); err != nil {
		f.records[id] = prev
		return err
	}
	return nil
}

func (f *FileState) writeLocked() error {
	sf := stateFile{Version: 1, Connectors: make([]Record, 0, len(f.records))}
	for _, r := range f.records {
		sf.Connectors = append(sf.Connectors, r)
	}
	b, err := json.Marshal(sf)
	if err != nil {
		return fmt.Errorf("encode stream state: %w", err)
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, ".streams-*.tmp")
	if err != nil {
		return fmt.Errorf("write stream state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write stream state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write stream state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync stream state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write stream state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("replace stream state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync stream state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync stream state dir: %w", err)
	}
	return nil
}

// MemState is a StateStore in memory, for tests and for deployments that
// accept losing cursors on restart.
type MemState struct {
	mu      sync.Mutex
	records map[string]Record
}

var _ StateStore = (*MemState)(nil)

func NewMemState() *MemState { return &MemState{records: map[string]Record{}} }

func (m *MemState) Load(context.Context) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r)
	}
	return out, nil
}

func (m *MemState) Put(_ context.Context, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[r.Spec.ID] = r
	return nil
}

func (m *MemState) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, id)
	return nil
}
