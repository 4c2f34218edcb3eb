package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/stream"
)

// StreamState is the stream.StateStore of a fleet: connector records in
// the stream_connectors table, so that every instance sees every connector
// and whichever one takes over delivery resumes from the durable cursor.
type StreamState struct {
	db *DB
}

var _ stream.StateStore = (*StreamState)(nil)

// StreamState returns the connector records kept in this database.
func (db *DB) StreamState() *StreamState { return &StreamState{db: db} }

const streamColumns = "spec, paused, auto_paused, revision, epoch, cursor_seq, counters"

type rowScanner interface{ Scan(dest ...any) error }

func scanRecord(row rowScanner) (stream.Record, error) {
	var (
		r                       stream.Record
		spec, counters          []byte
		revision, epoch, cursor int64
	)
	if err := row.Scan(&spec, &r.Paused, &r.AutoPaused, &revision, &epoch, &cursor, &counters); err != nil {
		return stream.Record{}, err
	}
	if err := json.Unmarshal(spec, &r.Spec); err != nil {
		return stream.Record{}, fmt.Errorf("decode connector spec: %w", err)
	}
	if err := json.Unmarshal(counters, &r.Counters); err != nil {
		return stream.Record{}, fmt.Errorf("decode connector counters: %w", err)
	}
	r.Revision, r.Epoch, r.Cursor = uint64(revision), uint64(epoch), uint64(cursor)
	return r, nil
}

// recordArgs are the column values of r in streamColumns order.
func recordArgs(r stream.Record) ([]any, error) {
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode connector spec: %w", err)
	}
	counters, err := json.Marshal(r.Counters)
	if err != nil {
		return nil, fmt.Errorf("encode connector counters: %w", err)
	}
	return []any{string(spec), r.Paused, r.AutoPaused, int64(r.Revision), int64(r.Epoch), int64(r.Cursor), string(counters)}, nil
}

func (s *StreamState) Load(ctx context.Context) ([]stream.Record, error) {
	rows, err := s.db.pool.Query(ctx, "SELECT "+streamColumns+" FROM stream_connectors")
	if err != nil {
		return nil, classify(ctx, "load connectors", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stream.Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, classify(ctx, "load connectors", err)
	}
	return recs, nil
}

func (s *StreamState) Get(ctx context.Context, id string) (stream.Record, error) {
	r, err := scanRecord(s.db.pool.QueryRow(ctx, "SELECT "+streamColumns+" FROM stream_connectors WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return stream.Record{}, stream.ErrNotFound
	}
	if err != nil {
		return stream.Record{}, classify(ctx, "get connector", err)
	}
	return r, nil
}

func (s *StreamState) Create(ctx context.Context, r stream.Record) error {
	args, err := recordArgs(r)
	if err != nil {
		return err
	}
	tag, err := s.db.pool.Exec(ctx, `INSERT INTO stream_connectors (id, company_id, project_id, `+streamColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		append([]any{r.Spec.ID, r.Spec.CompanyID, r.Spec.ProjectID}, args...)...)
	if err != nil {
		return classify(ctx, "create connector", err)
	}
	if tag.RowsAffected() == 0 {
		return stream.ErrExists
	}
	return nil
}

// Update reads the row FOR UPDATE and writes it back in one transaction:
// a concurrent Update or SaveProgress of the same connector waits for it.
func (s *StreamState) Update(ctx context.Context, id string, change func(*stream.Record) error) (stream.Record, error) {
	var out stream.Record
	var changeErr error
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		r, err := scanRecord(tx.QueryRow(ctx, "SELECT "+streamColumns+" FROM stream_connectors WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return err
		}
		if changeErr = change(&r); changeErr != nil {
			return changeErr
		}
		r.Spec.ID = id
		args, err := recordArgs(r)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE stream_connectors SET company_id = $2, project_id = $3, spec = $4, paused = $5,
			auto_paused = $6, revision = $7, epoch = $8, cursor_seq = $9, counters = $10 WHERE id = $1`,
			append([]any{id, r.Spec.CompanyID, r.Spec.ProjectID}, args...)...)
		out = r
		return err
	})
	switch {
	case changeErr != nil:
		return stream.Record{}, changeErr
	case errors.Is(err, pgx.ErrNoRows):
		return stream.Record{}, stream.ErrNotFound
	case err != nil:
		return stream.Record{}, classify(ctx, "update connector", err)
	}
	return out, nil
}

// SaveProgress is one UPDATE of the delivery columns, fenced by epoch; a
// second statement tells a superseded epoch from a deleted connector.
func (s *StreamState) SaveProgress(ctx context.Context, id string, p stream.Progress) error {
	counters, err := json.Marshal(p.Counters)
	if err != nil {
		return fmt.Errorf("encode connector counters: %w", err)
	}
	tag, err := s.db.pool.Exec(ctx, "UPDATE stream_connectors SET cursor_seq = $3, counters = $4 WHERE id = $1 AND epoch = $2",
		id, int64(p.Epoch), int64(p.Cursor), string(counters))
	if err != nil {
		return classify(ctx, "save connector progress", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM stream_connectors WHERE id = $1)", id).Scan(&exists); err != nil {
		return classify(ctx, "save connector progress", err)
	}
	if !exists {
		return stream.ErrNotFound
	}
	return stream.ErrStale
}

func (s *StreamState) Delete(ctx context.Context, id string) error {
	if _, err := s.db.pool.Exec(ctx, "DELETE FROM stream_connectors WHERE id = $1", id); err != nil {
		return classify(ctx, "delete connector", err)
	}
	return nil
}
