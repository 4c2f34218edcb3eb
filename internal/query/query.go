// Package query turns search options into one resolved Query that every
// storage backend executes, and holds the reference semantics (Match, Less)
// that backends and the conformance suite are checked against.
package query

import (
	"slices"
	"strings"

	"github.com/audittrail/audittrail/internal/event"
)

// Limits of one search, from the Descope contract.
const (
	DefaultSize = 1000
	MaxSize     = 1000
	// MaxOffset bounds page*size so that a hostile deep page cannot make a
	// backend rank millions of rows.
	MaxOffset = 1_000_000
	MaxValues = 1000 // entries in one filter list
)

// Query is a fully resolved search: scope from the caller's key, filters
// from the request, time bounds already clamped to the search window.
// Empty lists mean "no filter on this field".
type Query struct {
	CompanyID string
	// ProjectID is the caller's project; project-level events of other
	// projects are never returned.
	ProjectID string
	// IncludeProject and IncludeCompany select the levels searched; at least
	// one is true.
	IncludeProject bool
	IncludeCompany bool

	UserIDs         []string
	Actions         []string
	ExcludedActions []string
	ActorIDs        []string
	Devices         []string
	Methods         []string
	Geos            []string
	RemoteAddresses []string
	LoginIDs        []string
	Tenants         []string
	// NoTenants adds events without any tenant to those matched by Tenants;
	// with Tenants empty it selects only events without a tenant.
	NoTenants bool
	// Types matches events of any of these types (info, warn, error); the
	// console's histogram stacks its bars with it.
	Types []string
	// ChangedFields matches events whose data.Change has any of these keys.
	ChangedFields []string
	// TextTokens must each be a prefix of some token of the event. Build it
	// with TextTokens(text).
	TextTokens []string

	// From and To bound Occurred (epoch ms), both inclusive; 0 means unset.
	From, To int64

	Page, Size  int
	OldestFirst bool
}

// TextTokens tokenises a free-text query: split on white space, each word
// tokenised like event text. Duplicates are dropped.
func TextTokens(text string) []string {
	var out []string
	for _, w := range strings.Fields(text) {
		event.Tokenize(w, func(tok string) {
			if !slices.Contains(out, tok) {
				out = append(out, tok)
			}
		})
	}
	return out
}

// Offset is the index of the first row of the requested page.
func (q *Query) Offset() int { return q.Page * q.Size }

// Match is the reference predicate: true when e is in scope and passes
// every filter. Backends must return exactly the events Match accepts.
func (q *Query) Match(e *event.Event) bool {
	if e.CompanyID != q.CompanyID {
		return false
	}
	switch e.Level {
	case event.LevelProject:
		if !q.IncludeProject || e.ProjectID != q.ProjectID {
			return false
		}
	case event.LevelCompany:
		if !q.IncludeCompany {
			return false
		}
	default:
		return false
	}
	if q.From > 0 && e.Occurred < q.From {
		return false
	}
	if q.To > 0 && e.Occurred > q.To {
		return false
	}
	if !anyOf(q.UserIDs, e.UserID) || !anyOf(q.Actions, e.Action) || !anyOf(q.ActorIDs, e.ActorID) ||
		!anyOf(q.Devices, e.Device) || !anyOf(q.Methods, e.Method) || !anyOf(q.Geos, e.Geo) ||
		!anyOf(q.RemoteAddresses, e.RemoteAddress) || !anyOf(q.Types, e.Type) {
		return false
	}
	if slices.Contains(q.ExcludedActions, e.Action) {
		return false
	}
	if len(q.LoginIDs) > 0 && !intersects(q.LoginIDs, e.LoginIDs) {
		return false
	}
	if len(q.Tenants) > 0 || q.NoTenants {
		ok := (q.NoTenants && len(e.Tenants) == 0) || intersects(q.Tenants, e.Tenants)
		if !ok {
			return false
		}
	}
	if len(q.ChangedFields) > 0 && !intersects(q.ChangedFields, e.ChangedFields()) {
		return false
	}
	if len(q.TextTokens) > 0 {
		toks := e.Tokens()
		for _, want := range q.TextTokens {
			if !slices.ContainsFunc(toks, func(t string) bool { return strings.HasPrefix(t, want) }) {
				return false
			}
		}
	}
	return true
}

// Less orders results: newest first by Occurred, ties broken by the later
// ingest (higher Seq) first; OldestFirst reverses both.
func (q *Query) Less(a, b *event.Event) bool {
	if a.Occurred != b.Occurred {
		return (a.Occurred > b.Occurred) != q.OldestFirst
	}
	return (a.Seq > b.Seq) != q.OldestFirst
}

func anyOf(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, v)
}

func intersects(a, b []string) bool {
	for _, x := range b {
		if slices.Contains(a, x) {
			return true
		}
	}
	return false
}
