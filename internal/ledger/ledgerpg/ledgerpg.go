// Package ledgerpg is the PostgreSQL ledger.TreeStore, for a fleet of
// instances sharing one database. Its tables come from migration
// 0004_ledger.sql, applied by postgres.Open.
package ledgerpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"

	"github.com/audittrail/audittrail/internal/ledger"
)

// Store keeps the trees in PostgreSQL. Commit takes row locks on the
// position and on each tree it grows, so two appenders can never both
// extend the same state: the second gets ledger.ErrConflict.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

var _ ledger.TreeStore = (*Store)(nil)

// New uses pool (postgres.DB.Pool()); Close does not close it.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

func (s *Store) check() error {
	if s.closed.Load() {
		return ledger.ErrClosed
	}
	return nil
}

func wrap(op string, err error) error { return fmt.Errorf("ledger postgres: %s: %w", op, err) }

func (s *Store) Load(ctx context.Context) (ledger.State, error) {
	if err := s.check(); err != nil {
		return ledger.State{}, err
	}
	var st ledger.State
	pos, err := s.Position(ctx)
	if err != nil {
		return st, err
	}
	st.Position = pos
	rows, err := s.pool.Query(ctx, `SELECT tree, size, root FROM ledger_trees WHERE size > 0 ORDER BY tree`)
	if err != nil {
		return st, wrap("load trees", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var size int64
		var root []byte
		if err := rows.Scan(&name, &size, &root); err != nil {
			return st, wrap("load trees", err)
		}
		t, err := ledger.ParseTreeID(name)
		if err != nil {
			return st, fmt.Errorf("%w: %v", ledger.ErrCorrupt, err)
		}
		st.Trees = append(st.Trees, ledger.TreeState{Tree: t, Size: uint64(size), Root: root})
	}
	if err := rows.Err(); err != nil {
		return st, wrap("load trees", err)
	}
	return st, nil
}

func (s *Store) Position(ctx context.Context) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var pos int64
	if err := s.pool.QueryRow(ctx, `SELECT position FROM ledger_state WHERE id = 1`).Scan(&pos); err != nil {
		return 0, wrap("read position", err)
	}
	return uint64(pos), nil
}

// tree returns the tree's row id and committed size (id 0: no such tree).
func (s *Store) tree(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, t ledger.TreeID, lock bool) (id int64, size uint64, root []byte, err error) {
	sql := `SELECT id, size, root FROM ledger_trees WHERE tree = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	var sz int64
	err = q.QueryRow(ctx, sql, t.String()).Scan(&id, &sz, &root)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil, nil
	}
	if err != nil {
		return 0, 0, nil, wrap("read tree", err)
	}
	return id, uint64(sz), root, nil
}

func (s *Store) Tree(ctx context.Context, t ledger.TreeID) (ledger.TreeState, error) {
	if err := s.check(); err != nil {
		return ledger.TreeState{}, err
	}
	_, size, root, err := s.tree(ctx, s.pool, t, false)
	if err != nil {
		return ledger.TreeState{}, err
	}
	if size == 0 {
		root = nil
	}
	return ledger.TreeState{Tree: t, Size: size, Root: root}, nil
}

func (s *Store) Commit(ctx context.Context, c ledger.Commit) error {
	if err := s.check(); err != nil {
		return err
	}
	if c.Position < c.After {
		return fmt.Errorf("%w: position %d before %d", ledger.ErrConflict, c.Position, c.After)
	}
	for i := range c.Trees {
		if err := c.Trees[i].Validate(); err != nil {
			return err
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap("begin commit", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var pos int64
	if err := tx.QueryRow(ctx, `SELECT position FROM ledger_state WHERE id = 1 FOR UPDATE`).Scan(&pos); err != nil {
		return wrap("lock position", err)
	}
	if uint64(pos) != c.After {
		return fmt.Errorf("%w: commit after position %d, committed is %d", ledger.ErrConflict, c.After, pos)
	}
	var nodeRows, leafRows [][]any
	for _, ta := range c.Trees {
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_trees (tree, company_id, project_id, size, root)
			VALUES ($1, $2, $3, 0, '') ON CONFLICT (tree) DO NOTHING`, ta.Tree.String(), ta.Tree.CompanyID, ta.Tree.ProjectID); err != nil {
			return wrap("create tree", err)
		}
		id, size, _, err := s.tree(ctx, tx, ta.Tree, true)
		if err != nil {
			return err
		}
		if size != ta.OldSize {
			return fmt.Errorf("%w: %s: append at size %d, committed is %d", ledger.ErrConflict, ta.Tree, ta.OldSize, size)
		}
		for _, n := range ta.Nodes {
			nodeRows = append(nodeRows, []any{id, int16(n.ID.Level), int64(n.ID.Index), n.Hash})
		}
		for i, seq := range ta.Seqs {
			leafRows = append(leafRows, []any{id, int64(seq), int64(ta.OldSize) + int64(i)})
		}
		if _, err := tx.Exec(ctx, `UPDATE ledger_trees SET size = $2, root = $3 WHERE id = $1`, id, int64(ta.NewSize), ta.Root); err != nil {
			return wrap("grow tree", err)
		}
	}
	if len(nodeRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ledger_nodes"}, []string{"tree_id", "level", "idx", "hash"}, pgx.CopyFromRows(nodeRows)); err != nil {
			return wrap("copy nodes", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ledger_leaves"}, []string{"tree_id", "seq", "idx"}, pgx.CopyFromRows(leafRows)); err != nil {
			return wrap("copy leaves", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE ledger_state SET position = $1 WHERE id = 1`, int64(c.Position)); err != nil {
		return wrap("move position", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap("commit", err)
	}
	return nil
}

func (s *Store) Nodes(ctx context.Context, t ledger.TreeID, ids []compact.NodeID) ([][]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	id, size, _, err := s.tree(ctx, s.pool, t, false)
	if err != nil {
		return nil, err
	}
	levels := make([]int16, len(ids))
	idxs := make([]int64, len(ids))
	for i, n := range ids {
		if n.Level >= 63 {
			return nil, fmt.Errorf("%w: node level %d", ledger.ErrBadSize, n.Level)
		}
		if _, end := n.Coverage(); end > size || end <= n.Index<<n.Level {
			return nil, fmt.Errorf("%w: node %d/%d is outside %s of size %d", ledger.ErrBadSize, n.Level, n.Index, t, size)
		}
		levels[i], idxs[i] = int16(n.Level), int64(n.Index)
	}
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT n.level, n.idx, n.hash
		FROM unnest($2::smallint[], $3::bigint[]) AS want(level, idx)
		JOIN ledger_nodes n ON n.tree_id = $1 AND n.level = want.level AND n.idx = want.idx`, id, levels, idxs)
	if err != nil {
		return nil, wrap("read nodes", err)
	}
	defer rows.Close()
	got := map[compact.NodeID][]byte{}
	for rows.Next() {
		var level int16
		var idx int64
		var hash []byte
		if err := rows.Scan(&level, &idx, &hash); err != nil {
			return nil, wrap("read nodes", err)
		}
		got[compact.NewNodeID(uint(level), uint64(idx))] = hash
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read nodes", err)
	}
	for i, n := range ids {
		h := got[n]
		if len(h) != 32 {
			return nil, fmt.Errorf("%w: %s: node %d/%d of a committed tree is missing", ledger.ErrCorrupt, t, n.Level, n.Index)
		}
		out[i] = bytes.Clone(h)
	}
	return out, nil
}

func (s *Store) FindSeq(ctx context.Context, t ledger.TreeID, seq uint64) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var idx int64
	err := s.pool.QueryRow(ctx, `SELECT l.idx FROM ledger_leaves l JOIN ledger_trees t ON t.id = l.tree_id
		WHERE t.tree = $1 AND l.seq = $2 AND l.idx < t.size`, t.String(), int64(seq)).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: no leaf with seq %d in %s", ledger.ErrNotFound, seq, t)
	}
	if err != nil {
		return 0, wrap("find leaf", err)
	}
	return uint64(idx), nil
}

// FindSeqs locates a batch's leaves with one query (ledger.SeqBatchFinder).
func (s *Store) FindSeqs(ctx context.Context, t ledger.TreeID, seqs []uint64) ([]uint64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	want := make([]int64, len(seqs))
	for i, seq := range seqs {
		want[i] = int64(seq)
	}
	rows, err := s.pool.Query(ctx, `SELECT l.seq, l.idx FROM ledger_leaves l JOIN ledger_trees t ON t.id = l.tree_id
		WHERE t.tree = $1 AND l.seq = ANY($2::bigint[]) AND l.idx < t.size`, t.String(), want)
	if err != nil {
		return nil, wrap("find leaves", err)
	}
	defer rows.Close()
	got := make(map[uint64]uint64, len(seqs))
	for rows.Next() {
		var seq, idx int64
		if err := rows.Scan(&seq, &idx); err != nil {
			return nil, wrap("find leaves", err)
		}
		got[uint64(seq)] = uint64(idx)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("find leaves", err)
	}
	out := make([]uint64, len(seqs))
	for i, seq := range seqs {
		idx, ok := got[seq]
		if !ok {
			return nil, fmt.Errorf("%w: no leaf with seq %d in %s", ledger.ErrNotFound, seq, t)
		}
		out[i] = idx
	}
	return out, nil
}

var _ ledger.SeqBatchFinder = (*Store)(nil)

func (s *Store) PutCheckpoint(ctx context.Context, t ledger.TreeID, cp ledger.StoredCheckpoint) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(cp.Note) == 0 || cp.Size == 0 {
		return fmt.Errorf("%w: checkpoint of size %d with a %d-byte note", ledger.ErrBadSize, cp.Size, len(cp.Note))
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap("begin checkpoint", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The tree row lock orders checkpoint writers of one tree.
	id, size, _, err := s.tree(ctx, tx, t, true)
	if err != nil {
		return err
	}
	if id == 0 || cp.Size > size {
		return fmt.Errorf("%w: checkpoint of size %d beyond the committed tree %s", ledger.ErrBadSize, cp.Size, t)
	}
	var latest *int64
	if err := tx.QueryRow(ctx, `SELECT max(size) FROM ledger_checkpoints WHERE tree_id = $1`, id).Scan(&latest); err != nil {
		return wrap("read checkpoints", err)
	}
	if latest != nil && uint64(*latest) == cp.Size {
		return nil
	}
	if latest != nil && uint64(*latest) > cp.Size {
		return fmt.Errorf("%w: checkpoint of size %d after one of size %d", ledger.ErrConflict, cp.Size, *latest)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_checkpoints (tree_id, size, note) VALUES ($1, $2, $3)`, id, int64(cp.Size), cp.Note); err != nil {
		return wrap("store checkpoint", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap("store checkpoint", err)
	}
	return nil
}

func (s *Store) queryCheckpoints(ctx context.Context, sql string, args ...any) ([]ledger.StoredCheckpoint, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap("read checkpoints", err)
	}
	defer rows.Close()
	var out []ledger.StoredCheckpoint
	for rows.Next() {
		var size int64
		var n []byte
		if err := rows.Scan(&size, &n); err != nil {
			return nil, wrap("read checkpoints", err)
		}
		out = append(out, ledger.StoredCheckpoint{Size: uint64(size), Note: n})
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read checkpoints", err)
	}
	return out, nil
}

const checkpointsOf = `SELECT c.size, c.note FROM ledger_checkpoints c JOIN ledger_trees t ON t.id = c.tree_id WHERE t.tree = $1`

func (s *Store) Checkpoint(ctx context.Context, t ledger.TreeID, size uint64) (ledger.StoredCheckpoint, error) {
	cps, err := s.queryCheckpoints(ctx, checkpointsOf+` AND c.size = $2`, t.String(), int64(size))
	if err != nil {
		return ledger.StoredCheckpoint{}, err
	}
	if len(cps) == 0 {
		return ledger.StoredCheckpoint{}, fmt.Errorf("%w: no checkpoint of size %d for %s", ledger.ErrNotFound, size, t)
	}
	return cps[0], nil
}

func (s *Store) LatestCheckpoint(ctx context.Context, t ledger.TreeID) (ledger.StoredCheckpoint, error) {
	cps, err := s.queryCheckpoints(ctx, checkpointsOf+` ORDER BY c.size DESC LIMIT 1`, t.String())
	if err != nil {
		return ledger.StoredCheckpoint{}, err
	}
	if len(cps) == 0 {
		return ledger.StoredCheckpoint{}, fmt.Errorf("%w: no checkpoint for %s", ledger.ErrNotFound, t)
	}
	return cps[0], nil
}

func (s *Store) Checkpoints(ctx context.Context, t ledger.TreeID, from uint64, limit int) ([]ledger.StoredCheckpoint, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.queryCheckpoints(ctx, checkpointsOf+` AND c.size >= $2 ORDER BY c.size LIMIT $3`, t.String(), int64(from), limit)
}

// Close makes later calls fail with ErrClosed; the pool stays open.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
