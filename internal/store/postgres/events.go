package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// maxLexemeBytes keeps every lexeme under PostgreSQL's 2047-byte limit;
// longer tokens are cut to this length in the tsvector and kept whole in
// long_tokens.
const maxLexemeBytes = 2000

// readHorizonLockBase offsets the advisory lock keys of in-flight Appends
// (see audittrail_read_horizon in the migrations) above those another
// application sharing the database would plausibly use.
const readHorizonLockBase = int64(1) << 62

// EventStore is the store.Store over PostgreSQL.
type EventStore struct {
	db     *DB
	closed atomic.Bool
	// beforeCommit, when set by a test, runs inside Append's transaction
	// after the rows are written: it makes commits land out of seq order.
	beforeCommit func()
	// ignoreHorizon, set by a test only, reads every committed seq as a
	// naive "seq > after" reader would: the planted bug that shows
	// TestReadFromNeverSkips can fail.
	ignoreHorizon bool
}

var _ store.Store = (*EventStore)(nil)

func (s *EventStore) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// Close marks the store closed; the pool stays open until DB.Close.
func (s *EventStore) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	return nil
}

// Append writes the batch in one transaction. Before drawing its seqs from
// event_seq it takes a shared advisory lock keyed by the sequence's current
// value, held to commit: ReadFrom exposes no seq above the smallest key
// held, so a batch that commits late is never skipped (see ReadFrom).
func (s *EventStore) Append(ctx context.Context, events []event.Event) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	type key struct{ company, id string }
	first := make(map[key]struct{}, len(events))
	candidates := make([]int, 0, len(events))
	for i := range events {
		events[i].Seq = 0
		k := key{events[i].CompanyID, events[i].ID}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = struct{}{}
		candidates = append(candidates, i)
	}
	if len(candidates) == 0 {
		return nil
	}
	// Tokenising is the costly part of a batch: do it before the
	// transaction, so that its locks are held for the inserts alone.
	derived := deriveAll(events, candidates)

	var seqs []int64
	stored := make([]int, 0, len(candidates))
	err := pgx.BeginFunc(ctx, s.db.pool, func(tx pgx.Tx) error {
		// The three statements go in one round trip; the server still runs
		// them one after the other, each finished before the next starts.
		b := &pgx.Batch{}
		// A client that stalls mid-batch must not hold back readers for long.
		b.Queue("SET LOCAL idle_in_transaction_session_timeout = '60s'")
		// The argument is evaluated before the lock is taken: the key is at
		// most every seq this transaction draws below.
		b.Queue(`SELECT pg_advisory_xact_lock_shared($1::bigint +
			(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_seq))`, readHorizonLockBase)
		b.Queue("SELECT nextval('event_seq') FROM generate_series(1, $1)", len(candidates))
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		rows, err := br.Query()
		if err != nil {
			br.Close()
			return err
		}
		drawn, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return err
		}
		slices.Sort(drawn)
		seqOf := make(map[int64]int, len(candidates)) // seq → index in events
		n := len(candidates)
		for j, i := range candidates {
			seqOf[drawn[j]] = i
		}
		// Ids go in in key order, so two batches sharing ids wait for each
		// other in the same order and cannot deadlock.
		byKey := slices.Clone(candidates)
		slices.SortFunc(byKey, func(a, b int) int {
			return cmp.Or(strings.Compare(events[a].CompanyID, events[b].CompanyID), strings.Compare(events[a].ID, events[b].ID))
		})
		seqOfIndex := make(map[int]int64, n)
		for j, i := range candidates {
			seqOfIndex[i] = drawn[j]
		}
		companies, ids, projects := make([]string, n), make([]string, n), make([]string, n)
		occurred, seqCol := make([]int64, n), make([]int64, n)
		for j, i := range byKey {
			e := &events[i]
			companies[j], ids[j], projects[j] = e.CompanyID, e.ID, e.ProjectID
			occurred[j], seqCol[j] = e.Occurred, seqOfIndex[i]
		}
		// The unique key decides which events are new; a concurrent batch
		// with the same id waits here for the other to commit or abort.
		rows, err = tx.Query(ctx, `
			INSERT INTO event_ids (company_id, id, project_id, occurred, seq)
			SELECT c, i, p, o, s
			  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS x(c, i, p, o, s, n)
			 ORDER BY n
			ON CONFLICT (company_id, id) DO NOTHING
			RETURNING seq`, companies, ids, projects, occurred, seqCol)
		if err != nil {
			return err
		}
		newSeqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if len(newSeqs) == 0 {
			return nil
		}
		// RETURNING gives no order guarantee.
		slices.Sort(newSeqs)
		rowsIn := make([][]any, 0, len(newSeqs))
		for _, sq := range newSeqs {
			i := seqOf[sq]
			stored = append(stored, i)
			seqs = append(seqs, sq)
			rowsIn = append(rowsIn, copyRow(&events[i], sq, &derived[i]))
		}
		// COPY, in binary: the fastest way in, and no value is parsed
		// from text on the server.
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, copyColumns, pgx.CopyFromRows(rowsIn)); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		return nil
	})
	if err != nil {
		return classify(ctx, "append", err)
	}
	for j, i := range stored {
		events[i].Seq = uint64(seqs[j])
	}
	return nil
}

var copyColumns = []string{"project_id", "company_id", "occurred", "seq", "id", "level", "user_id", "action",
	"type", "actor_id", "device", "method", "geo", "remote_address", "login_ids", "tenants", "data",
	"attrs", "tokens", "long_tokens"}

// derivedColumns are the columns computed from an event rather than
// copied from it.
type derivedColumns struct {
	attrs      []string
	tokens     pgtype.TSVector
	longTokens []string // nil: NULL
}

// deriveAll derives the columns of events[i] for every i in candidates
// (the others stay zero). Batches are split across the processors: the
// tokenising is CPU bound, and the caller waits for all of it.
func deriveAll(events []event.Event, candidates []int) []derivedColumns {
	derived := make([]derivedColumns, len(events))
	workers := min(runtime.GOMAXPROCS(0), len(candidates)/deriveChunk)
	if workers <= 1 {
		for _, i := range candidates {
			derived[i] = derive(&events[i])
		}
		return derived
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				hi := int(next.Add(deriveChunk))
				lo := hi - deriveChunk
				if lo >= len(candidates) {
					return
				}
				for _, i := range candidates[lo:min(hi, len(candidates))] {
					derived[i] = derive(&events[i])
				}
			}
		})
	}
	wg.Wait()
	return derived
}

// deriveChunk is how many events a deriving goroutine takes at a time:
// enough that handing them out costs nothing next to tokenising them.
const deriveChunk = 64

func derive(e *event.Event) derivedColumns {
	lexemes, long := tokenColumns(e.Tokens())
	return derivedColumns{attrs: eventAttrs(e), tokens: lexemes, longTokens: long}
}

func copyRow(e *event.Event, seq int64, d *derivedColumns) []any {
	var data any
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	var long any
	if d.longTokens != nil {
		long = d.longTokens
	}
	return []any{e.ProjectID, e.CompanyID, e.Occurred, seq, e.ID, string(e.Level), e.UserID, e.Action,
		e.Type, e.ActorID, e.Device, e.Method, e.Geo, e.RemoteAddress, nonNil(e.LoginIDs), nonNil(e.Tenants), data,
		d.attrs, d.tokens, long}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Prefixes of the attrs column: one per filterable field, so that a value
// of one field never matches a filter on another.
const (
	attrUser     = "u:"
	attrActor    = "a:"
	attrAction   = "act:"
	attrDevice   = "dev:"
	attrMethod   = "m:"
	attrGeo      = "g:"
	attrAddr     = "ip:"
	attrLogin    = "l:"
	attrTenant   = "t:"
	attrNoTenant = "nt:" // present only on events without any tenant
	attrChanged  = "c:"
	attrType     = "ty:" // backfilled for older rows by migration 0002
)

func eventAttrs(e *event.Event) []string {
	out := []string{
		attrUser + e.UserID, attrActor + e.ActorID, attrAction + e.Action, attrDevice + e.Device,
		attrMethod + e.Method, attrGeo + e.Geo, attrAddr + e.RemoteAddress, attrType + e.Type,
	}
	for _, l := range e.LoginIDs {
		out = append(out, attrLogin+l)
	}
	for _, t := range e.Tenants {
		out = append(out, attrTenant+t)
	}
	if len(e.Tenants) == 0 {
		out = append(out, attrNoTenant)
	}
	for _, f := range e.ChangedFields() {
		out = append(out, attrChanged+f)
	}
	return out
}

func prefixed(prefix string, vals []string) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = prefix + v
	}
	return out
}

// tokenColumns returns the tokens as tsvector lexemes, each cut to
// maxLexemeBytes, and the tokens that had to be cut. Cutting may make two
// lexemes equal; tsvector input requires them distinct.
func tokenColumns(tokens []string) (pgtype.TSVector, []string) {
	tv := pgtype.TSVector{Lexemes: make([]pgtype.TSVectorLexeme, 0, len(tokens)), Valid: true}
	var long []string
	var cut map[string]bool
	for _, t := range tokens {
		if len(t) > maxLexemeBytes {
			long = append(long, t)
			t = cutUTF8(t, maxLexemeBytes)
			if cut == nil {
				cut = map[string]bool{}
			}
			if cut[t] {
				continue
			}
			cut[t] = true
		}
		tv.Lexemes = append(tv.Lexemes, pgtype.TSVectorLexeme{Word: t})
	}
	if cut != nil {
		// A cut lexeme may also equal a whole short token.
		tv.Lexemes = slices.CompactFunc(sortedLexemes(tv.Lexemes), func(a, b pgtype.TSVectorLexeme) bool { return a.Word == b.Word })
	}
	return tv, long
}

func sortedLexemes(l []pgtype.TSVectorLexeme) []pgtype.TSVectorLexeme {
	slices.SortFunc(l, func(a, b pgtype.TSVectorLexeme) int { return strings.Compare(a.Word, b.Word) })
	return l
}

// cutUTF8 returns the longest prefix of s of at most n bytes that ends on a
// rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// tsqueryLiteral writes one prefix term for tsquery input, which (unlike
// to_tsquery) takes lexemes as they are: no lower-casing, no stemming, no
// re-parsing of non-ASCII letters, so matching is byte-exact.
func tsqueryLiteral(tok string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range tok {
		switch r {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("':*")
	return b.String()
}

const eventColumnsSQL = `e.project_id, e.company_id, e.occurred, e.seq, e.id, e.level, e.user_id, e.action,
	e.type, e.actor_id, e.device, e.method, e.geo, e.remote_address, e.login_ids, e.tenants, e.data::text`

func scanEvent(row pgx.Row, extra ...any) (event.Event, error) {
	var e event.Event
	var level string
	var seq int64
	var data *string
	dest := append([]any{&e.ProjectID, &e.CompanyID, &e.Occurred, &seq, &e.ID, &level, &e.UserID, &e.Action,
		&e.Type, &e.ActorID, &e.Device, &e.Method, &e.Geo, &e.RemoteAddress, &e.LoginIDs, &e.Tenants, &data}, extra...)
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	e.Level = event.Level(level)
	e.Seq = uint64(seq)
	if data != nil {
		e.Data = json.RawMessage(*data)
	}
	if len(e.LoginIDs) == 0 {
		e.LoginIDs = nil
	}
	if len(e.Tenants) == 0 {
		e.Tenants = nil
	}
	return e, nil
}

// where builds the filter of q over the events table (no alias) and its
// arguments. ok is false when q can match nothing.
func where(q *query.Query) (cond string, args []any, ok bool) {
	var projects []string
	if q.IncludeProject && q.ProjectID != "" {
		projects = append(projects, q.ProjectID)
	}
	if q.IncludeCompany {
		projects = append(projects, "") // company-level events
	}
	if len(projects) == 0 {
		return "", nil, false
	}
	var conds []string
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	conds = append(conds, "company_id = "+arg(q.CompanyID), "project_id = ANY("+arg(projects)+"::text[])")
	if q.From > 0 {
		conds = append(conds, "occurred >= "+arg(q.From))
	}
	if q.To > 0 {
		conds = append(conds, "occurred <= "+arg(q.To))
	}
	for _, f := range []struct {
		prefix string
		vals   []string
	}{
		{attrUser, q.UserIDs}, {attrAction, q.Actions}, {attrActor, q.ActorIDs}, {attrDevice, q.Devices},
		{attrMethod, q.Methods}, {attrGeo, q.Geos}, {attrAddr, q.RemoteAddresses}, {attrLogin, q.LoginIDs},
		{attrChanged, q.ChangedFields}, {attrType, q.Types},
	} {
		if len(f.vals) > 0 {
			conds = append(conds, "attrs && "+arg(prefixed(f.prefix, f.vals))+"::text[]")
		}
	}
	if len(q.Tenants) > 0 || q.NoTenants {
		vals := prefixed(attrTenant, q.Tenants)
		if q.NoTenants {
			vals = append(vals, attrNoTenant)
		}
		conds = append(conds, "attrs && "+arg(vals)+"::text[]")
	}
	if len(q.ExcludedActions) > 0 {
		conds = append(conds, "action <> ALL("+arg(q.ExcludedActions)+"::text[])")
	}
	var terms []string
	for _, tok := range q.TextTokens {
		// A lexeme is a whole token or the cut prefix of a long one, so a
		// tsquery hit is always a true prefix match; a query token longer
		// than a cut lexeme may still prefix the whole long token.
		short := len(tok) <= maxLexemeBytes-utf8.UTFMax+1
		fits := len(tok) <= maxLexemeBytes
		longCheck := func() string {
			return "EXISTS (SELECT 1 FROM unnest(long_tokens) lt WHERE starts_with(lt, " + arg(tok) + "))"
		}
		switch {
		case short:
			terms = append(terms, tsqueryLiteral(tok))
		case fits:
			conds = append(conds, "(tokens @@ "+arg(tsqueryLiteral(tok))+"::tsquery OR "+longCheck()+")")
		default:
			conds = append(conds, longCheck())
		}
	}
	if len(terms) > 0 {
		conds = append(conds, "tokens @@ "+arg(strings.Join(terms, " & "))+"::tsquery")
	}
	return strings.Join(conds, " AND "), args, true
}

// Search counts the matches with count(*) OVER () on a narrow row (seq and
// occurred) while the same scan picks the page, then joins back for the
// page's full rows: matching rows are read once, and only the page's wide
// columns are fetched.
func (s *EventStore) Search(ctx context.Context, q query.Query) (store.Result, error) {
	if err := s.check(ctx); err != nil {
		return store.Result{}, err
	}
	cond, args, ok := where(&q)
	if !ok {
		return store.Result{}, nil
	}
	dir := "DESC"
	if q.OldestFirst {
		dir = "ASC"
	}
	n := len(args)
	// The search's time bounds again on the probe side, so that the planner
	// prunes its partitions too instead of planning every one.
	var bounds string
	next := n + 3 // after the filter's arguments, LIMIT and OFFSET
	if q.From > 0 {
		bounds += fmt.Sprintf(" AND e.occurred >= $%d", next)
		next++
	}
	if q.To > 0 {
		bounds += fmt.Sprintf(" AND e.occurred <= $%d", next)
	}
	sql := fmt.Sprintf(`
		SELECT %s, m.total
		  FROM (SELECT project_id, occurred, seq, count(*) OVER () AS total
		          FROM events WHERE %s
		         ORDER BY occurred %s, seq %s
		         LIMIT $%d OFFSET $%d) m
		 CROSS JOIN LATERAL (
		       -- LIMIT 1 keeps the planner from flattening this into a hash
		       -- join over every partition: one index probe per page row,
		       -- pruned to the row's partition at run time.
		       SELECT * FROM events e
		        WHERE e.project_id = m.project_id AND e.company_id = $1
		          AND e.occurred = m.occurred AND e.seq = m.seq%s
		        LIMIT 1) e
		 ORDER BY m.occurred %s, m.seq %s`,
		eventColumnsSQL, cond, dir, dir, n+1, n+2, bounds, dir, dir)
	args = append(args, q.Size, q.Offset())
	if q.From > 0 {
		args = append(args, q.From)
	}
	if q.To > 0 {
		args = append(args, q.To)
	}
	rows, err := s.db.pool.Query(ctx, sql, args...)
	if err != nil {
		return store.Result{}, classify(ctx, "search", err)
	}
	var res store.Result
	for rows.Next() {
		var total int64
		e, err := scanEvent(rows, &total)
		if err != nil {
			rows.Close()
			return store.Result{}, classify(ctx, "search: scan", err)
		}
		res.Events = append(res.Events, e)
		res.Total = int(total)
	}
	if err := rows.Err(); err != nil {
		return store.Result{}, classify(ctx, "search", err)
	}
	if len(res.Events) == 0 && (q.Offset() > 0 || q.Size == 0) {
		// The page lies past the last match: the window gave no row to
		// carry the total, so count separately.
		var total int64
		if err := s.db.pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE "+cond, args[:n]...).Scan(&total); err != nil {
			return store.Result{}, classify(ctx, "search: count", err)
		}
		res.Total = int(total)
	}
	return res, nil
}

// Get finds the event's partition key in event_ids, then the event.
func (s *EventStore) Get(ctx context.Context, companyID, id string) (event.Event, error) {
	if err := s.check(ctx); err != nil {
		return event.Event{}, err
	}
	// Two statements rather than a join: with the key known, the planner
	// prunes to one partition instead of planning every one of them.
	var projectID string
	var occurred, seq int64
	err := s.db.pool.QueryRow(ctx, "SELECT project_id, occurred, seq FROM event_ids WHERE company_id = $1 AND id = $2",
		companyID, id).Scan(&projectID, &occurred, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return event.Event{}, fmt.Errorf("get %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return event.Event{}, classify(ctx, "get", err)
	}
	row := s.db.pool.QueryRow(ctx, `
		SELECT `+eventColumnsSQL+` FROM events e
		 WHERE e.project_id = $1 AND e.company_id = $2 AND e.occurred = $3 AND e.seq = $4`,
		projectID, companyID, occurred, seq)
	e, err := scanEvent(row)
	if errors.Is(err, pgx.ErrNoRows) {
		// Deleted by retention between the two statements.
		return event.Event{}, fmt.Errorf("get %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return event.Event{}, classify(ctx, "get", err)
	}
	return e, nil
}

// ReadFrom exposes no seq above the read horizon: the smallest seq any
// in-flight Append could still commit, less one (audittrail_read_horizon).
// The horizon is read in one statement and the rows in the next, so the
// rows' snapshot is newer than the horizon: every seq at or below it is
// then committed and visible, or abandoned. A plain "seq > after" would
// skip a batch that drew its seqs early and commits late.
func (s *EventStore) ReadFrom(ctx context.Context, after uint64, limit int) ([]event.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || after >= 1<<63-1 {
		return nil, nil
	}
	var horizon int64
	if err := s.db.pool.QueryRow(ctx, "SELECT audittrail_read_horizon()").Scan(&horizon); err != nil {
		return nil, classify(ctx, "read from: horizon", err)
	}
	if s.ignoreHorizon {
		horizon = 1<<63 - 1
	}
	if horizon <= int64(after) {
		return nil, nil
	}
	rows, err := s.db.pool.Query(ctx, `
		SELECT `+eventColumnsSQL+`
		  FROM events e
		 WHERE e.seq > $1 AND e.seq <= $2
		 ORDER BY e.seq
		 LIMIT $3`, int64(after), horizon, limit)
	if err != nil {
		return nil, classify(ctx, "read from", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event.Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, classify(ctx, "read from", err)
	}
	return out, nil
}
