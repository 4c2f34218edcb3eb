package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// grownTrees collects the trees that grew since the last periodic
// checkpoint, so a tick signs only those.
type grownTrees struct {
	mu    sync.Mutex
	trees map[TreeID]struct{}
}

func (l *Ledger) markGrown(c Commit) {
	l.grown.mu.Lock()
	defer l.grown.mu.Unlock()
	if l.grown.trees == nil {
		l.grown.trees = map[TreeID]struct{}{}
	}
	for _, ta := range c.Trees {
		l.grown.trees[ta.Tree] = struct{}{}
	}
}

func (l *Ledger) takeGrown() []TreeID {
	l.grown.mu.Lock()
	defer l.grown.mu.Unlock()
	out := make([]TreeID, 0, len(l.grown.trees))
	for t := range l.grown.trees {
		out = append(out, t)
	}
	l.grown.trees = nil
	return out
}

// checkpointLoop signs a checkpoint of every tree that grew, once per
// interval. At start it looks at every tree, so growth committed before a
// restart (or by a previous lease holder) gets signed too.
func (l *Ledger) checkpointLoop(ctx context.Context) {
	if l.opts.CheckpointInterval < 0 || l.opts.Signer == nil {
		return
	}
	if st, err := l.opts.Trees.Load(ctx); err == nil {
		l.grown.mu.Lock()
		if l.grown.trees == nil {
			l.grown.trees = map[TreeID]struct{}{}
		}
		for _, ts := range st.Trees {
			l.grown.trees[ts.Tree] = struct{}{}
		}
		l.grown.mu.Unlock()
	} else if ctx.Err() == nil {
		l.log.Warn("ledger checkpoints: load trees", "err", err)
	}
	tick := time.NewTicker(l.opts.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, t := range l.takeGrown() {
			if _, err := l.CheckpointNow(ctx, t); err != nil && ctx.Err() == nil {
				l.log.Warn("ledger checkpoint", "tree", t.String(), "err", err)
				l.markGrown(Commit{Trees: []TreeAppend{{Tree: t}}}) // retry next tick
			}
		}
	}
}

// CheckpointNow signs a checkpoint of t's current committed size, unless
// the latest one already covers it, and returns it.
func (l *Ledger) CheckpointNow(ctx context.Context, t TreeID) (Checkpoint, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	ts, err := l.opts.Trees.Tree(ctx, t)
	if err != nil {
		return Checkpoint{}, err
	}
	if ts.Size == 0 {
		return Checkpoint{}, fmt.Errorf("%w: tree %s has no event", ErrNotFound, t)
	}
	// Compare stored sizes, not parsed checkpoints: one this key cannot
	// verify (signed before a key change) must not stop new signing.
	latest, err := l.opts.Trees.LatestCheckpoint(ctx, t)
	switch {
	case err == nil && latest.Size >= ts.Size:
		return l.parseStored(t, latest)
	case err != nil && !errors.Is(err, ErrNotFound):
		return Checkpoint{}, err
	}
	if l.opts.Signer == nil {
		return Checkpoint{}, ErrNoSigner
	}
	cp, err := signCheckpoint(l.opts.Signer, l.Origin(t), t, ts.Size, ts.Root, l.opts.Now())
	if err != nil {
		return Checkpoint{}, err
	}
	err = l.opts.Trees.PutCheckpoint(ctx, t, StoredCheckpoint{Size: cp.Size, Note: cp.Note})
	if errors.Is(err, ErrConflict) {
		// Another instance signed a larger size meanwhile.
		return l.LatestCheckpoint(ctx, t)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
	}
	// Same size signed elsewhere first: serve the stored one, the history's.
	return l.CheckpointAt(ctx, t, cp.Size)
}

// parseStored verifies a stored checkpoint with our own key: a checkpoint
// altered at rest is never served as ours.
func (l *Ledger) parseStored(t TreeID, sc StoredCheckpoint) (Checkpoint, error) {
	if l.opts.VerifierKey == "" {
		return Checkpoint{}, ErrNoSigner
	}
	cp, err := VerifyCheckpoint(sc.Note, l.opts.VerifierKey, l.Origin(t))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: stored checkpoint of %s size %d: %v", ErrCorrupt, t, sc.Size, err)
	}
	if cp.Size != sc.Size {
		return Checkpoint{}, fmt.Errorf("%w: stored checkpoint of %s filed under size %d states %d", ErrCorrupt, t, sc.Size, cp.Size)
	}
	return cp, nil
}

// LatestCheckpoint returns t's newest signed checkpoint, or ErrNotFound.
func (l *Ledger) LatestCheckpoint(ctx context.Context, t TreeID) (Checkpoint, error) {
	sc, err := l.opts.Trees.LatestCheckpoint(ctx, t)
	if err != nil {
		return Checkpoint{}, err
	}
	return l.parseStored(t, sc)
}

// CheckpointAt returns t's checkpoint of exactly size, or ErrNotFound.
func (l *Ledger) CheckpointAt(ctx context.Context, t TreeID, size uint64) (Checkpoint, error) {
	sc, err := l.opts.Trees.Checkpoint(ctx, t, size)
	if err != nil {
		return Checkpoint{}, err
	}
	return l.parseStored(t, sc)
}

// Checkpoints returns up to limit of t's checkpoints with size >= from, in
// ascending size: the history a client walks with consistency proofs.
func (l *Ledger) Checkpoints(ctx context.Context, t TreeID, from uint64, limit int) ([]Checkpoint, error) {
	scs, err := l.opts.Trees.Checkpoints(ctx, t, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Checkpoint, 0, len(scs))
	for _, sc := range scs {
		cp, err := l.parseStored(t, sc)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, nil
}
