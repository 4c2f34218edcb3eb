package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/audittrail/audittrail/internal/store"
)

// CheckReport is the outcome of EventStore.Check.
type CheckReport struct {
	Events   int // rows of events
	IDs      int // rows of event_ids
	Problems []string
}

// maxCheckProblems bounds the report when everything is broken.
const maxCheckProblems = 100

// Check verifies what the database holds: each (company, id) stored once;
// events and event_ids in one-to-one agreement (same project, occurred and
// seq); seq unique and never above what event_seq handed out; and every
// row's derived search columns (attrs, tokens, long_tokens) equal to what
// Append computes from the row, so a search can neither miss nor invent a
// row. It reads every row: meant for tests and offline checks. The error
// wraps store.ErrCorrupt when Problems is not empty.
func (s *EventStore) Check(ctx context.Context) (CheckReport, error) {
	var rep CheckReport
	if err := s.check(ctx); err != nil {
		return rep, err
	}
	// One snapshot for every query, so that a check of a database in use
	// compares rows of one moment. The checks join whole tables: hash or
	// merge joins, never a nested loop picked on stale statistics.
	tx, err := s.db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return rep, fmt.Errorf("check: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL enable_nestloop = off"); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	pool := tx
	problem := func(format string, args ...any) {
		if len(rep.Problems) < maxCheckProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_ids)`).Scan(&rep.Events, &rep.IDs); err != nil {
		return rep, fmt.Errorf("check: count: %w", err)
	}
	// Each query lists offending keys; none should return a row.
	for _, c := range []struct{ what, sql string }{
		{"stored twice", `SELECT company_id || '/' || id FROM events GROUP BY company_id, id HAVING count(*) > 1 LIMIT 10`},
		{"seq used twice", `SELECT seq::text FROM events GROUP BY seq HAVING count(*) > 1 LIMIT 10`},
		{"no or a different event_ids row", `SELECT e.company_id || '/' || e.id FROM events e
			LEFT JOIN event_ids i ON i.company_id = e.company_id AND i.id = e.id
			WHERE i.id IS NULL OR i.seq <> e.seq OR i.occurred <> e.occurred OR i.project_id <> e.project_id LIMIT 10`},
		{"event_ids row without an event", `SELECT i.company_id || '/' || i.id FROM event_ids i
			WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.company_id = i.company_id AND e.id = i.id) LIMIT 10`},
		{"seq above what event_seq handed out", `SELECT e.seq::text FROM events e, event_seq s
			WHERE e.seq > CASE WHEN s.is_called THEN s.last_value ELSE 0 END LIMIT 10`},
	} {
		rows, err := pool.Query(ctx, c.sql)
		if err != nil {
			return rep, fmt.Errorf("check: %s: %w", c.what, err)
		}
		for rows.Next() {
			var key string
			if err := rows.Scan(&key); err != nil {
				rows.Close()
				return rep, fmt.Errorf("check: %s: %w", c.what, err)
			}
			problem("%s: %s", c.what, key)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, fmt.Errorf("check: %s: %w", c.what, err)
		}
	}
	// Derived columns, row by row.
	rows, err := pool.Query(ctx, `SELECT `+eventColumnsSQL+`, e.attrs, e.tokens, e.long_tokens FROM events e`)
	if err != nil {
		return rep, fmt.Errorf("check: read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			attrs  []string
			tokens pgtype.TSVector
			long   []string
		)
		ev, err := scanEvent(rows, &attrs, &tokens, &long)
		if err != nil {
			return rep, fmt.Errorf("check: read events: %w", err)
		}
		want := derive(&ev)
		key := ev.CompanyID + "/" + ev.ID
		if !slices.Equal(sortedCopy(attrs), sortedCopy(want.attrs)) {
			problem("%s: attrs %v, the row says %v", key, attrs, want.attrs)
		}
		if !slices.Equal(lexemeWords(tokens), lexemeWords(want.tokens)) {
			problem("%s: tokens do not match the row", key)
		}
		if !slices.Equal(sortedCopy(long), sortedCopy(want.longTokens)) {
			problem("%s: long_tokens do not match the row", key)
		}
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("check: read events: %w", err)
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %d problems, first: %s", store.ErrCorrupt, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// lexemeWords is the set of words of a tsvector, sorted (PostgreSQL
// returns them sorted and deduplicated; Append builds them in token order).
func lexemeWords(tv pgtype.TSVector) []string {
	out := make([]string, len(tv.Lexemes))
	for i, l := range tv.Lexemes {
		out[i] = l.Word
	}
	return sortedCopy(out)
}
