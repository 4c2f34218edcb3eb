// Package ledger makes the audit trail tamper-evident: every project's
// events (and every company's company-level events) are the leaves of an
// RFC 6962 Merkle tree in ingest order; signed checkpoints commit to each
// tree's size and root; inclusion and consistency proofs let anyone check,
// without trusting the server, that an event is in the trail and that the
// trail only ever grew. The design is in docs/tamper-evidence.md.
package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// Options configures a Ledger. Store and Trees are required; Signer and
// VerifierKey are required for checkpoints.
type Options struct {
	Store store.Store
	Trees TreeStore
	// Signer signs checkpoints; VerifierKey is its public half, published.
	Signer      note.Signer
	VerifierKey string
	// OriginPrefix starts every checkpoint's origin line (DefaultOriginPrefix).
	OriginPrefix string
	// CheckpointInterval: how often grown trees get a signed checkpoint
	// (1 s by default; negative disables the periodic ones).
	CheckpointInterval time.Duration
	// Lease: only its holder appends and signs periodic checkpoints
	// (LocalLease by default).
	Lease Lease
	// ReadLimit bounds the events one commit takes from the store (4096).
	ReadLimit int
	// PollInterval: how often the appender looks for events when nobody
	// calls Notify (200 ms).
	PollInterval time.Duration
	// RetryInterval: the wait after a failed read or commit (1 s).
	RetryInterval time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

func (o *Options) setDefaults() {
	if o.OriginPrefix == "" {
		o.OriginPrefix = DefaultOriginPrefix
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = time.Second
	}
	if o.Lease == nil {
		o.Lease = LocalLease{}
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 4096
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Ledger appends events to their trees, signs checkpoints and serves
// proofs. Reads go to the TreeStore, so every instance of a fleet serves
// proofs while only the lease holder appends.
type Ledger struct {
	opts Options
	log  *slog.Logger

	wake     chan struct{}
	position atomic.Uint64 // committed position as last seen by this instance

	// progress is closed and replaced after every commit (Sync waits on it).
	progressMu sync.Mutex
	progress   chan struct{}

	// cpMu serialises checkpoint signing so each tree's history ascends.
	cpMu  sync.Mutex
	grown grownTrees

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

// New checks the options; Start begins appending.
func New(opts Options) (*Ledger, error) {
	opts.setDefaults()
	if opts.Store == nil || opts.Trees == nil {
		return nil, errors.New("ledger: Options.Store and Options.Trees are required")
	}
	if opts.Signer != nil && opts.VerifierKey == "" {
		return nil, errors.New("ledger: Options.VerifierKey is required with a Signer")
	}
	l := &Ledger{opts: opts, log: opts.Logger.With("component", "ledger"), wake: make(chan struct{}, 1), progress: make(chan struct{})}
	return l, nil
}

// Start runs the appender and the checkpoint signer in the background
// until Close.
func (l *Ledger) Start() {
	l.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		l.cancel, l.done = cancel, make(chan struct{})
		go func() {
			defer close(l.done)
			l.run(ctx)
		}()
	})
}

// Close stops the background work and waits for it. It does not close the
// TreeStore or the Store.
func (l *Ledger) Close() error {
	l.startOnce.Do(func() {}) // a Close before Start keeps Start from running
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	return nil
}

// Notify tells the appender that events were stored. It never blocks.
func (l *Ledger) Notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Position is the store Seq up to which events are in their trees, as this
// instance last saw it committed.
func (l *Ledger) Position() uint64 { return l.position.Load() }

// VerifierKey is the key that verifies this deployment's checkpoints.
func (l *Ledger) VerifierKey() string { return l.opts.VerifierKey }

// Origin is the origin line of t's checkpoints.
func (l *Ledger) Origin(t TreeID) string { return Origin(l.opts.OriginPrefix, t) }

func (l *Ledger) run(ctx context.Context) {
	for ctx.Err() == nil {
		held, err := l.opts.Lease.Acquire(ctx, LeaseName)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("acquire ledger lease", "err", err)
				sleep(ctx, l.opts.RetryInterval)
			}
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-held.Lost():
				l.log.Warn("ledger lease lost; appending stops until it is acquired again")
				cancel()
			case <-lctx.Done():
			}
		}()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.checkpointLoop(lctx)
		}()
		for lctx.Err() == nil {
			// appendLoop returns after a failure; it reloads everything from
			// the TreeStore, which holds the truth after a partial failure.
			if err := l.appendLoop(lctx); err != nil && lctx.Err() == nil {
				l.log.Error("ledger append", "err", err)
				sleep(lctx, l.opts.RetryInterval)
			}
		}
		cancel()
		wg.Wait()
		held.Release()
	}
}

// memTree is the appender's in-memory view of one tree: its compact range
// (the peaks), enough to append and to compute the root.
type memTree struct {
	rng *compact.Range
}

// appendLoop follows the store from the committed position, turning each
// page of events into one Commit.
func (l *Ledger) appendLoop(ctx context.Context) error {
	pos, err := l.opts.Trees.Position(ctx)
	if err != nil {
		return fmt.Errorf("load position: %w", err)
	}
	l.setPosition(pos)
	trees := map[TreeID]*memTree{}
	for ctx.Err() == nil {
		evs, err := l.opts.Store.ReadFrom(ctx, pos, l.opts.ReadLimit)
		if err != nil {
			return fmt.Errorf("read from store after %d: %w", pos, err)
		}
		if len(evs) == 0 {
			l.waitWake(ctx)
			continue
		}
		c, err := l.buildCommit(ctx, trees, pos, evs)
		if err != nil {
			return err
		}
		if err := l.opts.Trees.Commit(ctx, c); err != nil {
			return fmt.Errorf("commit up to seq %d: %w", c.Position, err)
		}
		pos = c.Position
		l.setPosition(pos)
		l.markGrown(c)
	}
	return nil
}

// buildCommit appends evs to the in-memory trees and collects what the
// TreeStore must persist. On error the caller discards trees.
func (l *Ledger) buildCommit(ctx context.Context, trees map[TreeID]*memTree, after uint64, evs []event.Event) (Commit, error) {
	c := Commit{After: after, Position: evs[len(evs)-1].Seq}
	appends := map[TreeID]*TreeAppend{}
	var order []TreeID
	for i := range evs {
		e := &evs[i]
		t := TreeOf(e)
		mt, ok := trees[t]
		if !ok {
			var err error
			if mt, err = l.loadTree(ctx, t); err != nil {
				return Commit{}, err
			}
			trees[t] = mt
		}
		ta := appends[t]
		if ta == nil {
			ta = &TreeAppend{Tree: t, OldSize: mt.rng.End()}
			appends[t] = ta
			order = append(order, t)
		}
		leaf, err := EventLeafHash(e)
		if err != nil {
			// Stored events passed validation, so this is damage: stop here
			// rather than leave a hole in the tree.
			return Commit{}, fmt.Errorf("%w: event %s (seq %d): %v", ErrCorrupt, e.ID, e.Seq, err)
		}
		if err := mt.rng.Append(leaf, func(id compact.NodeID, h []byte) {
			ta.Nodes = append(ta.Nodes, Node{ID: id, Hash: h})
		}); err != nil {
			return Commit{}, err
		}
		ta.Seqs = append(ta.Seqs, e.Seq)
	}
	for _, t := range order {
		ta := appends[t]
		ta.NewSize = trees[t].rng.End()
		root, err := trees[t].rng.GetRootHash(nil)
		if err != nil {
			return Commit{}, err
		}
		ta.Root = root
		c.Trees = append(c.Trees, *ta)
	}
	return c, nil
}

// loadTree rebuilds a tree's compact range from its stored peaks:
// O(log n) node reads.
func (l *Ledger) loadTree(ctx context.Context, t TreeID) (*memTree, error) {
	ts, err := l.opts.Trees.Tree(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", t, err)
	}
	ids := compact.RangeNodes(0, ts.Size, nil)
	hashes, err := l.opts.Trees.Nodes(ctx, t, ids)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", t, err)
	}
	rng, err := rangeFactory.NewRange(0, ts.Size, hashes)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", t, err)
	}
	if ts.Size > 0 {
		root, _ := rng.GetRootHash(nil)
		if !bytes.Equal(root, ts.Root) {
			return nil, fmt.Errorf("%w: tree %s: peaks give root %x, committed root is %x", ErrCorrupt, t, root, ts.Root)
		}
	}
	return &memTree{rng: rng}, nil
}

func (l *Ledger) setPosition(pos uint64) {
	l.position.Store(pos)
	l.progressMu.Lock()
	close(l.progress)
	l.progress = make(chan struct{})
	l.progressMu.Unlock()
}

func (l *Ledger) progressed() <-chan struct{} {
	l.progressMu.Lock()
	defer l.progressMu.Unlock()
	return l.progress
}

func (l *Ledger) waitWake(ctx context.Context) {
	t := time.NewTimer(l.opts.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-l.wake:
	case <-t.C:
	}
}

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

// Sync returns once every event the store exposed when it was called is
// in its tree (appended by this instance or, in a fleet, by another).
func (l *Ledger) Sync(ctx context.Context) error {
	head, err := store.HeadSeq(ctx, l.opts.Store, l.Position())
	if err != nil {
		return fmt.Errorf("ledger sync: %w", err)
	}
	return l.WaitFor(ctx, head)
}

// WaitFor returns once every event with Seq <= seq is in its tree: what a
// stream batch whose last event has that Seq needs before its evidence.
func (l *Ledger) WaitFor(ctx context.Context, seq uint64) error {
	if l.Position() >= seq {
		return nil
	}
	l.Notify()
	for {
		ch := l.progressed()
		if l.Position() >= seq {
			return nil
		}
		pos, err := l.opts.Trees.Position(ctx)
		if err != nil {
			return fmt.Errorf("ledger wait: %w", err)
		}
		if pos > l.Position() {
			l.position.Store(pos)
		}
		if pos >= seq {
			return nil
		}
		// The event of Seq seq may be gone (deleted by retention, or never
		// committed) and so never appended: done when nothing up to seq is
		// left to read.
		next, err := l.opts.Store.ReadFrom(ctx, pos, 1)
		if err != nil {
			return fmt.Errorf("ledger wait: %w", err)
		}
		if len(next) == 0 || next[0].Seq > seq {
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// Trees lists the company's trees (all trees when companyID is empty).
func (l *Ledger) Trees(ctx context.Context, companyID string) ([]TreeState, error) {
	st, err := l.opts.Trees.Load(ctx)
	if err != nil {
		return nil, err
	}
	var out []TreeState
	for _, ts := range st.Trees {
		if companyID == "" || ts.Tree.CompanyID == companyID {
			out = append(out, ts)
		}
	}
	return out, nil
}

// Tree returns one tree's committed size and root (size 0 when it has no
// event yet).
func (l *Ledger) Tree(ctx context.Context, t TreeID) (TreeState, error) {
	return l.opts.Trees.Tree(ctx, t)
}

// Leaf locates an event in its tree.
type Leaf struct {
	Tree  TreeID `json:"tree"`
	Index uint64 `json:"index"`
	Hash  []byte `json:"leafHash"`
}

// Locate finds the leaf of the company's event id. ErrNotFound when the
// store has no such event; ErrNotYetAppended when the appender has not
// reached it.
func (l *Ledger) Locate(ctx context.Context, companyID, eventID string) (Leaf, error) {
	e, err := l.opts.Store.Get(ctx, companyID, eventID)
	if errors.Is(err, store.ErrNotFound) {
		return Leaf{}, fmt.Errorf("%w: event %q", ErrNotFound, eventID)
	}
	if err != nil {
		return Leaf{}, fmt.Errorf("locate event: %w", err)
	}
	return l.LocateEvent(ctx, &e)
}

// LocateEvent finds the leaf of an event read from the store (e.Seq set).
// The stored leaf hash is returned; if the event no longer hashes to it,
// the stored event was altered and the error wraps ErrVerify.
func (l *Ledger) LocateEvent(ctx context.Context, e *event.Event) (Leaf, error) {
	t := TreeOf(e)
	idx, err := l.opts.Trees.FindSeq(ctx, t, e.Seq)
	if errors.Is(err, ErrNotFound) {
		pos, perr := l.opts.Trees.Position(ctx)
		if perr == nil && e.Seq > pos {
			return Leaf{}, fmt.Errorf("%w: event %q (seq %d, appended up to %d)", ErrNotYetAppended, e.ID, e.Seq, pos)
		}
		return Leaf{}, fmt.Errorf("%w: event %q has no leaf in %s", ErrNotFound, e.ID, t)
	}
	if err != nil {
		return Leaf{}, err
	}
	hs, err := l.opts.Trees.Nodes(ctx, t, []compact.NodeID{compact.NewNodeID(0, idx)})
	if err != nil {
		return Leaf{}, err
	}
	leaf := Leaf{Tree: t, Index: idx, Hash: hs[0]}
	got, err := EventLeafHash(e)
	if err != nil || !bytes.Equal(got, leaf.Hash) {
		return leaf, fmt.Errorf("%w: stored event %q no longer hashes to leaf %d of %s", ErrVerify, e.ID, idx, t)
	}
	return leaf, nil
}

// checkSize refuses sizes beyond the committed tree.
func (l *Ledger) checkSize(ctx context.Context, t TreeID, sizes ...uint64) error {
	ts, err := l.opts.Trees.Tree(ctx, t)
	if err != nil {
		return err
	}
	for _, s := range sizes {
		if s > ts.Size {
			return fmt.Errorf("%w: size %d is beyond %s's committed size %d", ErrBadSize, s, t, ts.Size)
		}
	}
	return nil
}

// InclusionProof proves leaf index of t is in the tree of size.
func (l *Ledger) InclusionProof(ctx context.Context, t TreeID, index, size uint64) (InclusionProof, error) {
	if index >= size {
		return InclusionProof{}, fmt.Errorf("%w: index %d is not below size %d", ErrBadSize, index, size)
	}
	if err := l.checkSize(ctx, t, size); err != nil {
		return InclusionProof{}, err
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("%w: %v", ErrBadSize, err)
	}
	ids := append(append(make([]compact.NodeID, 0, len(nodes.IDs)+1), nodes.IDs...), compact.NewNodeID(0, index))
	hs, err := l.opts.Trees.Nodes(ctx, t, ids)
	if err != nil {
		return InclusionProof{}, err
	}
	leaf := hs[len(hs)-1]
	path, err := nodes.Rehash(hs[:len(hs)-1], hasher.HashChildren)
	if err != nil {
		return InclusionProof{}, err
	}
	return InclusionProof{Tree: t, Index: index, Size: size, LeafHash: leaf, Hashes: nonNil(path)}, nil
}

// ConsistencyProof proves the tree of size from is a prefix of the tree of
// size to.
func (l *Ledger) ConsistencyProof(ctx context.Context, t TreeID, from, to uint64) (ConsistencyProof, error) {
	if from > to {
		return ConsistencyProof{}, fmt.Errorf("%w: from %d is above to %d", ErrBadSize, from, to)
	}
	if err := l.checkSize(ctx, t, to); err != nil {
		return ConsistencyProof{}, err
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("%w: %v", ErrBadSize, err)
	}
	hs, err := l.opts.Trees.Nodes(ctx, t, nodes.IDs)
	if err != nil {
		return ConsistencyProof{}, err
	}
	path, err := nodes.Rehash(hs, hasher.HashChildren)
	if err != nil {
		return ConsistencyProof{}, err
	}
	return ConsistencyProof{Tree: t, From: from, To: to, Hashes: nonNil(path)}, nil
}

// nonNil makes an empty proof marshal as [] rather than null.
func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}
