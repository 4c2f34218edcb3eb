package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

func init() { register("pgtable", openPGTable) }

// pgTableSchema is the table a competent engineer would write for this
// service without building an engine: one row per event, a btree for the
// default view (scope, newest first), btrees for the two most asked-for
// scalar lookups, GIN indexes on the array columns and on the text.
//
// Free text: the application computes the event's tokens with
// event.Tokens and stores them as a tsvector (array_to_tsvector, no
// PostgreSQL parsing or stemming); a query token t becomes the tsquery
// 't':*, a prefix match. So the semantics are exactly query.Match's;
// PostgreSQL's own parser (to_tsvector) would have split e-mail addresses
// and URLs differently, and pg_trgm would match substrings, not prefixes.
const pgTableSchema = `
CREATE TABLE events (
	seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	company_id     text NOT NULL,
	id             text NOT NULL,
	project_id     text NOT NULL, -- '' for company-level events
	level          text NOT NULL,
	user_id        text NOT NULL,
	action         text NOT NULL,
	type           text NOT NULL,
	actor_id       text NOT NULL,
	occurred       bigint NOT NULL,
	device         text NOT NULL,
	method         text NOT NULL,
	geo            text NOT NULL,
	remote_address text NOT NULL,
	login_ids      text[] NOT NULL,
	tenants        text[] NOT NULL,
	changed_fields text[] NOT NULL,
	data           jsonb,
	search         tsvector NOT NULL,
	UNIQUE (company_id, id)
);
CREATE INDEX events_scope_occurred ON events (company_id, project_id, occurred DESC, seq DESC);
CREATE INDEX events_user ON events (user_id);
CREATE INDEX events_remote_address ON events (remote_address);
CREATE INDEX events_login_ids ON events USING gin (login_ids);
CREATE INDEX events_tenants ON events USING gin (tenants);
CREATE INDEX events_changed_fields ON events USING gin (changed_fields);
CREATE INDEX events_search ON events USING gin (search);
`

const pgTableColumns = 18 // len(pgTableCopyColumns)

const pgTableInsertPrefix = `INSERT INTO events (company_id, id, project_id, level, user_id, action, type, actor_id,
	occurred, device, method, geo, remote_address, login_ids, tenants, changed_fields, data, search) VALUES `

const pgTableSelect = `seq, id, project_id, level, user_id, action, type, actor_id, occurred, device, method, geo,
	remote_address, login_ids, tenants, data`

// PGTable is the baseline engine: the pgTableSchema table, batches written
// with COPY (a multi-row INSERT … ON CONFLICT DO NOTHING when the batch
// holds an id already stored), searches as a count and a page sent together.
type PGTable struct {
	pool     *connPool
	db       string
	adminURL string
}

var _ Engine = (*PGTable)(nil)

func openPGTable(ctx context.Context, cfg EngineConfig) (Engine, error) {
	dbName := cfg.Database + "_pgtable"
	if cfg.Reuse {
		dbURL, err := databaseURL(cfg.PostgresURL, dbName)
		if err != nil {
			return nil, err
		}
		return &PGTable{pool: newConnPool(dbURL, 32), db: dbName, adminURL: cfg.PostgresURL}, nil
	}
	dbURL, err := recreateDatabase(ctx, cfg.PostgresURL, dbName)
	if err != nil {
		return nil, err
	}
	t := &PGTable{pool: newConnPool(dbURL, 32), db: dbName, adminURL: cfg.PostgresURL}
	conn, err := t.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	defer t.pool.put(conn)
	if _, err := conn.Exec(ctx, pgTableSchema); err != nil {
		t.pool.close()
		return nil, fmt.Errorf("pgtable: create schema: %w", err)
	}
	return t, nil
}

func (t *PGTable) Note() string {
	return "one table in database " + t.db + ": btree (company, project, occurred desc, seq desc), btree user_id, " +
		"btree remote_address, GIN login_ids/tenants/changed_fields, GIN tsvector of event.Tokens (prefix match), " +
		"batches by binary COPY (INSERT … ON CONFLICT DO NOTHING when a batch repeats an id), " +
		"plan_cache_mode=force_custom_plan"
}

var pgTableCopyColumns = []string{"company_id", "id", "project_id", "level", "user_id", "action", "type", "actor_id",
	"occurred", "device", "method", "geo", "remote_address", "login_ids", "tenants", "changed_fields", "data", "search"}

// Append writes the batch in one transaction, so it is all or nothing. It
// is what an engineer loading in bulk writes: binary COPY, which refuses
// the whole batch if any id is already stored (a retried batch); only then
// is the batch sent again as one INSERT … ON CONFLICT DO NOTHING, which
// stores the new events and skips the rest.
func (t *PGTable) Append(ctx context.Context, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([][]any, len(events))
	for i := range events {
		e := &events[i]
		var data any
		if len(e.Data) > 0 {
			data = json.RawMessage(e.Data)
		}
		rows[i] = []any{e.CompanyID, e.ID, e.ProjectID, string(e.Level), e.UserID, e.Action, e.Type, e.ActorID,
			e.Occurred, e.Device, e.Method, e.Geo, e.RemoteAddress, nonNil(e.LoginIDs), nonNil(e.Tenants),
			nonNil(e.ChangedFields()), data, tokensTSVector(e.Tokens())}
	}
	conn, err := t.pool.get(ctx)
	if err != nil {
		return err
	}
	defer t.pool.put(conn)
	// COPY runs in its own implicit transaction: a unique violation rolls
	// back every row of it.
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"events"}, pgTableCopyColumns, pgx.CopyFromRows(rows))
	if err == nil {
		return nil
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != pgUniqueViolation {
		return fmt.Errorf("pgtable: copy %d events: %w", len(events), err)
	}
	if err := t.insertIgnoringStored(ctx, conn, rows); err != nil {
		return fmt.Errorf("pgtable: insert %d events: %w", len(events), err)
	}
	return nil
}

// pgUniqueViolation is SQLSTATE unique_violation.
const pgUniqueViolation = "23505"

// insertIgnoringStored writes rows (in pgTableCopyColumns order) as one
// multi-row INSERT that skips ids already stored, or repeated in the batch.
func (t *PGTable) insertIgnoringStored(ctx context.Context, conn *pgx.Conn, rows [][]any) error {
	var sql strings.Builder
	sql.WriteString(pgTableInsertPrefix)
	args := make([]any, 0, len(rows)*pgTableColumns)
	for i, row := range rows {
		if i > 0 {
			sql.WriteByte(',')
		}
		sql.WriteByte('(')
		for c := range row {
			if c > 0 {
				sql.WriteByte(',')
			}
			args = append(args, row[c])
			sql.WriteString("$" + strconv.Itoa(len(args)))
		}
		sql.WriteByte(')')
	}
	sql.WriteString(" ON CONFLICT (company_id, id) DO NOTHING")
	_, err := conn.Exec(ctx, sql.String(), args...)
	return err
}

// tokensTSVector is array_to_tsvector(tokens) built in Go and sent in
// binary: event.Tokens are distinct, and every lexeme is taken as it is
// (no parser, no stemming), which is what makes prefixTSQuery's matching
// exactly query.Match's.
func tokensTSVector(tokens []string) pgtype.TSVector {
	tv := pgtype.TSVector{Lexemes: make([]pgtype.TSVectorLexeme, len(tokens)), Valid: true}
	for i, t := range tokens {
		tv.Lexemes[i] = pgtype.TSVectorLexeme{Word: t}
	}
	return tv
}

// Search sends the count and the page in one round trip. When both levels
// are searched the page is a UNION ALL of two index-ordered scans, so
// PostgreSQL merges them instead of sorting the whole project.
func (t *PGTable) Search(ctx context.Context, q query.Query) (store.Result, error) {
	var scopes []string
	if q.IncludeProject && q.ProjectID != "" {
		scopes = append(scopes, q.ProjectID)
	}
	if q.IncludeCompany {
		scopes = append(scopes, "")
	}
	if len(scopes) == 0 {
		return store.Result{}, nil
	}
	// Both statements share the filter's parameters ($1 is the company);
	// each then numbers its own after them.
	filter, filterArgs := pgTableFilter(&q, []any{q.CompanyID})
	countArgs, pageArgs := slices.Clone(filterArgs), slices.Clone(filterArgs)
	countArg := func(v any) string {
		countArgs = append(countArgs, v)
		return "$" + strconv.Itoa(len(countArgs))
	}
	pageArg := func(v any) string {
		pageArgs = append(pageArgs, v)
		return "$" + strconv.Itoa(len(pageArgs))
	}

	count := "SELECT count(*) FROM events WHERE company_id = $1 AND project_id = ANY(" + countArg(scopes) + "::text[])" + filter
	order := " ORDER BY occurred DESC, seq DESC"
	if q.OldestFirst {
		order = " ORDER BY occurred ASC, seq ASC"
	}
	size := q.Size
	if size <= 0 {
		size = query.DefaultSize
	}
	var page string
	if len(scopes) == 1 {
		page = "SELECT " + pgTableSelect + " FROM events WHERE company_id = $1 AND project_id = " + pageArg(scopes[0]) +
			filter + order + " LIMIT " + pageArg(size) + " OFFSET " + pageArg(q.Offset())
	} else {
		reach := pageArg(q.Offset() + size)
		part := func(scope string) string {
			return "(SELECT " + pgTableSelect + " FROM events WHERE company_id = $1 AND project_id = " + pageArg(scope) +
				filter + order + " LIMIT " + reach + ")"
		}
		page = "SELECT * FROM (" + part(scopes[0]) + " UNION ALL " + part(scopes[1]) + ") u" + order +
			" LIMIT " + pageArg(size) + " OFFSET " + pageArg(q.Offset())
	}

	conn, err := t.pool.get(ctx)
	if err != nil {
		return store.Result{}, err
	}
	defer t.pool.put(conn)
	batch := &pgx.Batch{}
	batch.Queue(count, countArgs...)
	batch.Queue(page, pageArgs...)
	br := conn.SendBatch(ctx, batch)
	defer br.Close()
	var res store.Result
	if err := br.QueryRow().Scan(&res.Total); err != nil {
		return store.Result{}, fmt.Errorf("pgtable: count: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return store.Result{}, fmt.Errorf("pgtable: page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e event.Event
		var level string
		var data []byte
		if err := rows.Scan(&e.Seq, &e.ID, &e.ProjectID, &level, &e.UserID, &e.Action, &e.Type, &e.ActorID,
			&e.Occurred, &e.Device, &e.Method, &e.Geo, &e.RemoteAddress, &e.LoginIDs, &e.Tenants, &data); err != nil {
			return store.Result{}, fmt.Errorf("pgtable: scan: %w", err)
		}
		e.CompanyID, e.Level, e.Data = q.CompanyID, event.Level(level), data
		res.Events = append(res.Events, e)
	}
	if err := rows.Err(); err != nil {
		return store.Result{}, fmt.Errorf("pgtable: page: %w", err)
	}
	return res, nil
}

// pgTableFilter renders q's filters as " AND …" conditions; args already
// holds the company as $1.
func pgTableFilter(q *query.Query, args []any) (string, []any) {
	var b strings.Builder
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.From > 0 {
		b.WriteString(" AND occurred >= " + arg(q.From))
	}
	if q.To > 0 {
		b.WriteString(" AND occurred <= " + arg(q.To))
	}
	for _, f := range []struct {
		col  string
		vals []string
	}{{"user_id", q.UserIDs}, {"action", q.Actions}, {"actor_id", q.ActorIDs}, {"device", q.Devices},
		{"method", q.Methods}, {"geo", q.Geos}, {"remote_address", q.RemoteAddresses}} {
		if len(f.vals) > 0 {
			b.WriteString(" AND " + f.col + " = ANY(" + arg(f.vals) + "::text[])")
		}
	}
	if len(q.ExcludedActions) > 0 {
		b.WriteString(" AND action <> ALL(" + arg(q.ExcludedActions) + "::text[])")
	}
	if len(q.LoginIDs) > 0 {
		b.WriteString(" AND login_ids && " + arg(q.LoginIDs) + "::text[]")
	}
	switch {
	case len(q.Tenants) > 0 && q.NoTenants:
		b.WriteString(" AND (tenants && " + arg(q.Tenants) + "::text[] OR tenants = '{}')")
	case len(q.Tenants) > 0:
		b.WriteString(" AND tenants && " + arg(q.Tenants) + "::text[]")
	case q.NoTenants:
		b.WriteString(" AND tenants = '{}'")
	}
	if len(q.ChangedFields) > 0 {
		b.WriteString(" AND changed_fields && " + arg(q.ChangedFields) + "::text[]")
	}
	if len(q.TextTokens) > 0 {
		b.WriteString(" AND search @@ " + arg(prefixTSQuery(q.TextTokens)) + "::tsquery")
	}
	return b.String(), args
}

// prefixTSQuery turns tokens into a tsquery in which every token must be
// the prefix of a lexeme. Tokens hold only letters and digits, so quoting
// them needs no escaping; the doubling below only keeps that true if the
// tokeniser ever changes.
func prefixTSQuery(tokens []string) string {
	parts := make([]string, len(tokens))
	for i, t := range tokens {
		t = strings.ReplaceAll(strings.ReplaceAll(t, `\`, `\\`), `'`, `''`)
		parts[i] = "'" + t + "':*"
	}
	return strings.Join(parts, " & ")
}

func (t *PGTable) DiskBytes(ctx context.Context) (int64, error) {
	conn, err := t.pool.get(ctx)
	if err != nil {
		return 0, err
	}
	defer t.pool.put(conn)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT pg_total_relation_size('events')").Scan(&n); err != nil {
		return 0, fmt.Errorf("pgtable: size: %w", err)
	}
	return n, nil
}

// Vacuum runs VACUUM ANALYZE, as autovacuum would do soon after a load, so
// that the planner has statistics and count(*) can use index-only scans.
func (t *PGTable) Vacuum(ctx context.Context) error {
	conn, err := t.pool.get(ctx)
	if err != nil {
		return err
	}
	defer t.pool.put(conn)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE events"); err != nil {
		return fmt.Errorf("pgtable: vacuum: %w", err)
	}
	return nil
}

// ServerCommand names the server process, whose memory the run samples.
func (t *PGTable) ServerCommand() string { return "postgres" }

// Drop removes the database after Close.
func (t *PGTable) Drop(ctx context.Context) error { return dropDatabase(ctx, t.adminURL, t.db) }

func (t *PGTable) Close() error {
	t.pool.close()
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// recreateDatabase drops and creates dbName on the server adminURL points
// at, and returns a URL for the new database.
func recreateDatabase(ctx context.Context, adminURL, dbName string) (string, error) {
	dbURL, err := databaseURL(adminURL, dbName)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to the PostgreSQL server: %w", err)
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{dbName}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop database %s: %w", dbName, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create database %s: %w", dbName, err)
	}
	return dbURL, nil
}

// databaseURL is adminURL with its database replaced by dbName.
func databaseURL(adminURL, dbName string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("postgres url: %w", err)
	}
	u.Path = "/" + dbName
	return u.String(), nil
}

// StoredTrail counts the table's rows and finds the newest, so that a
// reused database of another trail is refused.
func (t *PGTable) StoredTrail(ctx context.Context) (storedTrail, error) {
	conn, err := t.pool.get(ctx)
	if err != nil {
		return storedTrail{}, err
	}
	defer t.pool.put(conn)
	var st storedTrail
	err = conn.QueryRow(ctx, storedTrailSQL).Scan(&st.Events, &st.MaxOccurred)
	return st, err
}

// storedTrailSQL reads a storedTrail from an events table with an
// occurred column (both PostgreSQL engines have one).
const storedTrailSQL = "SELECT count(*), coalesce(max(occurred), 0) FROM events"

// dropDatabase removes a database recreateDatabase made.
func dropDatabase(ctx context.Context, adminURL, dbName string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
	return err
}

// connPool hands out up to max connections. It is a dozen lines rather
// than pgxpool because pgxpool would add a module for the benchmark alone.
type connPool struct {
	url    string
	idle   chan *pgx.Conn
	slots  chan struct{}
	mu     sync.Mutex
	all    []*pgx.Conn
	closed bool
}

var errPoolClosed = errors.New("bench: connection pool closed")

func newConnPool(url string, max int) *connPool {
	return &connPool{url: url, idle: make(chan *pgx.Conn, max), slots: make(chan struct{}, max)}
}

func (p *connPool) get(ctx context.Context) (*pgx.Conn, error) {
	select {
	case c := <-p.idle:
		return c, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, nil
	case p.slots <- struct{}{}:
		cfg, err := pgx.ParseConfig(p.url)
		if err != nil {
			<-p.slots
			return nil, fmt.Errorf("postgres url: %w", err)
		}
		// Search selectivity varies by orders of magnitude between values
		// of the same statement; a generic plan (used after five runs of a
		// prepared statement) scans the ordered index for a rare word and
		// takes seconds. A competent engineer turns generic plans off.
		cfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			<-p.slots
			return nil, fmt.Errorf("connect: %w", err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			c.Close(ctx)
			return nil, errPoolClosed
		}
		p.all = append(p.all, c)
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *connPool) put(c *pgx.Conn) { p.idle <- c }

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.all {
		c.Close(context.Background())
	}
	p.all, p.closed = nil, true
}

// Warm reads the table and its indexes back into the page cache.
func (t *PGTable) Warm(ctx context.Context) (int64, error) {
	conn, err := t.pool.get(ctx)
	if err != nil {
		return 0, err
	}
	defer t.pool.put(conn)
	return prewarmDatabase(ctx, conn)
}

// prewarmDatabase reads every table, index and TOAST relation of the
// connection's database into the kernel's page cache with pg_prewarm's
// 'read' mode (not into shared_buffers: the embedded engine's Warm fills
// the page cache only, too) and returns the bytes read. The extension
// ships with PostgreSQL; creating it needs a superuser, as the bench's
// default server URL is.
func prewarmDatabase(ctx context.Context, conn *pgx.Conn) (int64, error) {
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_prewarm"); err != nil {
		return 0, fmt.Errorf("create extension pg_prewarm: %w", err)
	}
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce(sum(pg_prewarm(c.oid, 'read')), 0)::bigint * current_setting('block_size')::bigint
		FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'i', 't', 'm') AND ns.nspname NOT IN ('pg_catalog', 'information_schema')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pg_prewarm: %w", err)
	}
	return n, nil
}
