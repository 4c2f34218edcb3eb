package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitionLockKey is the pg_advisory_xact_lock key that serialises
// partition maintenance across instances.
const partitionLockKey = 0x61756469745f70 // "audit_p"

const dayMs = int64(24 * time.Hour / time.Millisecond)

// partition is one daily partition of events: occurred in [lo, hi).
type partition struct {
	name   string
	lo, hi int64
}

func partitionName(dayStart int64) string {
	return "events_p" + time.UnixMilli(dayStart).UTC().Format("20060102")
}

// partitions lists the daily partitions attached to events, oldest first.
// The default partition is not listed.
func partitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]partition, error) {
	rows, err := q.Query(ctx, `
		SELECT c.relname
		  FROM pg_inherits i
		  JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events\_p%'
		 ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make([]partition, 0, len(names))
	for _, n := range names {
		day, err := time.Parse("20060102", strings.TrimPrefix(n, "events_p"))
		if err != nil {
			continue // not ours: someone attached a partition by hand
		}
		lo := day.UnixMilli()
		out = append(out, partition{name: n, lo: lo, hi: lo + dayMs})
	}
	return out, nil
}

// MaintainPartitions makes sure the daily partitions from PartitionsBehind
// days before today to PartitionsAhead days after exist, and gives a
// partition of its own to every day of the last BackfillDays that has
// events in the default partition (imported or late events), so that
// retention can drop it whole. Run it at least daily (Open runs it, and
// so does a background loop); several instances may run it at once.
func (db *DB) MaintainPartitions(ctx context.Context) error {
	today := db.opts.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
	days := map[int64]bool{}
	for d := -db.opts.PartitionsBehind; d <= db.opts.PartitionsAhead; d++ {
		days[today+int64(d)*dayMs] = true
	}
	if db.opts.BackfillDays > 0 {
		rows, err := db.pool.Query(ctx, `
			SELECT DISTINCT occurred - occurred % $1 FROM events_default
			 WHERE occurred >= $2 AND occurred < $3`,
			dayMs, today-int64(db.opts.BackfillDays)*dayMs, today+int64(db.opts.PartitionsAhead+1)*dayMs)
		if err != nil {
			return classify(ctx, "find backfilled days", err)
		}
		late, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return classify(ctx, "find backfilled days", err)
		}
		for _, d := range late {
			days[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		if err := db.ensurePartition(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// ensurePartition creates the partition of the day starting at lo unless it
// exists. Rows of that day already in the default partition (written while
// it did not exist) are moved into it before it is attached, because
// PostgreSQL refuses to attach a partition whose rows sit in the default.
func (db *DB) ensurePartition(ctx context.Context, lo int64) error {
	name := partitionName(lo)
	hi := lo + dayMs
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Attaching takes an exclusive lock on the default partition; give
		// up rather than stall ingest behind a long query, and retry later.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLockKey)); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		ident := pgx.Identifier{name}.Sanitize()
		stmts := []string{
			fmt.Sprintf("CREATE TABLE %s (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", ident),
			fmt.Sprintf(`WITH moved AS (DELETE FROM events_default WHERE occurred >= %d AND occurred < %d RETURNING *)
				INSERT INTO %s SELECT * FROM moved`, lo, hi, ident),
			fmt.Sprintf("ALTER TABLE events ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)", ident, lo, hi),
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		db.log.Info("postgres partition created", "partition", name)
		return nil
	})
	return classify(ctx, "create partition "+name, err)
}
