// Package postgres keeps audittrail's events, tenancy records and shared
// rate-limit state in PostgreSQL, so that any number of stateless instances
// can serve one fleet. One *DB owns one connection pool; the Store,
// Directory and Limiter it hands out all share it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// ErrBadOptions: Options failed validation.
var ErrBadOptions = errors.New("postgres: invalid options")

// Options configure Open. Only URL is required.
type Options struct {
	// URL is a libpq connection string or postgres:// URL.
	URL string
	// Logger receives migration and maintenance messages; nil discards them.
	Logger *slog.Logger
	// Schema, when set, holds every table and function audittrail creates
	// (created if missing), so that it can share a database with an
	// application that has its own schema_migrations or events tables.
	// Empty: the connection's search_path as configured (usually public).
	Schema string
	// MaxConns caps the pool; 0 keeps pgx's default (max(4, NumCPU)) or the
	// pool_max_conns given in URL.
	MaxConns int32
	// ConnectTimeout bounds one connection attempt; default 5s, so that a
	// request fails fast with ErrUnavailable while the server is down.
	ConnectTimeout time.Duration
	// PartitionsBehind and PartitionsAhead are the daily partitions kept
	// before and after today by Open and MaintainPartitions; defaults 1 and 3.
	PartitionsBehind, PartitionsAhead int
	// BackfillDays: days this recent whose events sit in the default
	// partition get their own partition at maintenance; default 90,
	// negative disables it.
	BackfillDays int
	// MaintenanceInterval is how often the DB runs MaintainPartitions in
	// the background; default 1h, negative disables it (call it yourself).
	MaintenanceInterval time.Duration
	// Now is the clock used to choose partitions; default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.PartitionsBehind <= 0 {
		o.PartitionsBehind = 1
	}
	if o.PartitionsAhead <= 0 {
		o.PartitionsAhead = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BackfillDays == 0 {
		o.BackfillDays = 90
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = time.Hour
	}
}

func (o *Options) validate() error {
	if o.URL == "" {
		return fmt.Errorf("%w: URL is required", ErrBadOptions)
	}
	if o.MaxConns < 0 {
		return fmt.Errorf("%w: MaxConns is negative", ErrBadOptions)
	}
	return nil
}

// DB is an open PostgreSQL backend. Close it once every view it handed out
// is no longer used; closing a view alone does not close the pool.
type DB struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger

	events    *EventStore
	directory *Directory
	limiter   *Limiter

	closeOnce sync.Once
	stopCtx   context.Context
	cancel    context.CancelFunc
	stopped   sync.WaitGroup
}

// Open connects, applies pending migrations under an advisory lock (so that
// instances starting together are safe), and creates today's partitions.
// It fails with an error wrapping store.ErrUnavailable when the server
// cannot be reached.
func Open(ctx context.Context, opts Options) (*DB, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: parse URL: %w", ErrBadOptions, err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Schema != "" {
		// search_path on every connection: the schema is created, under
		// the migration lock, before anything is looked up in it.
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opts.ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	// Dead connections are found by the pool's ping of connections idle
	// over a second, and by the health check in between requests.
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(ctx, "create pool", err)
	}
	db := &DB{pool: pool, opts: opts, log: opts.Logger}
	db.stopCtx, db.cancel = context.WithCancel(context.Background())
	if err := db.migrate(ctx); err != nil {
		db.cancel()
		pool.Close()
		return nil, err
	}
	if err := db.MaintainPartitions(ctx); err != nil {
		db.cancel()
		pool.Close()
		return nil, err
	}
	db.events = &EventStore{db: db}
	db.directory = &Directory{db: db}
	db.limiter = &Limiter{db: db}
	if opts.MaintenanceInterval > 0 {
		db.stopped.Add(1)
		go db.maintainLoop(opts.MaintenanceInterval)
	}
	return db, nil
}

// maintainLoop keeps partitions created ahead while the DB is open, so a
// server that runs for days never writes today's events into the default
// partition.
func (db *DB) maintainLoop(every time.Duration) {
	defer db.stopped.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-db.stopCtx.Done():
			return
		case <-tick.C:
			// Close cancels a run in progress rather than wait for it.
			ctx, cancel := context.WithTimeout(db.stopCtx, every)
			if err := db.MaintainPartitions(ctx); err != nil {
				db.log.Warn("postgres partition maintenance failed; retrying at the next tick", "err", err)
			}
			cancel()
		}
	}
}

// Store returns the event store; the same value on every call.
func (db *DB) Store() store.Store { return db.events }

// Events returns the event store as its concrete type.
func (db *DB) Events() *EventStore { return db.events }

// Directory returns the tenancy directory; the same value on every call.
func (db *DB) Directory() tenancy.Directory { return db.directory }

// Limiter returns a rate limiter shared by every instance on this database.
func (db *DB) Limiter() ratelimit.Limiter { return db.limiter }

// Pool exposes the pool for packages that keep their own state in the same
// database (stream cursors, leases).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool; every view's later calls fail.
func (db *DB) Close() {
	db.closeOnce.Do(func() {
		db.cancel()
		db.stopped.Wait()
		db.pool.Close()
	})
}

// classify wraps err with store.ErrUnavailable when it says the server is
// unreachable, shutting down or out of resources: failures a caller should
// retry later rather than report as a bug. Context errors pass through.
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)) {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func unavailable(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: disk full, out of memory, too many connections
			"57", // operator intervention: shutdown, cannot connect now
			"58": // system error: I/O
			return true
		}
		// Serialization failures and deadlocks succeed when retried.
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	}
	return false
}
