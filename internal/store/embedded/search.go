package embedded

import (
	"context"
	"slices"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// Search implements store.Store.
func (e *Engine) Search(ctx context.Context, q query.Query) (store.Result, error) {
	if err := e.checkOpen(); err != nil {
		return store.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Result{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	var matches []*event.Event
	for i := range e.mem.rows {
		row := &e.mem.rows[i]
		if !row.deleted && q.Match(&row.ev) {
			matches = append(matches, &row.ev)
		}
	}
	slices.SortFunc(matches, func(a, b *event.Event) int {
		switch {
		case q.Less(a, b):
			return -1
		case q.Less(b, a):
			return 1
		}
		return 0
	})
	res := store.Result{Total: len(matches)}
	off := q.Offset()
	if off < 0 || q.Size <= 0 || off >= len(matches) {
		return res, nil
	}
	page := matches[off:min(off+q.Size, len(matches))]
	res.Events = make([]event.Event, len(page))
	for i, ev := range page {
		res.Events[i] = cloneEvent(ev)
	}
	return res, nil
}

// Get implements store.Store.
func (e *Engine) Get(ctx context.Context, companyID, id string) (event.Event, error) {
	if err := e.checkOpen(); err != nil {
		return event.Event{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	ev, ok := e.mem.get(companyID, id)
	if !ok {
		return event.Event{}, store.ErrNotFound
	}
	return cloneEvent(ev), nil
}

// ReadFrom implements store.Store. Events become visible only after their
// whole group is fsynced and in Seq order, so no smaller Seq can appear
// later.
func (e *Engine) ReadFrom(ctx context.Context, after uint64, limit int) ([]event.Event, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []event.Event
	for i := e.mem.firstAfter(after); i < len(e.mem.rows) && len(out) < limit; i++ {
		if row := &e.mem.rows[i]; !row.deleted {
			out = append(out, cloneEvent(&row.ev))
		}
	}
	return out, nil
}
