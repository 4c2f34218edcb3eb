package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/audittrail/audittrail/internal/event"
)

// maxRetryAfter caps how long a destination's Retry-After may hold a
// connector back, so a bogus value cannot park it for days.
const maxRetryAfter = 15 * time.Minute

// States a connector reports.
const (
	StateActive     = "active"
	StatePaused     = "paused"
	StateFailing    = "failing"
	StateAutoPaused = "auto-paused"
)

// Health is what the API shows about a connector's delivery.
type Health struct {
	State string `json:"state"`
	// BreakerOpen: enough consecutive failures that attempts now wait the
	// breaker cooldown.
	BreakerOpen bool `json:"breakerOpen"`
	// Cursor is the Seq of the last event delivered or skipped; Head the
	// highest Seq in the store.
	Cursor uint64 `json:"cursor"`
	Head   uint64 `json:"head"`
	// LagEvents counts store sequence numbers between Cursor and Head, events
	// of every company included: an upper bound of what this connector has
	// still to deliver.
	LagEvents uint64 `json:"lagEvents"`
	// LagSeconds is the age (by its occurred time) of the oldest event not
	// yet past the cursor; 0 when caught up.
	LagSeconds float64 `json:"lagSeconds"`
	Counters
}

// connector is one configured destination and its delivery loop.
type connector struct {
	m *Manager
	// id and companyID never change, so lookups need no lock.
	id, companyID string

	// opMu serialises API operations that stop and restart the loop.
	opMu sync.Mutex

	mu  sync.Mutex
	rec Record
	// failures counts consecutive failed attempts; breakerUntil is when an
	// open breaker lets the next probe through.
	failures     int
	breakerUntil time.Time
	// heldEpoch is the Epoch this instance claimed when it took over
	// delivery, 0 while it does not deliver; endDelivery ends that
	// delivery (a save found the epoch superseded or the record gone).
	heldEpoch   uint64
	endDelivery context.CancelFunc

	wake chan struct{}

	// running loop; guarded by opMu (and by Manager.mu at creation).
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *Manager) newConnector(r Record) *connector {
	return &connector{m: m, id: r.Spec.ID, companyID: r.Spec.CompanyID, rec: r, wake: make(chan struct{}, 1)}
}

func (c *connector) spec() Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Spec
}

// start launches the delivery loop unless the connector is paused.
func (c *connector) start() {
	c.mu.Lock()
	paused := c.rec.Paused || c.rec.AutoPaused
	c.mu.Unlock()
	if paused || c.m.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.m.ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		c.run(ctx)
	}(c.done)
}

// stop cancels the loop and waits for it to save its cursor and exit.
func (c *connector) stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
	c.cancel, c.done = nil, nil
}

// pending is an event read from the store, filtered and masked, waiting to
// be delivered.
type pending struct {
	ev   event.Event
	size int
}

func (c *connector) run(ctx context.Context) {
	log := c.m.log.With("connector", c.id)
	for ctx.Err() == nil {
		held, err := c.m.opts.Lease.Acquire(ctx, c.id)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("acquire lease", "err", err)
				sleep(ctx, c.m.opts.RetryMax)
			}
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-held.Lost():
				log.Warn("lease lost; delivery stops until it is acquired again")
				cancel()
			case <-lctx.Done():
			}
		}()
		gone, runnable := c.claim(lctx, cancel, log)
		if runnable {
			c.deliverLoop(lctx, log)
		}
		cancel()
		c.mu.Lock()
		c.heldEpoch, c.endDelivery = 0, nil
		paused := c.rec.AutoPaused || c.rec.Paused
		c.mu.Unlock()
		held.Release()
		if paused || gone {
			return
		}
		if !runnable {
			sleep(ctx, c.m.opts.RetryMin)
		}
	}
}

// claim takes over delivery under a held lease: it bumps the record's
// Epoch (fencing off whoever delivered before) and reloads the record, so
// delivery resumes from the durable cursor whichever instance saved it.
// gone reports a record deleted elsewhere; runnable that delivery may
// start (claimed, not paused).
func (c *connector) claim(ctx context.Context, end context.CancelFunc, log *slog.Logger) (gone, runnable bool) {
	r, err := c.m.opts.State.Update(ctx, c.id, func(r *Record) error {
		r.Epoch++
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		log.Info("connector deleted elsewhere; delivery stops")
		return true, false
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("claim delivery", "err", err)
		}
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec = r
	c.heldEpoch, c.endDelivery = r.Epoch, end
	return false, !r.Paused && !r.AutoPaused
}

// apply brings a record reloaded from a shared State into this connector.
// While this instance delivers, its cursor and counters are newer than the
// stored ones, so only a newer control change (Revision) or a takeover by
// another instance (Epoch) restarts it; otherwise the record replaces the
// local copy and delivery starts or stops with its pause flags.
func (c *connector) apply(r Record) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	delivering := c.heldEpoch != 0
	restart := delivering && (r.Revision > c.rec.Revision || r.Epoch > c.heldEpoch)
	if !delivering && (r.Revision > c.rec.Revision || (r.Revision == c.rec.Revision && r.Epoch >= c.rec.Epoch)) {
		c.rec = r
	}
	// A reload older than what this instance already knows (loaded before
	// its own last change) must not start or stop anything.
	want := !c.rec.Paused && !c.rec.AutoPaused
	c.mu.Unlock()
	running := c.running()
	switch {
	case restart:
		c.stop()
		c.mu.Lock()
		c.rec = r
		c.mu.Unlock()
		c.start()
	case running && !want && !delivering:
		c.stop()
	case !running && want:
		c.stop() // reaps a loop that ended by itself (it found the record paused)
		c.start()
	}
}

// running reports whether the delivery loop is alive: it also ends by
// itself when it finds the connector paused. The caller holds opMu.
func (c *connector) running() bool {
	if c.cancel == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// change applies a control change (spec, pause, replay) through the
// State: delivery here stops (saving its cursor), the record is updated
// with a new Revision so that the instance delivering it elsewhere
// restarts, and delivery starts again here if it should. The caller holds
// opMu.
func (c *connector) change(ctx context.Context, fn func(*Record) error) error {
	c.stop()
	r, err := c.m.opts.State.Update(ctx, c.id, func(r *Record) error {
		if err := fn(r); err != nil {
			return err
		}
		r.Revision++
		return nil
	})
	if err != nil {
		c.start()
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("save connector: %w", err)
	}
	c.mu.Lock()
	c.rec = r
	c.mu.Unlock()
	c.start()
	return nil
}

// deliverLoop reads, filters, batches and delivers until ctx ends or the
// connector pauses itself.
func (c *connector) deliverLoop(ctx context.Context, log *slog.Logger) {
	o := &c.m.opts
	c.mu.Lock()
	spec := c.rec.Spec
	cursor := c.rec.Cursor
	c.mu.Unlock()

	d, err := c.m.destination(spec.Type)
	if err != nil {
		c.recordFailure(err, 0)
		log.Warn("connector has an unknown type", "type", spec.Type)
		<-ctx.Done()
		return
	}
	var sink Sink
	for sink == nil {
		if sink, err = d.New(spec.Config); err != nil {
			c.recordFailure(err, 0)
			if !sleep(ctx, o.RetryMax) {
				return
			}
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), o.WriteTimeout)
		defer cancel()
		if err := sink.Close(cctx); err != nil {
			log.Warn("close sink", "err", err)
		}
	}()

	// A reader goroutine keeps up to two pages read, filtered and masked
	// ahead of the writer, so reading overlaps the destination's round trip.
	pages := make(chan page, 2)
	rctx, stopReader := context.WithCancel(ctx)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.read(rctx, spec, cursor, pages, log)
	}()
	defer func() {
		stopReader()
		<-readerDone
	}()

	scanned := cursor // last Seq the writer has taken from the reader
	var queue []pending
	queuedBytes := 0
	connected := false
	var firstQueued time.Time
	lastSaved := o.Now()
	take := func(p page) {
		if len(queue) == 0 && len(p.events) > 0 {
			firstQueued = o.Now()
		}
		for _, pe := range p.events {
			queue = append(queue, pe)
			queuedBytes += pe.size
		}
		scanned = p.scanned
	}
	defer func() {
		// Save how far the filters skipped, so a restart does not rescan.
		safe := scanned
		if len(queue) > 0 {
			safe = queue[0].ev.Seq - 1
		}
		if safe > cursor {
			c.advance(context.Background(), safe, 0, 0)
		}
	}()

	for ctx.Err() == nil {
	fill:
		for len(queue) < o.BatchMaxEvents && queuedBytes < o.BatchMaxBytes {
			select {
			case p := <-pages:
				take(p)
			default:
				break fill
			}
		}
		if len(queue) == 0 {
			if scanned > cursor && o.Now().Sub(lastSaved) >= o.ProgressInterval {
				cursor = scanned
				c.advance(ctx, cursor, 0, 0)
				lastSaved = o.Now()
			}
			select {
			case p := <-pages:
				take(p)
			case <-ctx.Done():
			}
			continue
		}

		n, bytes := 0, 0
		for n < len(queue) && n < o.BatchMaxEvents && (n == 0 || bytes+queue[n].size <= o.BatchMaxBytes) {
			bytes += queue[n].size
			n++
		}
		full := n == o.BatchMaxEvents || n < len(queue) || bytes >= o.BatchMaxBytes
		if wait := o.BatchMaxWait - o.Now().Sub(firstQueued); !full && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case p := <-pages:
				take(p)
			case <-t.C:
				firstQueued = time.Time{} // waited enough: send what there is
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}

		events := make([]event.Event, n)
		for i := range events {
			events[i] = queue[i].ev
		}
		started := time.Now()
		batch := Batch{ConnectorID: spec.ID, Events: events}
		if o.Evidence != nil {
			batch.Evidence = o.Evidence(ctx, spec, events)
		}
		if !c.deliver(ctx, sink, &connected, batch, log) {
			return
		}
		// The new cursor covers the delivered events and whatever the filters
		// skipped up to the next queued event (or up to scanned).
		next := scanned
		if n < len(queue) {
			next = queue[n].ev.Seq - 1
		}
		queue = queue[n:]
		queuedBytes -= bytes
		if len(queue) > 0 {
			firstQueued = o.Now()
		}
		cursor = next
		c.advance(ctx, cursor, uint64(n), 1)
		lastSaved = o.Now()
		if o.MaxEventsPerSecond > 0 {
			budget := time.Duration(float64(n) / float64(o.MaxEventsPerSecond) * float64(time.Second))
			if spent := time.Since(started); spent < budget && !sleep(ctx, budget-spent) {
				return
			}
		}
	}
}

// page is one read of the store after filtering and masking. scanned is the
// last Seq read, matched or not, so the cursor can move past skipped events.
type page struct {
	events  []pending
	scanned uint64
}

// read feeds pages from the store until ctx ends, sleeping until Notify or
// PollInterval when it has caught up with the log.
func (c *connector) read(ctx context.Context, spec Spec, after uint64, pages chan<- page, log *slog.Logger) {
	o := &c.m.opts
	storeDown := false
	for ctx.Err() == nil {
		evs, err := o.Store.ReadFrom(ctx, after, o.ReadLimit)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !storeDown {
				log.Warn("read from store", "err", err)
				storeDown = true
			}
			sleep(ctx, o.PollInterval)
			continue
		}
		if storeDown {
			log.Info("store readable again")
			storeDown = false
		}
		if len(evs) > 0 {
			p := page{scanned: evs[len(evs)-1].Seq}
			for i := range evs {
				if !spec.matches(&evs[i]) {
					continue
				}
				ev := evs[i]
				if spec.MaskPII {
					ev = maskPII(ev)
				}
				p.events = append(p.events, pending{ev: ev, size: estimateSize(&ev)})
			}
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			after = p.scanned
		}
		if len(evs) < o.ReadLimit {
			c.waitWake(ctx, o.PollInterval)
		}
	}
}

// deliver writes one batch until the sink acknowledges it. It returns false
// when ctx ended or the connector paused itself; the batch is then
// redelivered later from the durable cursor.
func (c *connector) deliver(ctx context.Context, sink Sink, connected *bool, b Batch, log *slog.Logger) bool {
	o := &c.m.opts
	for {
		c.mu.Lock()
		until := c.breakerUntil
		c.mu.Unlock()
		if wait := until.Sub(o.Now()); wait > 0 && !sleep(ctx, wait) {
			return false
		}
		wctx, cancel := context.WithTimeout(ctx, o.WriteTimeout)
		var err error
		if !*connected {
			if err = sink.Connect(wctx); err == nil {
				*connected = true
			}
		}
		if err == nil {
			err = sink.Write(wctx, b)
		}
		cancel()
		if err == nil {
			c.mu.Lock()
			if c.failures > 0 {
				log.Info("destination recovered", "after_failures", c.failures)
			}
			c.failures = 0
			c.breakerUntil = time.Time{}
			c.rec.Counters.FailingSince = time.Time{}
			c.mu.Unlock()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		// Reconnect before the next attempt: the connection may be the fault.
		*connected = false
		failures, failingFor := c.recordFailure(err, len(b.Events))
		if failures == 1 || failures%10 == 0 {
			log.Warn("delivery failed", "err", err, "consecutive_failures", failures)
		}
		if failingFor >= o.AutoPauseAfter {
			if c.autoPause(ctx) && o.OnAutoPause != nil {
				o.OnAutoPause(context.WithoutCancel(ctx), c.view(ctx).Spec, failingFor)
			}
			log.Warn("connector paused itself after failing too long", "failing_for", failingFor.String())
			return false
		}
		wait := backoff(o.RetryMin, o.RetryMax, failures)
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) {
			wait = max(wait, min(ra.RetryAfter(), maxRetryAfter))
		}
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// recordFailure counts a failed attempt, opens the breaker at the
// threshold, saves the counters, and returns the consecutive failures and
// how long the connector has been failing.
func (c *connector) recordFailure(err error, events int) (int, time.Duration) {
	o := &c.m.opts
	now := o.Now()
	c.mu.Lock()
	c.failures++
	cn := &c.rec.Counters
	cn.FailedAttempts++
	cn.FailedEvents += uint64(events)
	cn.LastError = truncate(err.Error(), 512)
	cn.LastErrorAt = now.UTC()
	if cn.FailingSince.IsZero() {
		cn.FailingSince = now.UTC()
	}
	if c.failures >= o.BreakerFailures {
		c.breakerUntil = now.Add(o.BreakerCooldown)
	}
	failures, since := c.failures, cn.FailingSince
	c.mu.Unlock()
	c.saveProgress(context.Background())
	return failures, now.Sub(since)
}

// autoPause marks the connector auto-paused and saves it, and reports
// whether the pause was saved. One that was not is not announced: after a
// restart the connector, still failing, pauses itself again.
func (c *connector) autoPause(ctx context.Context) bool {
	c.mu.Lock()
	c.rec.AutoPaused = true
	c.mu.Unlock()
	r, err := c.m.opts.State.Update(context.WithoutCancel(ctx), c.id, func(r *Record) error {
		r.AutoPaused = true
		r.Revision++
		return nil
	})
	if err != nil {
		c.m.log.Warn("save auto-pause", "connector", c.id, "err", err)
		return false
	}
	c.mu.Lock()
	c.rec.Revision, c.rec.AutoPaused = r.Revision, r.AutoPaused
	c.mu.Unlock()
	return true
}

// advance moves the durable cursor after an acknowledgement (or past
// filtered-out events) and saves it.
func (c *connector) advance(ctx context.Context, cursor, delivered, batches uint64) {
	now := c.m.opts.Now().UTC()
	c.mu.Lock()
	c.rec.Cursor = cursor
	if batches > 0 {
		c.rec.Counters.Delivered += delivered
		c.rec.Counters.Batches += batches
		c.rec.Counters.LastSuccess = now
	}
	c.mu.Unlock()
	// Saved even when ctx was just cancelled: the destination has the events.
	c.saveProgress(context.WithoutCancel(ctx))
}

// saveProgress stores the cursor and counters under the epoch this
// instance claimed. If another instance took over (or the cursor was
// rewound, or the connector deleted) delivery here ends; the run loop then
// claims again from the durable record, or stops.
func (c *connector) saveProgress(ctx context.Context) {
	c.mu.Lock()
	p := Progress{Epoch: c.heldEpoch, Cursor: c.rec.Cursor, Counters: c.rec.Counters}
	end := c.endDelivery
	c.mu.Unlock()
	if p.Epoch == 0 {
		return // not delivering: nothing of ours to save
	}
	err := c.m.opts.State.SaveProgress(ctx, c.id, p)
	switch {
	case err == nil:
	case errors.Is(err, ErrStale), errors.Is(err, ErrNotFound):
		c.m.log.Info("delivery superseded; reloading the connector", "connector", c.id, "reason", err)
		if end != nil {
			end()
		}
	default:
		c.m.log.Warn("save cursor", "connector", c.id, "err", err)
	}
}

func (c *connector) waitWake(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-c.wake:
	case <-t.C:
	}
}

func (c *connector) health(ctx context.Context) Health {
	c.mu.Lock()
	h := Health{Cursor: c.rec.Cursor, Counters: c.rec.Counters}
	switch {
	case c.rec.AutoPaused:
		h.State = StateAutoPaused
	case c.rec.Paused:
		h.State = StatePaused
	case c.failures > 0 || !c.rec.Counters.FailingSince.IsZero():
		// FailingSince also tells an instance that does not deliver.
		h.State = StateFailing
	default:
		h.State = StateActive
	}
	h.BreakerOpen = c.failures >= c.m.opts.BreakerFailures
	c.mu.Unlock()
	head, err := c.m.headSeq(ctx)
	if err == nil && head > h.Cursor {
		h.Head, h.LagEvents = head, head-h.Cursor
		if evs, err := c.m.opts.Store.ReadFrom(ctx, h.Cursor, 1); err == nil && len(evs) == 1 {
			age := c.m.opts.Now().Sub(time.UnixMilli(evs[0].Occurred))
			h.LagSeconds = max(age.Seconds(), 0)
		}
	} else {
		h.Head = max(head, h.Cursor)
	}
	return h
}

func (c *connector) view(ctx context.Context) View {
	s := c.spec()
	if d, err := c.m.destination(s.Type); err == nil {
		s.Config = d.redact(s.Config)
	} else {
		s.Config = RedactKeys(s.Config, DefaultSecretKeys...)
	}
	return View{Spec: s, Health: c.health(ctx)}
}

// backoff is exponential from lo to hi with jitter in [d/2, d], so
// connectors that failed together do not retry in lockstep.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// estimateSize approximates an event's JSON size without encoding it.
func estimateSize(e *event.Event) int {
	n := 200 + len(e.ID) + len(e.ProjectID) + len(e.UserID) + len(e.Action) + len(e.ActorID) +
		len(e.Device) + len(e.Method) + len(e.Geo) + len(e.RemoteAddress) + len(e.Data)
	for _, s := range e.LoginIDs {
		n += len(s) + 3
	}
	for _, s := range e.Tenants {
		n += len(s) + 3
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
