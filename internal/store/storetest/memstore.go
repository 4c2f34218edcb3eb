package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// MemStore is the reference store: query.Match over every event, kept in
// memory. It is slow by design (every search scans everything) and exists
// to prove the suite passable and to stand in for a store in other
// packages' unit tests. It is safe for concurrent use.
type MemStore struct {
	data   *memData
	mu     sync.Mutex
	closed bool
}

type memData struct {
	mu      sync.RWMutex
	lastSeq uint64
	events  []event.Event                  // ascending Seq
	byID    map[string]map[string]struct{} // company → ids present
}

var _ store.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{data: &memData{byID: map[string]map[string]struct{}{}}}
}

// Reopen returns a new handle over the same events, as if the process had
// restarted; the receiver may be closed or not.
func (m *MemStore) Reopen() *MemStore { return &MemStore{data: m.data} }

func (m *MemStore) check(ctx context.Context) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

func (m *MemStore) Append(ctx context.Context, events []event.Event) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	d := m.data
	d.mu.Lock()
	defer d.mu.Unlock()
	batch := map[string]map[string]struct{}{}
	for i := range events {
		e := &events[i]
		e.Seq = 0
		if _, dup := d.byID[e.CompanyID][e.ID]; dup {
			continue
		}
		if _, dup := batch[e.CompanyID][e.ID]; dup {
			continue
		}
		if batch[e.CompanyID] == nil {
			batch[e.CompanyID] = map[string]struct{}{}
		}
		batch[e.CompanyID][e.ID] = struct{}{}
		d.lastSeq++
		e.Seq = d.lastSeq
		d.events = append(d.events, cloneEvent(*e))
	}
	for c, ids := range batch {
		if d.byID[c] == nil {
			d.byID[c] = map[string]struct{}{}
		}
		for id := range ids {
			d.byID[c][id] = struct{}{}
		}
	}
	return nil
}

func (m *MemStore) Search(ctx context.Context, q query.Query) (store.Result, error) {
	if err := m.check(ctx); err != nil {
		return store.Result{}, err
	}
	m.data.mu.RLock()
	var hits []event.Event
	for i := range m.data.events {
		if q.Match(&m.data.events[i]) {
			hits = append(hits, cloneEvent(m.data.events[i]))
		}
	}
	m.data.mu.RUnlock()
	return Page(q, hits), nil
}

// Page sorts matches by q.Less and cuts out the page q asks for: the
// reference for ordering and paging.
func Page(q query.Query, matches []event.Event) store.Result {
	slices.SortFunc(matches, func(a, b event.Event) int {
		switch {
		case q.Less(&a, &b):
			return -1
		case q.Less(&b, &a):
			return 1
		}
		return 0
	})
	res := store.Result{Total: len(matches)}
	if off := q.Offset(); off < len(matches) {
		res.Events = matches[off:min(len(matches), off+q.Size)]
	}
	return res
}

func (m *MemStore) Get(ctx context.Context, companyID, id string) (event.Event, error) {
	if err := m.check(ctx); err != nil {
		return event.Event{}, err
	}
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	for i := range m.data.events {
		if e := &m.data.events[i]; e.CompanyID == companyID && e.ID == id {
			return cloneEvent(*e), nil
		}
	}
	return event.Event{}, store.ErrNotFound
}

func (m *MemStore) ReadFrom(ctx context.Context, after uint64, limit int) ([]event.Event, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	m.data.mu.RLock()
	defer m.data.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(m.data.events, after+1, func(e event.Event, seq uint64) int {
		switch {
		case e.Seq < seq:
			return -1
		case e.Seq > seq:
			return 1
		}
		return 0
	})
	var out []event.Event
	for ; i < len(m.data.events) && len(out) < limit; i++ {
		out = append(out, cloneEvent(m.data.events[i]))
	}
	return out, nil
}

func (m *MemStore) DeleteBefore(ctx context.Context, companyID string, before int64) (int64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	d := m.data
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	d.events = slices.DeleteFunc(d.events, func(e event.Event) bool {
		if e.CompanyID == companyID && e.Occurred < before {
			delete(d.byID[companyID], e.ID)
			n++
			return true
		}
		return false
	})
	return n, nil
}

func (m *MemStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return store.ErrClosed
	}
	m.closed = true
	return nil
}

func cloneEvent(e event.Event) event.Event {
	e.LoginIDs = slices.Clone(e.LoginIDs)
	e.Tenants = slices.Clone(e.Tenants)
	e.Data = json.RawMessage(slices.Clone([]byte(e.Data)))
	return e
}
