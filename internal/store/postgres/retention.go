package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DeleteBefore removes the company's events with occurred < before.
//
// A daily partition that lies wholly before the cutoff and holds no other
// company's events is dropped whole: no per-row delete, no dead tuples, no
// vacuum. Everything else (a partition shared with other companies, the
// day straddling the cutoff, old events in the default partition) is
// deleted row by row. Partitions of the days kept ahead of time are never
// dropped.
func (s *EventStore) DeleteBefore(ctx context.Context, companyID string, before int64) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	parts, err := partitions(ctx, s.db.pool)
	if err != nil {
		return 0, classify(ctx, "delete before: list partitions", err)
	}
	keep := s.db.opts.Now().UTC().Truncate(24*time.Hour).UnixMilli() - int64(s.db.opts.PartitionsBehind)*dayMs
	var total int64
	for _, p := range parts {
		if p.hi > before || p.hi > keep {
			break
		}
		n, dropped, err := s.dropPartition(ctx, companyID, p)
		if err != nil {
			return total, err
		}
		if dropped {
			s.db.log.Info("postgres partition dropped by retention", "partition", p.name, "company", companyID, "events", n)
			total += n
		}
	}
	var n int64
	err = s.db.pool.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM events WHERE company_id = $1 AND occurred < $2 RETURNING id
		), ids AS (
			DELETE FROM event_ids i USING gone WHERE i.company_id = $1 AND i.id = gone.id
		)
		SELECT count(*) FROM gone`, companyID, before).Scan(&n)
	if err != nil {
		return total, classify(ctx, "delete before", err)
	}
	return total + n, nil
}

// dropPartition drops p when it holds only companyID's events, and reports
// how many there were. A lock it cannot get soon is not an error: the rows
// are then deleted one by one instead.
func (s *EventStore) dropPartition(ctx context.Context, companyID string, p partition) (n int64, dropped bool, err error) {
	ident := pgx.Identifier{p.name}.Sanitize()
	err = pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '2s'"); err != nil {
			return err
		}
		// Freeze the partition (not the table: ingest of other days goes
		// on) while it is checked. The drop then waits briefly for the
		// table; an insert into this old day meanwhile can deadlock with
		// it, and PostgreSQL then aborts one of the two: either the drop
		// (we fall back to row deletes) or that insert (the caller sees
		// ErrUnavailable and retries).
		if _, err := tx.Exec(ctx, "LOCK TABLE "+ident+" IN SHARE MODE"); err != nil {
			return err
		}
		var others bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident+" WHERE company_id <> $1)", companyID).Scan(&others); err != nil {
			return err
		}
		if others {
			return nil
		}
		if err := tx.QueryRow(ctx, `
			WITH gone AS (DELETE FROM event_ids WHERE company_id = $1 AND occurred >= $2 AND occurred < $3 RETURNING 1)
			SELECT count(*) FROM gone`, companyID, p.lo, p.hi).Scan(&n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && (pgErr.Code == "55P03" || pgErr.Code == "40P01") {
		// lock_not_available or deadlock: fall back to row deletes.
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify(ctx, "drop partition "+p.name, err)
	}
	return n, dropped, nil
}
