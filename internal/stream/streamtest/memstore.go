// Package streamtest holds what the stream engine's and the destinations'
// tests share: an in-memory store.Store that honours the ReadFrom contract,
// event generators, and an HTTP receiver that can simulate outages.
package streamtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// MemStore keeps events in memory in Seq order. It is for tests only: it
// holds everything and its Search is a linear scan.
type MemStore struct {
	mu     sync.RWMutex
	events []event.Event // ascending Seq
	ids    map[string]bool
	seq    uint64
	closed bool
	// ReadDelay, when set, slows every ReadFrom, to show ingest does not wait
	// for readers.
	ReadDelay time.Duration
}

var _ store.Store = (*MemStore)(nil)

func NewMemStore() *MemStore { return &MemStore{ids: map[string]bool{}} }

func (s *MemStore) Append(_ context.Context, evs []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	for i := range evs {
		if evs[i].ID == "" || evs[i].CompanyID == "" {
			return fmt.Errorf("memstore: event %d lacks id or company", i)
		}
		if err := evs[i].Validate(); err != nil {
			return fmt.Errorf("memstore: event %d: %w", i, err)
		}
	}
	for i := range evs {
		key := evs[i].CompanyID + "\x00" + evs[i].ID
		if s.ids[key] {
			evs[i].Seq = 0
			continue
		}
		s.ids[key] = true
		s.seq++
		evs[i].Seq = s.seq
		s.events = append(s.events, evs[i])
	}
	return nil
}

func (s *MemStore) Search(_ context.Context, q query.Query) (store.Result, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.Result{}, store.ErrClosed
	}
	var hits []event.Event
	for i := range s.events {
		if q.Match(&s.events[i]) {
			hits = append(hits, s.events[i])
		}
	}
	slices.SortFunc(hits, func(a, b event.Event) int {
		switch {
		case q.Less(&a, &b):
			return -1
		case q.Less(&b, &a):
			return 1
		}
		return 0
	})
	total := len(hits)
	off := min(q.Offset(), total)
	end := min(off+q.Size, total)
	return store.Result{Events: hits[off:end], Total: total}, nil
}

func (s *MemStore) Get(_ context.Context, companyID, id string) (event.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.events {
		if e.CompanyID == companyID && e.ID == id {
			return e, nil
		}
	}
	return event.Event{}, store.ErrNotFound
}

func (s *MemStore) ReadFrom(ctx context.Context, after uint64, limit int) ([]event.Event, error) {
	if s.ReadDelay > 0 {
		select {
		case <-time.After(s.ReadDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	i, _ := slices.BinarySearchFunc(s.events, after+1, func(e event.Event, seq uint64) int {
		switch {
		case e.Seq < seq:
			return -1
		case e.Seq > seq:
			return 1
		}
		return 0
	})
	end := min(i+limit, len(s.events))
	return slices.Clone(s.events[i:end]), nil
}

func (s *MemStore) DeleteBefore(_ context.Context, companyID string, before int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	s.events = slices.DeleteFunc(s.events, func(e event.Event) bool {
		if e.CompanyID == companyID && e.Occurred < before {
			n++
			return true
		}
		return false
	})
	return n, nil
}

func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Events returns n valid project-level events of company and project, with
// ids prefix-0001… and occurred times one millisecond apart ending now.
func Events(company, project, prefix string, n int) []event.Event {
	now := time.Now().UnixMilli()
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{
			ID:            fmt.Sprintf("%s-%06d", prefix, i),
			CompanyID:     company,
			ProjectID:     project,
			Level:         event.LevelProject,
			UserID:        fmt.Sprintf("U%d", i),
			Action:        "LoginSucceed",
			Type:          event.TypeInfo,
			ActorID:       "actor",
			Occurred:      now - int64(n-i),
			Device:        "Desktop",
			Method:        "otp",
			Geo:           "US",
			RemoteAddress: "203.0.113.7",
			LoginIDs:      []string{fmt.Sprintf("user%d@example.com", i)},
			Tenants:       []string{"t1"},
			Data:          []byte(fmt.Sprintf(`{"n":%d,"email":"user%d@example.com"}`, i, i)),
		}
	}
	return evs
}

// Mixed makes n valid events numbered from `from` (ids ev-NNNNNN, Seq
// from+1…), step apart from 2025-10-09T20:00:00Z, interleaving project P1
// (info, LoginSucceed), project P2 (warn, LoginFailed) and the company
// level (error, ProjectDeleted), with a login ID and data holding quotes
// and brackets: what a destination's tests need to see subjects, keys,
// directories and severities differ.
func Mixed(from, n int, step time.Duration) []event.Event {
	base := time.Date(2025, 10, 9, 20, 0, 0, 0, time.UTC)
	out := make([]event.Event, n)
	for i := range out {
		seq := from + i
		e := event.Event{
			ID:       fmt.Sprintf("ev-%06d", seq),
			Level:    event.LevelProject,
			Action:   "LoginSucceed",
			Type:     event.TypeInfo,
			UserID:   fmt.Sprintf("U%d", seq%7),
			Occurred: base.Add(time.Duration(seq) * step).UnixMilli(),
			LoginIDs: []string{fmt.Sprintf("user%d@example.com", seq%7)},
			Data:     []byte(fmt.Sprintf(`{"n":%d,"note":"quote \" and ] and \\ survive"}`, seq)),
			Seq:      uint64(seq + 1),
		}
		switch seq % 3 {
		case 0:
			e.ProjectID = "P1"
		case 1:
			e.ProjectID = "P2"
			e.Type, e.Action = event.TypeWarn, "LoginFailed"
		case 2:
			e.Level, e.Action, e.Type = event.LevelCompany, "ProjectDeleted", event.TypeError
		}
		out[i] = e
	}
	return out
}

// IDs lists the ids of evs.
func IDs(evs []event.Event) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	return ids
}
