package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/audittrail/audittrail/internal/stream"
)

// StreamLockClass is the first key of the two-key advisory locks that back
// stream leases ("aust"). Two-key locks (objsubid 2 in pg_locks) never
// collide with the one-key locks of migrations and the read horizon.
const StreamLockClass int32 = 0x61757374

// LeaseOptions configure a StreamLease; zero values take the defaults.
type LeaseOptions struct {
	// Heartbeat is how often the lock connection is checked, so that Lost
	// closes soon after it breaks; default 1s.
	Heartbeat time.Duration
	// Poll is how often a lease held by another instance is tried again,
	// and so how soon a dead instance's connectors are taken over; default 1s.
	Poll time.Duration
	// SessionTimeout is the lock session's idle_session_timeout: an
	// instance that stops heartbeating (frozen, cut off) loses its locks
	// after it, even when no TCP reset reaches the server; default 10s.
	SessionTimeout time.Duration
	Logger         *slog.Logger
}

func (o *LeaseOptions) setDefaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// StreamLease is the stream.Lease of a fleet: a session advisory lock per
// connector, all held on one connection of their own (not the pool's), so
// that the locks live exactly as long as that session. When the process
// dies its socket closes and the server releases every lock at once; a
// process that hangs stops heartbeating and the server ends its session
// after SessionTimeout. When this side sees the connection break, every
// held lease's Lost closes.
type StreamLease struct {
	db   *DB
	opts LeaseOptions
	log  *slog.Logger

	mu   sync.Mutex // guards conn and held, and serialises use of conn
	conn *pgx.Conn
	held map[string]*streamHeld
	down bool // the last connection attempt failed (logged once)
	// noSessionTimeout: the server refused idle_session_timeout.
	noSessionTimeout bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ stream.Lease = (*StreamLease)(nil)

// StreamLease starts a lease manager on this database; Close it before the
// DB.
func (db *DB) StreamLease(opts LeaseOptions) *StreamLease {
	opts.setDefaults()
	l := &StreamLease{db: db, opts: opts, log: opts.Logger, held: map[string]*streamHeld{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.heartbeat()
	return l
}

type streamHeld struct {
	l    *StreamLease
	id   string
	conn *pgx.Conn
	lost chan struct{}
	once sync.Once
}

func (h *streamHeld) Lost() <-chan struct{} { return h.lost }

func (h *streamHeld) markLost() { h.once.Do(func() { close(h.lost) }) }

// Release unlocks the connector; on a connection that has since broken
// there is nothing left to unlock.
func (h *streamHeld) Release() {
	l := h.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[h.id] != h {
		return
	}
	delete(l.held, h.id)
	if l.conn != h.conn || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.Heartbeat*5)
	defer cancel()
	if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1::int4, $2::int4)", StreamLockClass, StreamLockKey(h.id)); err != nil {
		l.log.Warn("stream lease: unlock failed; dropping the lock connection", "connector", h.id, "err", err)
		l.breakLocked()
	}
}

// LeaseApplicationName is the application_name of a process's lock
// session; pg_locks joined with pg_stat_activity on pid shows the two-key
// advisory locks (classid StreamLockClass) each instance holds.
func LeaseApplicationName(pid int) string { return fmt.Sprintf("audittrail stream lease pid=%d", pid) }

// StreamLockKey maps a lease name (a connector id) to the second key of its
// lock (pg_locks.objid is its bits as unsigned). Two ids that share a key
// share a lock: the one instance holding it delivers both.
func StreamLockKey(id string) int32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int32(h.Sum32())
}

// Acquire tries the connector's lock every Poll until it is held or ctx
// ends. A database that cannot be reached is retried the same way.
func (l *StreamLease) Acquire(ctx context.Context, connectorID string) (stream.Held, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.stop:
			return nil, fmt.Errorf("stream lease: closed")
		case <-t.C:
		}
		if h := l.try(ctx, connectorID); h != nil {
			return h, nil
		}
		t.Reset(l.opts.Poll)
	}
}

func (l *StreamLease) try(ctx context.Context, id string) *streamHeld {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.held[id]; busy {
		return nil // this instance holds it already (a release is on its way)
	}
	if l.conn == nil && !l.connectLocked(ctx) {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, l.opts.Heartbeat*5)
	defer cancel()
	var got bool
	if err := l.conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", StreamLockClass, StreamLockKey(id)).Scan(&got); err != nil {
		if ctx.Err() == nil {
			l.log.Warn("stream lease: lock query failed; reconnecting", "connector", id, "err", err)
			l.breakLocked()
		}
		return nil
	}
	if !got {
		return nil
	}
	h := &streamHeld{l: l, id: id, conn: l.conn, lost: make(chan struct{})}
	l.held[id] = h
	return h
}

// connectLocked opens the lock session: idle_session_timeout makes the
// server end it (releasing its locks) if this process stops heartbeating.
func (l *StreamLease) connectLocked(ctx context.Context) bool {
	cfg := l.db.pool.Config().ConnConfig.Copy()
	// Names the process, so that an operator (or a test) can tell from
	// pg_stat_activity which instance holds which connector.
	cfg.RuntimeParams["application_name"] = LeaseApplicationName(os.Getpid())
	if !l.noSessionTimeout {
		cfg.RuntimeParams["idle_session_timeout"] = fmt.Sprint(l.opts.SessionTimeout.Milliseconds())
	}
	cctx, cancel := context.WithTimeout(ctx, l.db.opts.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42704" && !l.noSessionTimeout {
		// PostgreSQL before 14 has no idle_session_timeout: a hung holder's
		// locks then last until TCP gives up on its connection.
		l.log.Warn("stream lease: the server has no idle_session_timeout (PostgreSQL < 14); a hung instance keeps its leases until its connection times out")
		l.noSessionTimeout = true
		delete(cfg.RuntimeParams, "idle_session_timeout")
		conn, err = pgx.ConnectConfig(cctx, cfg)
	}
	if err != nil {
		if !l.down && ctx.Err() == nil {
			l.log.Warn("stream lease: cannot connect; retrying", "err", classify(cctx, "connect", err))
		}
		l.down = true
		return false
	}
	if l.down {
		l.log.Info("stream lease: connected again")
	}
	l.conn, l.down = conn, false
	return true
}

// breakLocked drops the lock session: every lease held on it is lost (the
// server releases the locks as the session ends).
func (l *StreamLease) breakLocked() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = l.conn.Close(ctx)
	cancel()
	l.conn = nil
	for id, h := range l.held {
		h.markLost()
		delete(l.held, id)
	}
}

func (l *StreamLease) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), l.opts.Heartbeat*3)
			if err := l.conn.Ping(ctx); err != nil {
				l.log.Warn("stream lease: lock connection lost; leases held here are lost", "held", len(l.held), "err", err)
				l.breakLocked()
			}
			cancel()
		}
		l.mu.Unlock()
	}
}

// Close stops the heartbeat and ends the lock session, releasing every
// lease this instance holds.
func (l *StreamLease) Close() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		l.breakLocked()
		l.mu.Unlock()
	})
	return nil
}
