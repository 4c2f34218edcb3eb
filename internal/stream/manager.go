package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// Options configure a Manager. Zero values take the defaults of
// EnsureDefaults.
type Options struct {
	Store        store.Store
	State        StateStore
	Destinations map[string]Destination
	// Lease defaults to LocalLease (one instance delivers every connector).
	Lease  Lease
	Logger *slog.Logger

	// PollInterval bounds how late a connector notices new events when
	// nobody calls Notify.
	PollInterval time.Duration
	// ReadLimit is the page size of each ReadFrom. Small pages keep each
	// read short: a store may hold a read lock while it decodes a page, and
	// ingest waits for that lock to publish a commit. Reading ahead keeps
	// throughput up with small pages.
	ReadLimit int
	// A batch is written once it holds BatchMaxEvents events or
	// BatchMaxBytes (estimated JSON size), or once its oldest event waited
	// BatchMaxWait for more. BatchMaxWait trades latency for fewer
	// requests at low rates; at high rates batches fill while the previous
	// write is in flight.
	BatchMaxEvents int
	BatchMaxBytes  int
	BatchMaxWait   time.Duration
	// MaxEventsPerSecond caps each connector's delivery rate so that one
	// catching up on a large backlog cannot take the CPU ingest needs;
	// 0 means no cap.
	MaxEventsPerSecond int
	// WriteTimeout bounds one Connect or Write.
	WriteTimeout time.Duration
	// Retries back off exponentially from RetryMin to RetryMax, with jitter.
	RetryMin, RetryMax time.Duration
	// After BreakerFailures consecutive failures the breaker opens: the next
	// attempt waits at least BreakerCooldown, and one failed probe reopens it.
	BreakerFailures int
	BreakerCooldown time.Duration
	// AutoPauseAfter pauses a connector that has failed continuously for
	// that long (Descope: 7 days).
	AutoPauseAfter time.Duration
	// ProgressInterval is how often a cursor moved only past events the
	// connector filters out is saved.
	ProgressInterval time.Duration
	// ReloadInterval, when positive, says State is shared by a fleet: every
	// instance reloads all records that often, so that a connector created,
	// changed, paused or deleted through another instance takes effect here
	// (and on the one delivering it); lookups of an id not known here ask
	// State first. 0 means this instance alone writes State.
	ReloadInterval time.Duration
	// Evidence, when set, is called once per batch before it is written and
	// its answer becomes Batch.Evidence (tamper evidence). It may wait for
	// the ledger to cover the events; nil means the batch goes without.
	Evidence func(ctx context.Context, spec Spec, events []event.Event) json.RawMessage
	// OnAutoPause, when set, is called once each time a connector pauses
	// itself after failing for AutoPauseAfter, once the pause is saved: the
	// server records it in the trail, as it does a pause by a user. spec is
	// redacted. In a fleet only the instance delivering it pauses it.
	OnAutoPause func(ctx context.Context, spec Spec, failingFor time.Duration)

	Now   func() time.Time
	NewID func() string
}

// EnsureDefaults fills every zero option.
func (o *Options) EnsureDefaults() {
	if o.Lease == nil {
		o.Lease = LocalLease{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 250
	}
	if o.BatchMaxEvents <= 0 {
		o.BatchMaxEvents = 500
	}
	if o.BatchMaxBytes <= 0 {
		o.BatchMaxBytes = 1 << 20
	}
	if o.BatchMaxWait <= 0 {
		o.BatchMaxWait = 20 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Minute
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
	if o.AutoPauseAfter <= 0 {
		o.AutoPauseAfter = 7 * 24 * time.Hour
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = event.NewID
	}
}

// Validate refuses options the manager cannot run with.
func (o *Options) Validate() error {
	if o.Store == nil {
		return errors.New("stream: Options.Store is required")
	}
	if o.State == nil {
		return errors.New("stream: Options.State is required")
	}
	if o.RetryMax < o.RetryMin {
		return errors.New("stream: Options.RetryMax is below RetryMin")
	}
	return nil
}

// Manager owns every connector: their specs, cursors and delivery loops.
// Its methods are the plain Go API the HTTP handlers call; every method
// that names a connector takes the caller's company id and answers
// ErrNotFound for a connector of another company.
type Manager struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // parent of every delivery loop
	cancel context.CancelFunc

	mu     sync.RWMutex
	conns  map[string]*connector
	closed bool

	headMu sync.Mutex
	head   uint64

	setMu sync.Mutex
	// ctlMu lets API operations run together (RLock) but not while a reload
	// applies records (Lock), so a reload never undoes a change it did not
	// load.
	ctlMu      sync.RWMutex
	reloadDone chan struct{}
}

// New builds a manager; Start loads the persisted connectors and begins
// delivery.
func New(opts Options) (*Manager, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		opts:   opts,
		log:    opts.Logger.With("component", "stream"),
		ctx:    ctx,
		cancel: cancel,
		conns:  map[string]*connector{},
	}, nil
}

// Start loads every persisted connector and starts those not paused,
// each from its durable cursor; with Options.ReloadInterval it then keeps
// reloading them.
func (m *Manager) Start(ctx context.Context) error {
	recs, err := m.opts.State.Load(ctx)
	if err != nil {
		return fmt.Errorf("load connectors: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, r := range recs {
		if _, ok := m.conns[r.Spec.ID]; ok {
			continue
		}
		c := m.newConnector(r)
		m.conns[r.Spec.ID] = c
		c.start()
	}
	if m.opts.ReloadInterval > 0 && m.reloadDone == nil {
		m.reloadDone = make(chan struct{})
		go m.reloadLoop()
	}
	return nil
}

// reloadLoop applies the shared State every ReloadInterval until Close.
func (m *Manager) reloadLoop() {
	defer close(m.reloadDone)
	t := time.NewTicker(m.opts.ReloadInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		err := m.Reload(m.ctx)
		switch {
		case err != nil && !failing && m.ctx.Err() == nil:
			m.log.Warn("reload connectors", "err", err)
			failing = true
		case err == nil && failing:
			m.log.Info("connectors reloaded again")
			failing = false
		}
	}
}

// Reload applies every record of State to this instance: connectors
// created elsewhere start, deleted ones stop, and a change of spec, pause or
// cursor made elsewhere restarts delivery here if this instance delivers.
func (m *Manager) Reload(ctx context.Context) error {
	m.ctlMu.Lock()
	defer m.ctlMu.Unlock()
	recs, err := m.opts.State.Load(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		seen[r.Spec.ID] = true
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		c, ok := m.conns[r.Spec.ID]
		if !ok {
			c = m.newConnector(r)
			m.conns[r.Spec.ID] = c
			c.start()
			m.log.Info("connector loaded", "connector", r.Spec.ID)
		}
		m.mu.Unlock()
		if ok {
			c.apply(r)
		}
	}
	m.mu.Lock()
	var gone []*connector
	for id, c := range m.conns {
		if !seen[id] {
			gone = append(gone, c)
			delete(m.conns, id)
		}
	}
	m.mu.Unlock()
	for _, c := range gone {
		c.opMu.Lock()
		c.stop()
		c.opMu.Unlock()
		m.log.Info("connector deleted elsewhere", "connector", c.id)
	}
	return nil
}

// Close stops every delivery loop (an in-flight write is cancelled and will
// be redelivered after a restart) and saves each cursor.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	conns := make([]*connector, 0, len(m.conns))
	for _, c := range m.conns {
		conns = append(conns, c)
	}
	reloadDone := m.reloadDone
	m.mu.Unlock()
	m.cancel()
	if reloadDone != nil {
		<-reloadDone
	}
	for _, c := range conns {
		c.opMu.Lock()
		c.stop()
		c.opMu.Unlock()
	}
	return nil
}

// Notify tells every connector that events were appended. It never blocks:
// the ingest path calls it after each acknowledged Append.
func (m *Manager) Notify() {
	m.mu.RLock()
	for _, c := range m.conns {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	m.mu.RUnlock()
}

// View is a connector as shown to API callers: secrets redacted.
type View struct {
	Spec
	Health Health `json:"health"`
}

// lookup finds a connector of the company. With a shared State, an id not
// known here may have been created through another instance a moment ago:
// State is asked, and the connector adopted.
func (m *Manager) lookup(ctx context.Context, companyID, id string) (*connector, error) {
	m.mu.RLock()
	c, ok := m.conns[id]
	closed := m.closed
	m.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrClosed
	case ok && c.companyID == companyID:
		return c, nil
	case ok || m.opts.ReloadInterval <= 0:
		return nil, ErrNotFound
	}
	r, err := m.opts.State.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if c, ok = m.conns[id]; !ok {
		c = m.newConnector(r)
		m.conns[id] = c
		c.start()
	}
	if c.companyID != companyID {
		return nil, ErrNotFound
	}
	return c, nil
}

func (m *Manager) destination(typ string) (Destination, error) {
	d, ok := m.opts.Destinations[typ]
	if !ok || d.New == nil {
		names := make([]string, 0, len(m.opts.Destinations))
		for n := range m.opts.Destinations {
			names = append(names, n)
		}
		slices.Sort(names)
		return Destination{}, &FieldError{Field: "type", Reason: fmt.Sprintf("unknown destination %q (known: %s)", typ, strings.Join(names, ", "))}
	}
	return d, nil
}

func (d Destination) redact(config json.RawMessage) json.RawMessage {
	if d.Redact != nil {
		return d.Redact(config)
	}
	return RedactKeys(config, DefaultSecretKeys...)
}

// check validates a spec fully: the engine's own fields, then the
// destination's config by building (and discarding) a sink.
func (m *Manager) check(ctx context.Context, s *Spec) error {
	if err := s.normalize(); err != nil {
		return err
	}
	d, err := m.destination(s.Type)
	if err != nil {
		return err
	}
	sink, err := d.New(s.Config)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &FieldError{Field: "config." + fe.Field, Reason: fe.Reason}
		}
		return &FieldError{Field: "config", Reason: err.Error()}
	}
	if err := sink.Close(ctx); err != nil {
		m.log.Debug("closing validation sink", "type", s.Type, "err", err)
	}
	return nil
}

// Create validates and stores a new connector. It starts at the current end
// of the log: it delivers every event acknowledged after Create returned
// (and possibly a few acknowledged just before).
func (m *Manager) Create(ctx context.Context, s Spec) (View, error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	return m.create(ctx, s)
}

func (m *Manager) create(ctx context.Context, s Spec) (View, error) {
	s.ID = m.opts.NewID()
	now := m.opts.Now().UTC()
	s.Created, s.Updated = now, now
	if err := m.check(ctx, &s); err != nil {
		return View{}, err
	}
	head, err := m.headSeq(ctx)
	if err != nil {
		return View{}, fmt.Errorf("find end of log: %w", err)
	}
	rec := Record{Spec: s, Cursor: head, Revision: 1}
	// Saved before taking m.mu: Notify, on the ingest path, takes it too
	// and must not wait for an fsync.
	if err := m.opts.State.Create(ctx, rec); err != nil {
		return View{}, fmt.Errorf("save connector: %w", err)
	}
	c := m.newConnector(rec)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return View{}, ErrClosed
	}
	m.conns[s.ID] = c
	c.start()
	m.mu.Unlock()
	m.log.Info("connector created", "connector", s.ID, "type", s.Type, "company", s.CompanyID, "cursor", head)
	return c.view(ctx), nil
}

// Set creates or updates the connector of the same company, project, type
// and name: the semantics of Descope's /connector/audit/web/set. created
// tells which happened. The name is looked up in State, so that in a fleet
// a connector set through another instance is found; two instances setting
// a new name at the same moment may still both create it.
func (m *Manager) Set(ctx context.Context, s Spec) (v View, created bool, err error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	// Two concurrent Sets of the same name must not both create.
	m.setMu.Lock()
	defer m.setMu.Unlock()
	recs, err := m.opts.State.Load(ctx)
	if err != nil {
		return View{}, false, fmt.Errorf("load connectors: %w", err)
	}
	var existing string
	for _, r := range recs {
		sp := r.Spec
		if sp.CompanyID == s.CompanyID && sp.ProjectID == s.ProjectID && sp.Type == s.Type && sp.Name == s.Name {
			existing = sp.ID
			break
		}
	}
	if existing == "" {
		v, err = m.create(ctx, s)
		return v, true, err
	}
	v, err = m.update(ctx, s.CompanyID, existing, s)
	return v, false, err
}

// List returns the company's connectors (only the project's when projectID
// is set), oldest first.
func (m *Manager) List(ctx context.Context, companyID, projectID string) ([]View, error) {
	if m.opts.ReloadInterval > 0 {
		// In a fleet, show what any instance created or deleted until now.
		if err := m.Reload(ctx); err != nil {
			return nil, fmt.Errorf("load connectors: %w", err)
		}
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return nil, ErrClosed
	}
	var cs []*connector
	for _, c := range m.conns {
		sp := c.spec()
		if sp.CompanyID == companyID && (projectID == "" || sp.ProjectID == projectID) {
			cs = append(cs, c)
		}
	}
	m.mu.RUnlock()
	out := make([]View, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.view(ctx))
	}
	slices.SortFunc(out, func(a, b View) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Get returns one connector, secrets redacted.
func (m *Manager) Get(ctx context.Context, companyID, id string) (View, error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return View{}, err
	}
	return c.view(ctx), nil
}

// Update replaces a connector's spec, keeping its id, company, creation
// time and cursor. A nil Config keeps the current one; a Config in which a
// value equals what Get showed redacted keeps that secret.
func (m *Manager) Update(ctx context.Context, companyID, id string, s Spec) (View, error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	return m.update(ctx, companyID, id, s)
}

func (m *Manager) update(ctx context.Context, companyID, id string, s Spec) (View, error) {
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return View{}, err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	prev := c.spec()
	s.ID, s.CompanyID, s.Created = prev.ID, prev.CompanyID, prev.Created
	s.Updated = m.opts.Now().UTC()
	if s.Type == "" {
		s.Type = prev.Type
	}
	switch {
	case len(s.Config) == 0:
		s.Config = prev.Config
	case s.Type == prev.Type:
		d, err := m.destination(prev.Type)
		if err != nil {
			return View{}, err
		}
		restored, err := restoreRedacted(s.Config, prev.Config, d.redact(prev.Config))
		if err != nil {
			return View{}, &FieldError{Field: "config", Reason: "is not valid JSON"}
		}
		s.Config = restored
	}
	if err := m.check(ctx, &s); err != nil {
		return View{}, err
	}
	err = c.change(ctx, func(r *Record) error {
		r.Spec = s
		return nil
	})
	if err != nil {
		return View{}, err
	}
	return c.view(ctx), nil
}

// Delete stops and forgets a connector.
func (m *Manager) Delete(ctx context.Context, companyID, id string) error {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.stop()
	if err := m.opts.State.Delete(ctx, id); err != nil {
		c.start()
		return fmt.Errorf("delete connector: %w", err)
	}
	m.mu.Lock()
	delete(m.conns, id)
	m.mu.Unlock()
	m.log.Info("connector deleted", "connector", id)
	return nil
}

// Pause stops delivery; events keep accumulating behind the cursor.
func (m *Manager) Pause(ctx context.Context, companyID, id string) (View, error) {
	return m.setPaused(ctx, companyID, id, true)
}

// Resume restarts delivery from the cursor, also after an auto-pause.
func (m *Manager) Resume(ctx context.Context, companyID, id string) (View, error) {
	return m.setPaused(ctx, companyID, id, false)
}

func (m *Manager) setPaused(ctx context.Context, companyID, id string, paused bool) (View, error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return View{}, err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	err = c.change(ctx, func(r *Record) error {
		r.Paused = paused
		if !paused {
			r.AutoPaused = false
			r.Counters.FailingSince = time.Time{}
		}
		return nil
	})
	if err != nil {
		return View{}, err
	}
	if !paused {
		c.mu.Lock()
		c.failures = 0
		c.breakerUntil = time.Time{}
		c.mu.Unlock()
	}
	return c.view(ctx), nil
}

// Replay rewinds the cursor to just before the first event of the
// connector's company whose occurred time is at or after from, so delivery
// restarts there (events already deleted by retention are gone). Events
// after that point that occurred earlier than from are delivered too: the
// log is in ingest order. It returns the new cursor.
func (m *Manager) Replay(ctx context.Context, companyID, id string, from time.Time) (uint64, error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return 0, err
	}
	cursor, found, err := m.seqAt(ctx, companyID, from.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("find replay start: %w", err)
	}
	if !found {
		if cursor, err = m.headSeq(ctx); err != nil {
			return 0, fmt.Errorf("find end of log: %w", err)
		}
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	var prev uint64
	err = c.change(ctx, func(r *Record) error {
		prev = r.Cursor
		r.Cursor = cursor
		// A new epoch: whichever instance delivers now must not save a
		// cursor past the rewind.
		r.Epoch++
		return nil
	})
	if err != nil {
		return 0, err
	}
	m.log.Info("connector replay", "connector", id, "from", from, "cursor", cursor, "previous", prev)
	return cursor, nil
}

// seqAt scans the log for the first event of the company with Occurred >=
// ms and returns the cursor just before it.
func (m *Manager) seqAt(ctx context.Context, companyID string, ms int64) (uint64, bool, error) {
	const page = 5000
	var after uint64
	for {
		evs, err := m.opts.Store.ReadFrom(ctx, after, page)
		if err != nil {
			return 0, false, err
		}
		for i := range evs {
			if evs[i].CompanyID == companyID && evs[i].Occurred >= ms {
				return evs[i].Seq - 1, true, nil
			}
			after = evs[i].Seq
		}
		if len(evs) < page {
			return 0, false, nil
		}
	}
}

// SendTest delivers one synthetic event (action "AuditStreamTest") through
// a fresh sink built from the connector's config, outside the cursor, and
// reports whether the destination acknowledged it.
func (m *Manager) SendTest(ctx context.Context, companyID, id string) error {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return err
	}
	s := c.spec()
	d, err := m.destination(s.Type)
	if err != nil {
		return err
	}
	ev := event.Event{
		ID:        m.opts.NewID(),
		CompanyID: s.CompanyID,
		ProjectID: s.ProjectID,
		Level:     event.LevelProject,
		Action:    "AuditStreamTest",
		Type:      event.TypeInfo,
		ActorID:   "audittrail",
		Occurred:  m.opts.Now().UnixMilli(),
		Data:      json.RawMessage(`{"message":"test event from audittrail"}`),
	}
	if s.ProjectID == "" {
		ev.Level = event.LevelCompany
	}
	sink, err := d.New(s.Config)
	if err != nil {
		return fmt.Errorf("send test: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, m.opts.WriteTimeout)
	defer cancel()
	defer sink.Close(wctx)
	if err := sink.Connect(wctx); err != nil {
		return fmt.Errorf("send test: connect: %w", err)
	}
	if err := sink.Write(wctx, Batch{ConnectorID: s.ID, Events: []event.Event{ev}}); err != nil {
		return fmt.Errorf("send test: %w", err)
	}
	return nil
}

// Health returns a connector's health.
func (m *Manager) Health(ctx context.Context, companyID, id string) (Health, error) {
	m.ctlMu.RLock()
	defer m.ctlMu.RUnlock()
	c, err := m.lookup(ctx, companyID, id)
	if err != nil {
		return Health{}, err
	}
	return c.health(ctx), nil
}

// headSeq returns the highest Seq the store exposes, remembering it so
// the next probe starts from there.
func (m *Manager) headSeq(ctx context.Context) (uint64, error) {
	m.headMu.Lock()
	defer m.headMu.Unlock()
	head, err := store.HeadSeq(ctx, m.opts.Store, m.head)
	if err == nil {
		m.head = head
	}
	return head, err
}
