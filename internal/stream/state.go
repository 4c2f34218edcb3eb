package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

var (
	// ErrStale: progress was saved under a delivery epoch that is no longer
	// the record's, because another instance took over delivery or the
	// cursor was set from outside delivery (Replay). The deliverer must
	// stop and reload the record.
	ErrStale = errors.New("stream: delivery epoch superseded")
	// ErrExists: Create of an id already stored.
	ErrExists = errors.New("stream: connector id already exists")
)

// Record is everything persisted about one connector: its spec (with
// secrets), its durable cursor and its health counters.
//
// Two kinds of writer share a record in a fleet. The control plane (the API,
// on any instance) changes Spec, Paused, AutoPaused and, for Replay, Cursor,
// through StateStore.Update and bumps Revision so that the instance
// delivering notices. The instance delivering saves Cursor and Counters
// through StateStore.SaveProgress, fenced by Epoch: taking over delivery
// bumps Epoch, so a deliverer that lost its lease cannot overwrite the
// cursor of the one that replaced it.
type Record struct {
	Spec Spec `json:"spec"`
	// Cursor is the Seq of the last event the destination acknowledged (or
	// that the connector's filters skipped); delivery resumes after it.
	Cursor uint64 `json:"cursor"`
	// Paused by a user; AutoPaused after failing for Options.AutoPauseAfter.
	Paused     bool     `json:"paused"`
	AutoPaused bool     `json:"autoPaused"`
	Counters   Counters `json:"counters"`
	// Revision counts control changes (spec, pause, resume, replay).
	Revision uint64 `json:"revision"`
	// Epoch is the delivery generation SaveProgress must quote.
	Epoch uint64 `json:"epoch"`
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

// Progress is what the delivering instance saves after each
// acknowledgement or failure.
type Progress struct {
	// Epoch is the record's Epoch when this deliverer took over.
	Epoch    uint64
	Cursor   uint64
	Counters Counters
}

// StateStore persists connector records. The file implementation serves the
// embedded deployment, internal/store/postgres a fleet. Implementations are
// safe for concurrent use, and every write returns only once it is durable.
// statetest.Run is the conformance suite.
type StateStore interface {
	Load(ctx context.Context) ([]Record, error)
	// Get returns one record or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Create stores a new record; ErrExists if its Spec.ID is taken.
	Create(ctx context.Context, r Record) error
	// Update applies change to the current record and stores the result,
	// atomically: no other write lands between the read and the write.
	// change must not alter Spec.ID; an error from it aborts the update and
	// is returned as is. ErrNotFound for an unknown id.
	Update(ctx context.Context, id string, change func(*Record) error) (Record, error)
	// SaveProgress stores Cursor and Counters only, leaving every control
	// field as it is, if p.Epoch is still the record's Epoch; ErrStale if
	// not, ErrNotFound if the record is gone.
	SaveProgress(ctx context.Context, id string, p Progress) error
	// Delete removes a record; an unknown id is not an error.
	Delete(ctx context.Context, id string) error
}

// Lease grants the right to deliver for one connector. In a fleet only one
// instance may hold a connector's lease (internal/store/postgres backs it
// with advisory locks); the local implementation always grants it.
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

// recordSet is the map both in-process StateStores keep, with the write
// rules of the interface; persist (nil for memory) makes a change durable,
// and a change it fails to persist is rolled back.
type recordSet struct {
	mu      sync.Mutex
	records map[string]Record
	persist func(map[string]Record) error
}

func (s *recordSet) Load(context.Context) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.records)), nil
}

func (s *recordSet) Get(_ context.Context, id string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	return r, nil
}

// writeLocked stores r (or removes id when r is nil) and persists, undoing
// the change if persisting fails.
func (s *recordSet) writeLocked(id string, r *Record) error {
	prev, had := s.records[id]
	if r == nil {
		delete(s.records, id)
	} else {
		s.records[id] = *r
	}
	if s.persist == nil {
		return nil
	}
	if err := s.persist(s.records); err != nil {
		if had {
			s.records[id] = prev
		} else {
			delete(s.records, id)
		}
		return err
	}
	return nil
}

func (s *recordSet) Create(_ context.Context, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[r.Spec.ID]; ok {
		return ErrExists
	}
	return s.writeLocked(r.Spec.ID, &r)
}

func (s *recordSet) Update(_ context.Context, id string, change func(*Record) error) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	if err := change(&r); err != nil {
		return Record{}, err
	}
	r.Spec.ID = id
	if err := s.writeLocked(id, &r); err != nil {
		return Record{}, err
	}
	return r, nil
}

func (s *recordSet) SaveProgress(_ context.Context, id string, p Progress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	switch {
	case !ok:
		return ErrNotFound
	case r.Epoch != p.Epoch:
		return ErrStale
	}
	r.Cursor, r.Counters = p.Cursor, p.Counters
	return s.writeLocked(id, &r)
}

func (s *recordSet) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[id]; !ok {
		return nil
	}
	return s.writeLocked(id, nil)
}

// FileState keeps every record in one JSON file, rewritten atomically
// (temp file, fsync, rename, fsync of the directory) with mode 0600 because
// it holds destination secrets. It serves one instance: another process
// sharing the file would not see its changes.
type FileState struct {
	recordSet
	path string
}

var _ StateStore = (*FileState)(nil)

type stateFile struct {
	Version    int      `json:"version"`
	Connectors []Record `json:"connectors"`
}

// OpenFileState reads path if it exists; the file is created on first write.
func OpenFileState(path string) (*FileState, error) {
	f := &FileState{path: path, recordSet: recordSet{records: map[string]Record{}}}
	f.persist = f.write
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

// Path is the file the records are kept in.
func (f *FileState) Path() string { return f.path }

func (f *FileState) write(records map[string]Record) error {
	sf := stateFile{Version: 1, Connectors: slices.Collect(maps.Values(records))}
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
	recordSet
}

var _ StateStore = (*MemState)(nil)

func NewMemState() *MemState { return &MemState{recordSet{records: map[string]Record{}}} }
