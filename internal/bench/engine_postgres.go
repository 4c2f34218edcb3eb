package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/store/postgres"
)

func init() { register("postgres", openPostgres) }

// benchPartitionsBehind makes the backend create a daily partition for
// every day of the trail up front, as a server running for a month would
// have.
const benchPartitionsBehind = 32

// openPostgres runs our PostgreSQL backend on a database of its own.
func openPostgres(ctx context.Context, cfg EngineConfig) (Engine, error) {
	dbName := cfg.Database + "_postgres"
	recreate := recreateDatabase
	if cfg.Reuse {
		recreate = func(_ context.Context, adminURL, dbName string) (string, error) { return databaseURL(adminURL, dbName) }
	}
	dbURL, err := recreate(ctx, cfg.PostgresURL, dbName)
	if err != nil {
		return nil, err
	}
	db, err := postgres.Open(ctx, postgres.Options{URL: dbURL, Logger: cfg.Logger, MaxConns: 32,
		PartitionsBehind: benchPartitionsBehind})
	if err != nil {
		return nil, err
	}
	pe := &postgresEngine{url: dbURL, adminURL: cfg.PostgresURL, db: dbName}
	pe.StoreEngine = StoreEngine{
		Store:     db.Store(),
		DiskFunc:  pe.diskBytes,
		About:     "internal/store/postgres on database " + dbName + " (daily partitions, " + fmt.Sprint(benchPartitionsBehind) + " days back)",
		CloseFunc: func() error { db.Close(); return nil },
	}
	return pe, nil
}

type postgresEngine struct {
	StoreEngine
	url, adminURL, db string
}

// Drop removes the database after Close.
func (p *postgresEngine) Drop(ctx context.Context) error { return dropDatabase(ctx, p.adminURL, p.db) }

// diskBytes sums every table of the database with its indexes and TOAST:
// the backend's partitions and its directory tables.
func (p *postgresEngine) diskBytes(ctx context.Context) (int64, error) {
	var n int64
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
			FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'm') AND ns.nspname NOT IN ('pg_catalog', 'information_schema')`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: size: %w", err)
	}
	return n, nil
}

// Vacuum runs VACUUM ANALYZE on the database, as autovacuum would soon
// after a load; the pgtable baseline gets the same.
func (p *postgresEngine) Vacuum(ctx context.Context) error {
	return p.withConn(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "VACUUM ANALYZE")
		return err
	})
}

// Warm reads every partition and index back into the page cache.
func (p *postgresEngine) Warm(ctx context.Context) (int64, error) {
	var n int64
	err := p.withConn(ctx, func(c *pgx.Conn) (err error) {
		n, err = prewarmDatabase(ctx, c)
		return err
	})
	return n, err
}

// ServerCommand names the server process, whose memory the run samples.
func (p *postgresEngine) ServerCommand() string { return "postgres" }

// StoredTrail counts the events of every partition and finds the newest,
// so that a reused database of another trail is refused.
func (p *postgresEngine) StoredTrail(ctx context.Context) (storedTrail, error) {
	var st storedTrail
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, storedTrailSQL).Scan(&st.Events, &st.MaxOccurred)
	})
	return st, err
}

func (p *postgresEngine) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, p.url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return fn(c)
}
