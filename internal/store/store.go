// Package store defines the seam between the service and its event storage
// backends (embedded engine, PostgreSQL). Every backend passes the suite in
// store/storetest.
package store

import (
	"context"
	"errors"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

var (
	// ErrNotFound: no event with that id in that company.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable wraps failures the caller may retry later (database
	// down, disk full); the API answers 503.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrCorrupt: stored data failed its checksum; never served silently.
	ErrCorrupt = errors.New("store: corrupt data")
)

// Result is one page of a search and the exact count of all matches.
type Result struct {
	Events []event.Event
	Total  int
}

// Store keeps events durably and searches them.
type Store interface {
	// Append stores the events and returns only once they are durable
	// (fsynced or committed). Every event must be valid, with ID and
	// CompanyID set. An event whose (CompanyID, ID) is already stored, or
	// repeats an earlier one of the same batch, is skipped: its Seq is left
	// 0. Stored events get their Seq set in events[i]. A batch is all or
	// nothing: on error none of it is visible, then or after a restart.
	Append(ctx context.Context, events []event.Event) error
	// Search returns the page q asks for, ordered by q.Less, and the exact
	// number of events q.Match accepts. Every event whose Append returned
	// before Search was called is seen.
	Search(ctx context.Context, q query.Query) (Result, error)
	// Get returns one event by id, or ErrNotFound.
	Get(ctx context.Context, companyID, id string) (event.Event, error)
	// ReadFrom returns up to limit events with Seq > after, in ascending Seq
	// order, across all companies. A reader that remembers the last Seq it
	// saw never misses an event, even one committed later with a smaller Seq
	// by a concurrent writer: backends only expose a Seq once every smaller
	// one is committed or abandoned.
	ReadFrom(ctx context.Context, after uint64, limit int) ([]event.Event, error)
	// DeleteBefore removes the company's events with Occurred < before (epoch
	// ms) and returns how many went. Backends may keep up to one partition
	// (a day) longer than asked, never less.
	DeleteBefore(ctx context.Context, companyID string, before int64) (int64, error)
	// Close flushes and releases everything; later calls get ErrClosed.
	Close() error
}
