// Package storetest is the conformance suite every store.Store backend must
// pass, the reference in-memory store it is proven against, and a
// deterministic generator of realistic events for any test that needs some.
//
// A backend's test calls Run with a factory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) *storetest.Harness {
//			dir := t.TempDir()
//			s := mustOpen(t, dir)
//			return &storetest.Harness{Store: s, Reopen: func(t *testing.T) store.Store { return mustOpen(t, dir) }}
//		})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// Harness is one fresh, empty store under test.
type Harness struct {
	Store store.Store
	// Reopen opens a new store over the data of Store, which the suite has
	// already closed (so Close is exercised as the path to durability). It
	// may call t.Fatal. nil means the backend keeps nothing across Close;
	// the suite then skips what needs it, and the backend is not durable.
	Reopen func(t *testing.T) store.Store
}

// Run runs every conformance subtest. newStore is called once per subtest
// and must return a store holding no event; it should register cleanup of
// whatever it creates (t.TempDir, a dropped schema). The suite closes the
// last store it used at the end of each subtest and ignores ErrClosed.
func Run(t *testing.T, newStore func(t *testing.T) *Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"AppendCopies", testAppendCopies},
		{"SeqIncreasing", testSeqIncreasing},
		{"Dedupe", testDedupe},
		{"GetNotFound", testGetNotFound},
		{"Isolation", testIsolation},
		{"Filters", testFilters},
		{"Ordering", testOrdering},
		{"Paging", testPaging},
		{"Differential", testDifferential},
		{"ReadAfterAck", testReadAfterAck},
		{"ReadFrom", testReadFrom},
		{"ReadFromConcurrent", testReadFromConcurrent},
		{"DeleteBefore", testDeleteBefore},
		{"Closed", testClosed},
		{"CancelledAppend", testCancelledAppend},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hs := newStore(t)
			if hs == nil || hs.Store == nil {
				t.Fatal("storetest: factory returned no store")
			}
			h := &harness{Harness: hs}
			t.Cleanup(func() {
				if err := h.Store.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, h)
		})
	}
}

type harness struct{ *Harness }

// reopen closes the store and opens it again over the same data; it
// reports false (and the caller skips its reopen checks) when the backend
// cannot reopen.
func (h *harness) reopen(t *testing.T) bool {
	t.Helper()
	if h.Reopen == nil {
		t.Log("no Reopen: durability across restart not checked")
		return false
	}
	if err := h.Store.Close(); err != nil {
		t.Fatalf("Close before reopen: %v", err)
	}
	h.Store = h.Reopen(t)
	if h.Store == nil {
		t.Fatal("Reopen returned nil")
	}
	return true
}

// fixedEnd is the newest Occurred of suite data: a fixed instant, so that a
// seed printed by a failure reproduces the same events.
const fixedEnd = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z

const day = int64(24 * 60 * 60 * 1000)

func appendOK(t *testing.T, s store.Store, evs []event.Event) {
	t.Helper()
	if err := s.Append(t.Context(), evs); err != nil {
		t.Fatalf("Append(%d events): %v", len(evs), err)
	}
}

func search(t *testing.T, s store.Store, q query.Query) store.Result {
	t.Helper()
	res, err := s.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search(%s): %v", describe(q), err)
	}
	return res
}

// scope is a query over one company and project, both levels, one page of
// the maximum size.
func scope(company, project string) query.Query {
	return query.Query{CompanyID: company, ProjectID: project, IncludeProject: true, IncludeCompany: true, Size: query.MaxSize}
}

// expect compares a search against the reference: Match over all, sorted by
// Less, paged. all must carry the Seq each event was stored with.
func expect(t *testing.T, s store.Store, q query.Query, all []event.Event) {
	t.Helper()
	var hits []event.Event
	for i := range all {
		if all[i].Seq != 0 && q.Match(&all[i]) {
			hits = append(hits, all[i])
		}
	}
	want := Page(q, hits)
	got := search(t, s, q)
	if msg := diffResults(got, want); msg != "" {
		t.Fatalf("Search(%s): %s", describe(q), msg)
	}
}

func diffResults(got, want store.Result) string {
	if got.Total != want.Total {
		return fmt.Sprintf("Total = %d, want %d", got.Total, want.Total)
	}
	if len(got.Events) != len(want.Events) {
		return fmt.Sprintf("page has %d events, want %d (got %v, want %v)", len(got.Events), len(want.Events), ids(got.Events), ids(want.Events))
	}
	for i := range got.Events {
		if d := diffEvent(&got.Events[i], &want.Events[i]); d != "" {
			return fmt.Sprintf("event %d: %s (got order %v, want %v)", i, d, ids(got.Events), ids(want.Events))
		}
	}
	return ""
}

// diffEvent reports the first difference between two events: every field
// exactly, except that nil and empty lists are the same and data is
// compared as JSON values (key order and spacing may change in storage).
func diffEvent(got, want *event.Event) string {
	type field struct {
		name      string
		got, want any
	}
	norm := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	for _, f := range []field{
		{"ID", got.ID, want.ID}, {"CompanyID", got.CompanyID, want.CompanyID},
		{"ProjectID", got.ProjectID, want.ProjectID}, {"Level", got.Level, want.Level},
		{"UserID", got.UserID, want.UserID}, {"Action", got.Action, want.Action},
		{"Type", got.Type, want.Type}, {"ActorID", got.ActorID, want.ActorID},
		{"Occurred", got.Occurred, want.Occurred}, {"Device", got.Device, want.Device},
		{"Method", got.Method, want.Method}, {"Geo", got.Geo, want.Geo},
		{"RemoteAddress", got.RemoteAddress, want.RemoteAddress},
		{"LoginIDs", norm(got.LoginIDs), norm(want.LoginIDs)},
		{"Tenants", norm(got.Tenants), norm(want.Tenants)},
		{"Seq", got.Seq, want.Seq},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			return fmt.Sprintf("%s %s = %#v, want %#v", want.ID, f.name, f.got, f.want)
		}
	}
	if !sameJSON(got.Data, want.Data) {
		return fmt.Sprintf("%s Data = %s, want %s", want.ID, got.Data, want.Data)
	}
	return ""
}

func sameJSON(a, b json.RawMessage) bool {
	decode := func(r json.RawMessage) (any, bool) {
		if len(strings.TrimSpace(string(r))) == 0 {
			return nil, true
		}
		var v any
		return v, json.Unmarshal(r, &v) == nil
	}
	va, oka := decode(a)
	vb, okb := decode(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}

func ids(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].ID
	}
	return out
}

// wantIDs checks the set of IDs a search returns, in any order, and Total.
func wantIDs(t *testing.T, s store.Store, q query.Query, want ...string) {
	t.Helper()
	res := search(t, s, q)
	got := ids(res.Events)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) || res.Total != len(want) {
		t.Errorf("Search(%s) = %v (Total %d), want %v", describe(q), got, res.Total, want)
	}
}

// describe prints the parts of a query that are set, for failure messages.
func describe(q query.Query) string {
	var b strings.Builder
	fmt.Fprintf(&b, "company=%q project=%q", q.CompanyID, q.ProjectID)
	if !q.IncludeProject || !q.IncludeCompany {
		fmt.Fprintf(&b, " project-level=%v company-level=%v", q.IncludeProject, q.IncludeCompany)
	}
	for _, l := range []struct {
		name string
		v    []string
	}{
		{"userIds", q.UserIDs}, {"actions", q.Actions}, {"excludedActions", q.ExcludedActions},
		{"actorIds", q.ActorIDs}, {"devices", q.Devices}, {"methods", q.Methods}, {"geos", q.Geos},
		{"remoteAddresses", q.RemoteAddresses}, {"loginIds", q.LoginIDs}, {"tenants", q.Tenants},
		{"changedFields", q.ChangedFields}, {"types", q.Types}, {"text", q.TextTokens},
	} {
		if len(l.v) > 0 {
			fmt.Fprintf(&b, " %s=%q", l.name, l.v)
		}
	}
	if q.NoTenants {
		b.WriteString(" noTenants")
	}
	if q.From != 0 || q.To != 0 {
		fmt.Fprintf(&b, " from=%d to=%d", q.From, q.To)
	}
	if q.OldestFirst {
		b.WriteString(" oldestFirst")
	}
	fmt.Fprintf(&b, " page=%d size=%d", q.Page, q.Size)
	return b.String()
}

func mustGet(t *testing.T, s store.Store, company, id string) event.Event {
	t.Helper()
	e, err := s.Get(t.Context(), company, id)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", company, id, err)
	}
	return e
}

// readAll drains ReadFrom from after, checking ascending Seq.
func readAll(t *testing.T, s store.Store, after uint64) []event.Event {
	t.Helper()
	var out []event.Event
	for {
		page, err := s.ReadFrom(t.Context(), after, 500)
		if err != nil {
			t.Fatalf("ReadFrom(%d): %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		for i := range page {
			if page[i].Seq <= after {
				t.Fatalf("ReadFrom: Seq %d after %d: not ascending", page[i].Seq, after)
			}
			after = page[i].Seq
		}
		out = append(out, page...)
	}
}

func stored(evs []event.Event) []event.Event {
	var out []event.Event
	for _, e := range evs {
		if e.Seq != 0 {
			out = append(out, e)
		}
	}
	return out
}

// cancelledContext returns a context that is already cancelled.
func cancelledContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// contextCancelledSoon returns a context cancelled after attempt × 150µs,
// so that successive attempts interrupt an Append at different points.
func contextCancelledSoon(t *testing.T, attempt int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(time.Duration(attempt)*150*time.Microsecond, cancel)
	return ctx, cancel
}
