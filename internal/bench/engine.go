package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// Engine is what the benchmark loads and queries. A store.Store is one
// through StoreEngine; the PostgreSQL baseline table is another.
type Engine interface {
	// Append stores a batch durably, as store.Store.Append does.
	Append(ctx context.Context, events []event.Event) error
	// Search answers q with the page and the exact total.
	Search(ctx context.Context, q query.Query) (store.Result, error)
	// DiskBytes is what the engine keeps on disk now.
	DiskBytes(ctx context.Context) (int64, error)
	// Note says in one line how the engine is set up, for the report.
	Note() string
	Close() error
}

// EngineConfig is where an engine may keep its data. The runner gives each
// engine a fresh, empty place.
type EngineConfig struct {
	// Dir is a directory of the engine's own, empty.
	Dir string
	// PostgresURL points at a server whose user may create databases; an
	// engine on PostgreSQL keeps its data in a database of its own named
	// Database plus a suffix, dropped and recreated on open.
	PostgresURL string
	Database    string
	// Reuse asks an engine on PostgreSQL to open the database a --keep run
	// left instead of recreating it (see Options.ReuseDatabases).
	Reuse  bool
	Logger *slog.Logger
}

// reusable is implemented by engines that can open a kept database:
// StoredTrail says what it holds, to refuse one of another trail.
type reusable interface {
	StoredTrail(ctx context.Context) (storedTrail, error)
}

// storedTrail is what a kept database holds: a trail of the same seed and
// size generated with another End has the same count but every Occurred
// shifted.
type storedTrail struct {
	Events      int64
	MaxOccurred int64
}

// dropper is implemented by engines whose data lives outside their Dir (a
// PostgreSQL database); Drop removes it after Close.
type dropper interface {
	Drop(ctx context.Context) error
}

// OpenFunc opens an engine on an empty place.
type OpenFunc func(ctx context.Context, cfg EngineConfig) (Engine, error)

// ErrUnknownEngine is returned for an engine name not in the registry.
var ErrUnknownEngine = errors.New("bench: unknown engine")

// registry maps engine names to their constructors. Engines that live in
// other packages register from files of their own (engine_*.go), so that
// adding a backend is one file.
var registry = map[string]OpenFunc{
	"memory": openMemory,
}

func register(name string, open OpenFunc) { registry[name] = open }

// EngineNames lists the registered engines, sorted.
func EngineNames() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// OpenEngine opens the named engine.
func OpenEngine(ctx context.Context, name string, cfg EngineConfig) (Engine, error) {
	open, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownEngine, name, EngineNames())
	}
	return open(ctx, cfg)
}

// StoreEngine benchmarks any store.Store. Dir, if set, is measured for
// DiskBytes; DiskFunc, if set, is used instead.
type StoreEngine struct {
	Store    store.Store
	Dir      string
	DiskFunc func(ctx context.Context) (int64, error)
	About    string
	// CloseFunc runs after Store.Close, to release what opened it.
	CloseFunc func() error
}

var _ Engine = (*StoreEngine)(nil)

func (s *StoreEngine) Append(ctx context.Context, events []event.Event) error {
	return s.Store.Append(ctx, events)
}

func (s *StoreEngine) Search(ctx context.Context, q query.Query) (store.Result, error) {
	return s.Store.Search(ctx, q)
}

func (s *StoreEngine) DiskBytes(ctx context.Context) (int64, error) {
	if s.DiskFunc != nil {
		return s.DiskFunc(ctx)
	}
	if s.Dir == "" {
		return 0, nil
	}
	return dirBytes(s.Dir)
}

func (s *StoreEngine) Note() string { return s.About }

func (s *StoreEngine) Close() error {
	err := s.Store.Close()
	if s.CloseFunc != nil {
		err = errors.Join(err, s.CloseFunc())
	}
	return err
}

// openMemory is the reference store: every search scans every event. It is
// only usable for small trails, where it checks the other engines' totals.
func openMemory(_ context.Context, _ EngineConfig) (Engine, error) {
	return &StoreEngine{Store: storetest.NewMemStore(), About: "storetest.MemStore: query.Match over every event, in memory"}, nil
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file merged away while we walked
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return total, nil
}

// resetDir empties dir, creating it if needed.
func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// warmer is implemented by engines that can read their data back into the
// page cache (Options.Warm); Warm returns the bytes it read.
type warmer interface {
	Warm(ctx context.Context) (int64, error)
}

// Warm reads every file under the engine's directory, so that the
// kernel's page cache holds them; an engine without a directory (memory)
// has nothing to read.
func (s *StoreEngine) Warm(ctx context.Context) (int64, error) {
	if s.Dir == "" {
		return 0, nil
	}
	return readTree(ctx, s.Dir)
}

// readTree reads every regular file under dir and returns the bytes read.
func readTree(ctx context.Context, dir string) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed by the engine meanwhile
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		for {
			n, err := f.Read(buf)
			total += int64(n)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
		}
	})
	return total, err
}
