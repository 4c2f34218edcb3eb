package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

func testRoundTrip(t *testing.T, h *harness) {
	evs := Generate(1, 300, GenOptions{End: fixedEnd})
	// Edge values a generator rarely hits: the longest strings, an empty
	// data object, data with every JSON kind, a control character.
	long := strings.Repeat("é", event.MaxFieldLen/2)
	evs = append(evs,
		event.Event{ID: strings.Repeat("x", event.MaxIDLen), CompanyID: "c1", ProjectID: "P1", Level: event.LevelProject,
			Action: long, Type: event.TypeError, UserID: long, ActorID: "a\tb\nc", Occurred: 1, Device: "Desktop",
			LoginIDs: []string{"", "x"}, Tenants: []string{"t1"}, Data: json.RawMessage(`{}`)},
		event.Event{ID: "kinds", CompanyID: "c1", Level: event.LevelCompany, Action: "CompanySettingsModified",
			Type: event.TypeInfo, Occurred: fixedEnd,
			Data: json.RawMessage(`{"n":1.5,"big":12345678901,"neg":-3,"t":true,"f":false,"z":null,"a":[1,"two",{"3":[]}],"s":"quote \" and \\ and \u00e9 and \ud83d\ude00"}`)},
	)
	appendOK(t, h.Store, evs)
	for _, e := range evs {
		if e.Seq == 0 {
			t.Fatalf("event %s: Seq not assigned", e.ID)
		}
	}
	check := func(when string) {
		for i := range evs {
			got := mustGet(t, h.Store, evs[i].CompanyID, evs[i].ID)
			if d := diffEvent(&got, &evs[i]); d != "" {
				t.Fatalf("%s: Get: %s", when, d)
			}
		}
		// Every event of every scope comes back whole through Search too.
		for _, c := range []string{"c1", "c2"} {
			for _, p := range []string{"P1", "P2", "P3"} {
				expect(t, h.Store, scope(c, p), evs)
			}
		}
	}
	check("after append")
	if h.reopen(t) {
		check("after reopen")
	}
}

// testAppendCopies: the store must not keep the caller's slices, which the
// HTTP layer reuses.
func testAppendCopies(t *testing.T, h *harness) {
	evs := Generate(2, 5, GenOptions{End: fixedEnd, CompanyLevel: -1})
	evs[0].LoginIDs = []string{"keep@example.com"}
	evs[0].Tenants = []string{"keep"}
	evs[0].Data = json.RawMessage(`{"k":"keep"}`)
	want := evs[0]
	want.LoginIDs, want.Tenants, want.Data = slices.Clone(want.LoginIDs), slices.Clone(want.Tenants), slices.Clone(want.Data)
	appendOK(t, h.Store, evs)
	want.Seq = evs[0].Seq
	evs[0].LoginIDs[0] = "changed"
	evs[0].Tenants[0] = "changed"
	copy(evs[0].Data, `{"k":"XXXX"}`)
	got := mustGet(t, h.Store, want.CompanyID, want.ID)
	if d := diffEvent(&got, &want); d != "" {
		t.Fatalf("store aliases the caller's memory: %s", d)
	}
	got.LoginIDs[0] = "mutated"
	again := mustGet(t, h.Store, want.CompanyID, want.ID)
	if d := diffEvent(&again, &want); d != "" {
		t.Fatalf("Get returns the store's own memory: %s", d)
	}
}

func testSeqIncreasing(t *testing.T, h *harness) {
	evs := Generate(3, 400, GenOptions{End: fixedEnd})
	var last uint64
	for start := 0; start < len(evs); {
		n := 1 + start%37
		batch := evs[start:min(len(evs), start+n)]
		appendOK(t, h.Store, batch)
		seen := map[uint64]bool{}
		var maxSeq uint64
		for _, e := range batch {
			if e.Seq <= last {
				t.Fatalf("event %s: Seq %d not above %d of an earlier batch", e.ID, e.Seq, last)
			}
			if seen[e.Seq] {
				t.Fatalf("Seq %d given twice in one batch", e.Seq)
			}
			seen[e.Seq] = true
			maxSeq = max(maxSeq, e.Seq)
		}
		last = maxSeq
		start += n
	}
	got := readAll(t, h.Store, 0)
	if len(got) != len(evs) {
		t.Fatalf("ReadFrom(0) returned %d events, want %d", len(got), len(evs))
	}
	if h.reopen(t) {
		more := Generate(4, 3, GenOptions{End: fixedEnd})
		appendOK(t, h.Store, more)
		for _, e := range more {
			if e.Seq <= last {
				t.Fatalf("after reopen: Seq %d reused (last before was %d)", e.Seq, last)
			}
		}
	}
}

func testDedupe(t *testing.T, h *harness) {
	evs := Generate(5, 6, GenOptions{End: fixedEnd, Companies: []string{"c1"}, CompanyLevel: -1})
	// Within one batch: the second copy of an ID is skipped, even if its
	// content differs.
	twin := evs[0]
	twin.Action = "Different"
	batch := []event.Event{evs[0], evs[1], twin, evs[2]}
	appendOK(t, h.Store, batch)
	if batch[0].Seq == 0 || batch[1].Seq == 0 || batch[3].Seq == 0 {
		t.Fatalf("first occurrences not stored: seqs %d %d %d", batch[0].Seq, batch[1].Seq, batch[3].Seq)
	}
	if batch[2].Seq != 0 {
		t.Fatalf("duplicate within a batch got Seq %d, want 0", batch[2].Seq)
	}
	first := batch[0]

	// Across batches: repeats are skipped, new ones stored, the original
	// content kept.
	again := []event.Event{twin, evs[3], evs[1]}
	appendOK(t, h.Store, again)
	if again[0].Seq != 0 || again[2].Seq != 0 || again[1].Seq == 0 {
		t.Fatalf("across batches: seqs %d %d %d, want 0 >0 0", again[0].Seq, again[1].Seq, again[2].Seq)
	}
	if got := mustGet(t, h.Store, first.CompanyID, first.ID); got.Action != first.Action || got.Seq != first.Seq {
		t.Fatalf("duplicate replaced the original: got action %q seq %d", got.Action, got.Seq)
	}

	// The same ID in another company is another event.
	other := evs[0]
	other.CompanyID = "c2"
	ob := []event.Event{other}
	appendOK(t, h.Store, ob)
	if ob[0].Seq == 0 {
		t.Fatal("same ID in another company was skipped as a duplicate")
	}

	countAll := func(when string, want int) {
		t.Helper()
		if n := len(readAll(t, h.Store, 0)); n != want {
			t.Fatalf("%s: ReadFrom sees %d events, want %d", when, n, want)
		}
		q := scope("c1", first.ProjectID)
		q.UserIDs = []string{first.UserID}
		res := search(t, h.Store, q)
		n := 0
		for _, e := range res.Events {
			if e.ID == first.ID {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s: Search returns %s %d times", when, first.ID, n)
		}
	}
	countAll("before reopen", 5)
	if h.reopen(t) {
		countAll("after reopen", 5)
		retry := []event.Event{evs[0], evs[1], evs[2], evs[3], other, evs[4]}
		appendOK(t, h.Store, retry)
		for i, e := range retry[:5] {
			if e.Seq != 0 {
				t.Fatalf("after reopen: duplicate %d (%s) stored again with Seq %d", i, e.ID, e.Seq)
			}
		}
		if retry[5].Seq == 0 {
			t.Fatal("after reopen: new event skipped")
		}
		countAll("after reopen and retry", 6)
	}
}

func testGetNotFound(t *testing.T, h *harness) {
	evs := Generate(6, 3, GenOptions{End: fixedEnd, Companies: []string{"c1"}})
	appendOK(t, h.Store, evs)
	for _, tc := range []struct{ company, id string }{
		{"c1", "nope"}, {"c2", evs[0].ID}, {"", evs[0].ID}, {"c1", ""}, {"c1", strings.ToUpper(evs[0].ID)},
	} {
		if _, err := h.Store.Get(t.Context(), tc.company, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q, %q) = %v, want ErrNotFound", tc.company, tc.id, err)
		}
	}
}

// fixture is a small hand-written data set whose expected answers are
// written out below, so the filter semantics are checked independently of
// query.Match.
func fixture() []event.Event {
	const t0 = fixedEnd - 10*day
	ev := func(id, project, user, action, typ, actor string, at int64, device, method, geo, addr string, logins, tenants []string, data string) event.Event {
		e := event.Event{ID: id, CompanyID: "acme", ProjectID: project, Level: event.LevelProject, UserID: user,
			Action: action, Type: typ, ActorID: actor, Occurred: t0 + at, Device: device, Method: method, Geo: geo,
			RemoteAddress: addr, LoginIDs: logins, Tenants: tenants}
		if project == "" {
			e.Level = event.LevelCompany
		}
		if data != "" {
			e.Data = json.RawMessage(data)
		}
		return e
	}
	return []event.Event{
		ev("e1", "P1", "u1", "LoginSucceed", "info", "u1", 1000, "Desktop", "otp", "US", "203.0.113.7",
			[]string{"John.Doe@Example.com"}, []string{"t1"},
			`{"request_details":{"headers":{"http":{"user-agent":"Mozilla/5.0 Chrome/120.0"}}}}`),
		ev("e2", "P1", "u2", "LoginFailed", "warn", "u2", 2000, "Mobile", "password", "IL", "198.51.100.1",
			[]string{"ana@example.com"}, nil, `{"error_message":"wrong password","attempt":987}`),
		ev("e3", "P1", "u1", "UserModified", "info", "admin1", 3000, "Desktop", "", "US", "203.0.113.7",
			[]string{"John.Doe@Example.com"}, []string{"t1", "t2"},
			`{"Change":{"display_name":{"old":"Jon","new":"John"},"added_roles":["Editor"]}}`),
		ev("e4", "P1", "u3", "SCIMEvent", "info", "scim", 3000, "Bot", "", "DE", "10.0.0.1",
			[]string{"zoë@example.de"}, []string{"t3"},
			`{"scim_action":"update","Change":{"phone":{"new":"+1"}},"note":"Ärzte Zürich 東京都"}`),
		ev("e5", "", "", "ProjectCreated", "info", "admin1", 4000, "", "", "", "",
			nil, nil, `{"name":"Quetzal Person"}`),
		ev("e6", "P2", "u1", "LoginSucceed", "info", "u1", 5000, "Desktop", "otp", "US", "203.0.113.7",
			[]string{"John.Doe@Example.com"}, []string{"t1"}, ""),
		ev("e7", "P1", "u1", "LoginSucceed", "info", "u1", 6000, "Desktop", "otp", "US", "203.0.113.7",
			[]string{"John.Doe@Example.com"}, []string{"t1"}, `{"Change":{"phone":{}}}`),
		ev("e8", "P1", "u4", "LoginSucceed", "info", "u4", 7000, "Tablet", "magiclink", "FR", "2001:db8::1",
			nil, []string{"t2"}, ""),
	}
}

func testFilters(t *testing.T, h *harness) {
	evs := fixture()
	evs[6].CompanyID = "other" // e7: same project ID, another company
	appendOK(t, h.Store, evs)
	const t0 = fixedEnd - 10*day
	q := func(mut func(q *query.Query)) query.Query {
		q := scope("acme", "P1")
		mut(&q)
		return q
	}
	text := func(s string) func(q *query.Query) {
		return func(q *query.Query) { q.TextTokens = query.TextTokens(s) }
	}
	for _, tc := range []struct {
		name string
		q    query.Query
		want []string
	}{
		{"scope", q(func(*query.Query) {}), []string{"e1", "e2", "e3", "e4", "e5", "e8"}},
		{"project level only", q(func(q *query.Query) { q.IncludeCompany = false }), []string{"e1", "e2", "e3", "e4", "e8"}},
		{"company level only", q(func(q *query.Query) { q.IncludeProject = false }), []string{"e5"}},
		{"other project", q(func(q *query.Query) { q.ProjectID = "P2" }), []string{"e5", "e6"}},
		{"other company", q(func(q *query.Query) { q.CompanyID = "other" }), []string{"e7"}},
		{"unknown company", q(func(q *query.Query) { q.CompanyID = "nobody" }), nil},
		{"userIds", q(func(q *query.Query) { q.UserIDs = []string{"u1"} }), []string{"e1", "e3"}},
		{"userIds any", q(func(q *query.Query) { q.UserIDs = []string{"u1", "u4", "zz"} }), []string{"e1", "e3", "e8"}},
		{"actions", q(func(q *query.Query) { q.Actions = []string{"LoginSucceed"} }), []string{"e1", "e8"}},
		{"actions exact case", q(func(q *query.Query) { q.Actions = []string{"loginsucceed"} }), nil},
		{"excludedActions", q(func(q *query.Query) { q.ExcludedActions = []string{"LoginSucceed"} }), []string{"e2", "e3", "e4", "e5"}},
		{"actions minus excluded", q(func(q *query.Query) {
			q.Actions = []string{"LoginSucceed", "LoginFailed"}
			q.ExcludedActions = []string{"LoginFailed"}
		}), []string{"e1", "e8"}},
		{"actorIds", q(func(q *query.Query) { q.ActorIDs = []string{"admin1"} }), []string{"e3", "e5"}},
		{"devices", q(func(q *query.Query) { q.Devices = []string{"Desktop"} }), []string{"e1", "e3"}},
		{"types", q(func(q *query.Query) { q.Types = []string{"warn", "error"} }), []string{"e2"}},
		{"methods", q(func(q *query.Query) { q.Methods = []string{"otp", "magiclink"} }), []string{"e1", "e8"}},
		{"geos", q(func(q *query.Query) { q.Geos = []string{"US", "FR"} }), []string{"e1", "e3", "e8"}},
		{"remoteAddresses", q(func(q *query.Query) { q.RemoteAddresses = []string{"2001:db8::1", "10.0.0.1"} }), []string{"e4", "e8"}},
		{"loginIds", q(func(q *query.Query) { q.LoginIDs = []string{"John.Doe@Example.com"} }), []string{"e1", "e3"}},
		{"loginIds exact case", q(func(q *query.Query) { q.LoginIDs = []string{"john.doe@example.com"} }), nil},
		{"loginIds unicode", q(func(q *query.Query) { q.LoginIDs = []string{"zoë@example.de", "ana@example.com"} }), []string{"e2", "e4"}},
		{"tenants", q(func(q *query.Query) { q.Tenants = []string{"t1"} }), []string{"e1", "e3"}},
		{"tenants any", q(func(q *query.Query) { q.Tenants = []string{"t2", "t3"} }), []string{"e3", "e4", "e8"}},
		{"noTenants alone", q(func(q *query.Query) { q.NoTenants = true }), []string{"e2", "e5"}},
		{"tenants and noTenants", q(func(q *query.Query) { q.Tenants = []string{"t3"}; q.NoTenants = true }), []string{"e2", "e4", "e5"}},
		{"changedFields", q(func(q *query.Query) { q.ChangedFields = []string{"phone"} }), []string{"e4"}},
		{"changedFields any", q(func(q *query.Query) { q.ChangedFields = []string{"added_roles", "phone"} }), []string{"e3", "e4"}},
		{"changedFields not a data key", q(func(q *query.Query) { q.ChangedFields = []string{"Change", "scim_action", "old"} }), nil},
		{"text login id", q(text("john.doe")), []string{"e1", "e3"}},
		{"text case folded", q(text("JOHN.DOE@EXAMPLE")), []string{"e1", "e3"}},
		{"text nested value", q(text("CHROME")), []string{"e1"}},
		{"text nested key", q(text("user-agent")), []string{"e1"}},
		{"text key prefix", q(text("request_det")), []string{"e1"}},
		{"text unicode", q(text("ärz")), []string{"e4"}},
		{"text unicode upper", q(text("ÄRZTE")), []string{"e4"}},
		{"text cjk prefix", q(text("東京")), []string{"e4"}},
		{"text login unicode", q(text("zoë")), []string{"e4"}},
		{"text all words", q(text("quetzal person")), []string{"e5"}},
		{"text every word needed", q(text("quetzal nobody")), nil},
		{"text not infix", q(text("oe")), nil},
		{"text data value words", q(text("wrong pass")), []string{"e2"}},
		{"text action", q(text("loginsu")), []string{"e1", "e8"}},
		{"text type", q(text("warn")), []string{"e2"}},
		{"text device", q(text("tablet")), []string{"e8"}},
		{"text method", q(text("MagicL")), []string{"e8"}},
		{"text geo", q(text("il")), []string{"e2"}},
		{"text user id", q(text("u4")), []string{"e8"}},
		{"text ip", q(text("2001")), []string{"e8"}},
		{"text tenant", q(text("t2")), []string{"e3", "e8"}},
		{"text user and actor", q(text("admin1")), []string{"e3", "e5"}},
		{"text Change key", q(text("change")), []string{"e3", "e4"}},
		{"text array value", q(text("editor")), []string{"e3"}},
		{"text digits in a string", q(text("120")), []string{"e1"}},
		{"text number is not text", q(text("987")), nil},
		{"from inclusive", q(func(q *query.Query) { q.From = t0 + 3000 }), []string{"e3", "e4", "e5", "e8"}},
		{"to inclusive", q(func(q *query.Query) { q.To = t0 + 3000 }), []string{"e1", "e2", "e3", "e4"}},
		{"from equals to", q(func(q *query.Query) { q.From, q.To = t0+3000, t0+3000 }), []string{"e3", "e4"}},
		{"empty range", q(func(q *query.Query) { q.From, q.To = t0+3001, t0+3999 }), nil},
		{"combined", q(func(q *query.Query) { q.Actions = []string{"LoginSucceed"}; q.Geos = []string{"FR"} }), []string{"e8"}},
		{"combined text", q(func(q *query.Query) {
			q.UserIDs = []string{"u1"}
			q.TextTokens = query.TextTokens("chrome")
		}), []string{"e1"}},
		{"combined many", q(func(q *query.Query) {
			q.Tenants = []string{"t1"}
			q.Devices = []string{"Desktop"}
			q.ChangedFields = []string{"display_name"}
			q.ActorIDs = []string{"admin1"}
			q.From, q.To = t0, t0+3000
		}), []string{"e3"}},
		{"combined excluding all", q(func(q *query.Query) {
			q.NoTenants = true
			q.ExcludedActions = []string{"LoginFailed", "ProjectCreated"}
		}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) { wantIDs(t, h.Store, tc.q, tc.want...) })
	}
}

func testOrdering(t *testing.T, h *harness) {
	// Two batches with the same Occurred: the later ingest sorts first.
	mk := func(id string, at int64) event.Event {
		return event.Event{ID: id, CompanyID: "c1", ProjectID: "P1", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: fixedEnd - at}
	}
	b1 := []event.Event{mk("old", 3000), mk("tieA", 2000), mk("new", 1000)}
	b2 := []event.Event{mk("tieB", 2000)}
	b3 := []event.Event{mk("tieC", 2000), mk("newest", 10)}
	appendOK(t, h.Store, b1)
	appendOK(t, h.Store, b2)
	appendOK(t, h.Store, b3)
	q := scope("c1", "P1")
	check := func(when string) {
		got := ids(search(t, h.Store, q).Events)
		if want := []string{"newest", "new", "tieC", "tieB", "tieA", "old"}; !slices.Equal(got, want) {
			t.Fatalf("%s: newest first = %v, want %v", when, got, want)
		}
		q.OldestFirst = true
		got = ids(search(t, h.Store, q).Events)
		q.OldestFirst = false
		if want := []string{"old", "tieA", "tieB", "tieC", "new", "newest"}; !slices.Equal(got, want) {
			t.Fatalf("%s: oldest first = %v, want %v", when, got, want)
		}
	}
	check("after append")

	// Many ties inside a batch and across batches, against the reference.
	evs := Generate(7, 300, GenOptions{End: fixedEnd, Companies: []string{"c2"}, Span: 3 * time.Second})
	for i := 0; i < len(evs); i += 50 {
		appendOK(t, h.Store, evs[i:i+50])
	}
	for _, p := range []string{"P1", "P2"} {
		q := scope("c2", p)
		expect(t, h.Store, q, evs)
		q.OldestFirst = true
		expect(t, h.Store, q, evs)
	}
	if h.reopen(t) {
		check("after reopen")
		q := scope("c2", "P3")
		expect(t, h.Store, q, evs)
	}
}

func testPaging(t *testing.T, h *harness) {
	evs := Generate(8, 120, GenOptions{End: fixedEnd, Companies: []string{"c1"}, Projects: []string{"P1"}})
	appendOK(t, h.Store, evs)
	q := scope("c1", "P1")
	full := search(t, h.Store, q)
	if full.Total != len(evs) || len(full.Events) != len(evs) {
		t.Fatalf("whole result: %d events, Total %d, want %d", len(full.Events), full.Total, len(evs))
	}
	for _, size := range []int{1, 7, 25, 120, 1000} {
		var joined []event.Event
		for page := 0; ; page++ {
			q.Page, q.Size = page, size
			res := search(t, h.Store, q)
			if res.Total != len(evs) {
				t.Fatalf("size %d page %d: Total %d, want %d", size, page, res.Total, len(evs))
			}
			if len(res.Events) > size {
				t.Fatalf("size %d page %d: %d events", size, page, len(res.Events))
			}
			if len(res.Events) == 0 {
				if page*size < len(evs) {
					t.Fatalf("size %d page %d: empty before the end", size, page)
				}
				break
			}
			joined = append(joined, res.Events...)
		}
		if !slices.Equal(ids(joined), ids(full.Events)) {
			t.Fatalf("size %d: pages joined differ from the whole result", size)
		}
	}
	for _, ps := range [][2]int{{5, 24}, {12, 10}, {13, 10}, {1000, 10}, {query.MaxOffset / 10, 10}} {
		q.Page, q.Size = ps[0], ps[1]
		expect(t, h.Store, q, evs)
		res := search(t, h.Store, q)
		if len(res.Events) != 0 || res.Total != len(evs) {
			t.Fatalf("page %d size %d past the end: %d events, Total %d", q.Page, q.Size, len(res.Events), res.Total)
		}
	}
	q.Page, q.Size = 0, 10
	q.Actions = []string{"LoginSucceed"}
	expect(t, h.Store, q, evs)
	q.Page = 2
	expect(t, h.Store, q, evs)
}

// testDifferential runs random queries against the reference semantics.
func testDifferential(t *testing.T, h *harness) {
	const seed = 20261125
	evs := Generate(seed, 2500, GenOptions{End: fixedEnd})
	for i := 0; i < len(evs); {
		n := min(len(evs)-i, 1+(i*7919)%400)
		appendOK(t, h.Store, evs[i:i+n])
		i += n
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	queries := make([]query.Query, 320)
	for i := range queries {
		queries[i] = randomQuery(rng, evs)
	}
	// The reference answers, computed once: the data is the same after
	// reopening.
	wants := make([]store.Result, len(queries))
	for i, q := range queries {
		var hits []event.Event
		for j := range evs {
			if q.Match(&evs[j]) {
				hits = append(hits, evs[j])
			}
		}
		wants[i] = Page(q, hits)
	}
	run := func(when string) {
		for i, q := range queries {
			got := search(t, h.Store, q)
			if msg := diffResults(got, wants[i]); msg != "" {
				t.Fatalf("%s, seed %d query %d (%s): %s", when, seed, i, describe(q), msg)
			}
		}
	}
	run("after append")
	if h.reopen(t) {
		run("after reopen")
	}
}

// randomQuery combines filters whose values come from the data (so they
// match something) and sometimes from nowhere (so they match nothing).
func randomQuery(rng *rand.Rand, evs []event.Event) query.Query {
	pivot := &evs[rng.IntN(len(evs))]
	q := query.Query{CompanyID: pivot.CompanyID, ProjectID: pivot.ProjectID, IncludeProject: true, IncludeCompany: true}
	if q.ProjectID == "" {
		q.ProjectID = []string{"P1", "P2", "P3"}[rng.IntN(3)]
	}
	switch rng.IntN(6) {
	case 0:
		q.IncludeCompany = false
	case 1:
		q.IncludeProject = false
	}
	other := func() *event.Event { return &evs[rng.IntN(len(evs))] }
	values := func(get func(e *event.Event) string) []string {
		out := []string{get(pivot)}
		for range rng.IntN(3) {
			out = append(out, get(other()))
		}
		if rng.IntN(8) == 0 {
			out = append(out, "no-such-value")
		}
		return out
	}
	listValues := func(get func(e *event.Event) []string) []string {
		var out []string
		for _, e := range []*event.Event{pivot, other(), other()} {
			if l := get(e); len(l) > 0 {
				out = append(out, l[rng.IntN(len(l))])
			}
		}
		return out
	}
	filters := 1 + rng.IntN(4)
	for range filters {
		switch rng.IntN(14) {
		case 0:
			q.UserIDs = values(func(e *event.Event) string { return e.UserID })
		case 1:
			q.Actions = values(func(e *event.Event) string { return e.Action })
		case 2:
			q.ExcludedActions = values(func(e *event.Event) string { return e.Action })[1:]
		case 3:
			q.ActorIDs = values(func(e *event.Event) string { return e.ActorID })
		case 4:
			q.Devices = values(func(e *event.Event) string { return e.Device })
		case 5:
			q.Methods = values(func(e *event.Event) string { return e.Method })
		case 6:
			q.Geos = values(func(e *event.Event) string { return e.Geo })
		case 7:
			q.RemoteAddresses = values(func(e *event.Event) string { return e.RemoteAddress })
		case 8:
			q.LoginIDs = listValues(func(e *event.Event) []string { return e.LoginIDs })
		case 9:
			q.Tenants = listValues(func(e *event.Event) []string { return e.Tenants })
			q.NoTenants = rng.IntN(3) == 0
		case 10:
			q.ChangedFields = listValues((*event.Event).ChangedFields)
			if len(q.ChangedFields) == 0 {
				q.ChangedFields = []string{"display_name"}
			}
		case 11:
			q.TextTokens = query.TextTokens(randomText(rng, pivot, other()))
		case 13:
			q.Types = values(func(e *event.Event) string { return e.Type })
		case 12:
			a, b := pivot.Occurred, other().Occurred
			if a > b {
				a, b = b, a
			}
			switch rng.IntN(3) {
			case 0:
				q.From = a
			case 1:
				q.To = b
			default:
				q.From, q.To = a, b
			}
		}
	}
	if rng.IntN(10) == 0 {
		q.NoTenants = true
	}
	q.OldestFirst = rng.IntN(4) == 0
	q.Size = []int{1, 3, 10, 50, 200, 1000}[rng.IntN(6)]
	// Mostly a page that holds events (its content is what can go wrong),
	// sometimes the one just past the end or far beyond.
	matches := 0
	for i := range evs {
		if q.Match(&evs[i]) {
			matches++
		}
	}
	pages := (matches + q.Size - 1) / q.Size
	switch r := rng.IntN(10); {
	case r < 7 && pages > 0:
		q.Page = rng.IntN(pages)
	case r < 9:
		q.Page = pages
	default:
		q.Page = pages + 50
	}
	return q
}

// randomText picks one or two token prefixes of the given events, in
// random case, sometimes with punctuation around them.
func randomText(rng *rand.Rand, es ...*event.Event) string {
	var words []string
	for i, e := range es {
		if i > 0 && rng.IntN(2) == 0 {
			break
		}
		toks := e.Tokens()
		if len(toks) == 0 {
			continue
		}
		r := []rune(toks[rng.IntN(len(toks))])
		w := string(r[:1+rng.IntN(len(r))])
		switch rng.IntN(3) {
		case 0:
			w = strings.ToUpper(w)
		case 1:
			w = "\"" + w + ".,"
		}
		words = append(words, w)
	}
	if rng.IntN(15) == 0 {
		words = append(words, "zzqx")
	}
	return strings.Join(words, " ")
}

func testReadAfterAck(t *testing.T, h *harness) {
	const writers, batches = 4, 25
	errs := make(chan error, writers+2)
	stop := make(chan struct{})
	done := make(chan struct{})
	// Searchers keep the store busy while writers check their own events.
	for s := range 2 {
		go func() {
			q := scope(fmt.Sprintf("w%d", s), "P1")
			q.Size = 20
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := h.Store.Search(t.Context(), q); err != nil {
					errs <- fmt.Errorf("concurrent search: %w", err)
					return
				}
			}
		}()
	}
	for w := range writers {
		go func() {
			errs <- func() error {
				company := fmt.Sprintf("w%d", w)
				all := Generate(uint64(100+w), batches*3, GenOptions{End: fixedEnd, Companies: []string{company}, Projects: []string{"P1"}, CompanyLevel: -1})
				acked := 0
				for b := range batches {
					batch := all[b*3 : b*3+1+b%3]
					for i := range batch {
						batch[i].UserID = fmt.Sprintf("%s-user-%d-%d", company, b, i)
					}
					if err := h.Store.Append(t.Context(), batch); err != nil {
						return fmt.Errorf("writer %d: Append: %w", w, err)
					}
					acked += len(batch)
					for _, e := range batch {
						got, err := h.Store.Get(t.Context(), company, e.ID)
						if err != nil {
							return fmt.Errorf("writer %d: Get %s right after Append: %w", w, e.ID, err)
						}
						if got.Seq != e.Seq {
							return fmt.Errorf("writer %d: Get %s: Seq %d, want %d", w, e.ID, got.Seq, e.Seq)
						}
					}
					q := scope(company, "P1")
					q.UserIDs = []string{batch[0].UserID}
					res, err := h.Store.Search(t.Context(), q)
					if err != nil {
						return fmt.Errorf("writer %d: Search: %w", w, err)
					}
					if res.Total != 1 || len(res.Events) != 1 || res.Events[0].ID != batch[0].ID {
						return fmt.Errorf("writer %d: Search right after Append: %v (Total %d), want [%s]", w, ids(res.Events), res.Total, batch[0].ID)
					}
					q.UserIDs = nil
					q.Size = 1
					res, err = h.Store.Search(t.Context(), q)
					if err != nil {
						return fmt.Errorf("writer %d: Search: %w", w, err)
					}
					if res.Total != acked {
						return fmt.Errorf("writer %d: Total %d right after acknowledging %d", w, res.Total, acked)
					}
				}
				return nil
			}()
		}()
	}
	go func() {
		for range writers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		close(done)
	}()
	<-done
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func testReadFrom(t *testing.T, h *harness) {
	if got, err := h.Store.ReadFrom(t.Context(), 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("ReadFrom on an empty store = %d events, %v", len(got), err)
	}
	evs := Generate(9, 60, GenOptions{End: fixedEnd})
	appendOK(t, h.Store, evs[:20])
	appendOK(t, h.Store, evs[20:21])
	appendOK(t, h.Store, evs[21:])
	bySeq := slices.Clone(evs)
	slices.SortFunc(bySeq, func(a, b event.Event) int { return int(a.Seq) - int(b.Seq) })
	check := func(when string) {
		all := readAll(t, h.Store, 0)
		if len(all) != len(evs) {
			t.Fatalf("%s: ReadFrom(0) = %d events, want %d", when, len(all), len(evs))
		}
		for i := range all {
			if d := diffEvent(&all[i], &bySeq[i]); d != "" {
				t.Fatalf("%s: ReadFrom event %d: %s", when, i, d)
			}
		}
		after := bySeq[29].Seq
		got, err := h.Store.ReadFrom(t.Context(), after, 7)
		if err != nil {
			t.Fatalf("%s: ReadFrom: %v", when, err)
		}
		if want := ids(bySeq[30:37]); !slices.Equal(ids(got), want) {
			t.Fatalf("%s: ReadFrom(%d, 7) = %v, want %v", when, after, ids(got), want)
		}
		// A Seq between two stored ones (Seq need not be dense).
		if got, err := h.Store.ReadFrom(t.Context(), bySeq[len(bySeq)-1].Seq, 10); err != nil || len(got) != 0 {
			t.Fatalf("%s: ReadFrom(last) = %v, %v; want nothing", when, ids(got), err)
		}
	}
	check("after append")
	if h.reopen(t) {
		check("after reopen")
	}
}

// testReadFromConcurrent: a reader that polls while 8 writers append ends
// up with exactly the acknowledged events, each once, even though batches
// commit out of Seq order.
func testReadFromConcurrent(t *testing.T, h *harness) {
	const writers, batches = 8, 30
	type ack struct {
		id, company string
		seq         uint64
	}
	acks := make(chan []ack, writers)
	errs := make(chan error, writers)
	writersDone := make(chan struct{})
	for w := range writers {
		go func() {
			company := fmt.Sprintf("c%d", w%3)
			all := Generate(uint64(200+w), batches*5, GenOptions{End: fixedEnd, Companies: []string{company}, IDPrefix: fmt.Sprintf("w%d-", w)})
			var mine []ack
			for b := range batches {
				batch := slices.Clone(all[b*5 : b*5+1+(b+w)%5])
				if b%4 == 3 {
					batch = append(batch, batch[0]) // a duplicate: skipped, Seq 0
				}
				if err := h.Store.Append(t.Context(), batch); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					acks <- mine
					return
				}
				for _, e := range batch {
					if e.Seq != 0 {
						mine = append(mine, ack{e.ID, e.CompanyID, e.Seq})
					}
				}
			}
			errs <- nil
			acks <- mine
		}()
	}
	go func() {
		for range writers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		close(writersDone)
	}()

	type key struct{ company, id string }
	got := map[key]uint64{}
	var last uint64
	for {
		finished := false
		select {
		case <-writersDone:
			finished = true // every Append has returned before this read
		default:
		}
		page, err := h.Store.ReadFrom(t.Context(), last, 16)
		if err != nil {
			t.Fatalf("ReadFrom(%d): %v", last, err)
		}
		for _, e := range page {
			if e.Seq <= last {
				t.Fatalf("ReadFrom(%d) returned Seq %d: not ascending", last, e.Seq)
			}
			last = e.Seq
			k := key{e.CompanyID, e.ID}
			if _, dup := got[k]; dup {
				t.Fatalf("ReadFrom returned %s/%s twice", e.CompanyID, e.ID)
			}
			got[k] = e.Seq
		}
		if len(page) == 0 && finished {
			break
		}
	}
	want := map[key]uint64{}
	for range writers {
		for _, a := range <-acks {
			want[key{a.company, a.id}] = a.seq
		}
	}
	for k, seq := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("acknowledged event %s/%s (Seq %d) never read: a gap was skipped", k.company, k.id, seq)
		} else if g != seq {
			t.Errorf("event %s/%s read with Seq %d, acknowledged with %d", k.company, k.id, g, seq)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("read %s/%s which no Append acknowledged", k.company, k.id)
		}
	}
}

func testDeleteBefore(t *testing.T, h *harness) {
	// Two events per day at 03:00 and 21:00 over 20 days, in two companies.
	var evs []event.Event
	start := fixedEnd - 20*day
	for _, c := range []string{"c1", "c2"} {
		for d := range int64(20) {
			for _, hour := range []int64{3, 21} {
				e := event.Event{ID: fmt.Sprintf("%s-d%02d-h%02d", c, d, hour), CompanyID: c, ProjectID: "P1", Level: event.LevelProject,
					Action: "LoginSucceed", Type: event.TypeInfo, Occurred: start + d*day + hour*3_600_000}
				if d%5 == 0 {
					e.Level, e.ProjectID = event.LevelCompany, ""
				}
				evs = append(evs, e)
			}
		}
	}
	appendOK(t, h.Store, evs)
	cutoff := start + 10*day + 12*3_600_000 // day 10, noon
	count := func(company string) map[string]bool {
		q := scope(company, "P1")
		res := search(t, h.Store, q)
		if res.Total != len(res.Events) {
			t.Fatalf("Total %d, page %d", res.Total, len(res.Events))
		}
		out := map[string]bool{}
		for _, e := range res.Events {
			out[e.ID] = true
		}
		return out
	}
	n, err := h.Store.DeleteBefore(t.Context(), "c1", cutoff)
	if err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	check := func(when string) {
		left := count("c1")
		if n != int64(40-len(left)) {
			t.Fatalf("%s: DeleteBefore reported %d removed, but %d of 40 are gone", when, n, 40-len(left))
		}
		for _, e := range evs {
			if e.CompanyID != "c1" {
				continue
			}
			switch {
			case e.Occurred >= cutoff && !left[e.ID]:
				t.Fatalf("%s: %s (not before the cutoff) was deleted", when, e.ID)
			case e.Occurred < cutoff-day && left[e.ID]:
				t.Fatalf("%s: %s (more than a day before the cutoff) was kept", when, e.ID)
			}
			if _, err := h.Store.Get(t.Context(), "c1", e.ID); left[e.ID] != (err == nil) {
				t.Fatalf("%s: Get(%s) = %v, but Search says present=%v", when, e.ID, err, left[e.ID])
			}
		}
		if other := count("c2"); len(other) != 40 {
			t.Fatalf("%s: another company lost events: %d of 40 left", when, len(other))
		}
		q := scope("c1", "P1")
		q.From = cutoff - day
		q.Size = 100
		if res := search(t, h.Store, q); res.Total != len(res.Events) {
			t.Fatalf("%s: Total %d disagrees with %d events", when, res.Total, len(res.Events))
		}
	}
	check("after delete")
	if h.reopen(t) {
		check("after reopen")
	}
	// Deleting again, and deleting in a company with nothing old, is a no-op.
	if n2, err := h.Store.DeleteBefore(t.Context(), "c1", start); err != nil || n2 != 0 {
		t.Fatalf("DeleteBefore(before everything) = %d, %v; want 0, nil", n2, err)
	}
	if n2, err := h.Store.DeleteBefore(t.Context(), "nobody", fixedEnd); err != nil || n2 != 0 {
		t.Fatalf("DeleteBefore(unknown company) = %d, %v; want 0, nil", n2, err)
	}
	check("after no-op deletes")
}

func testClosed(t *testing.T, h *harness) {
	evs := Generate(10, 3, GenOptions{End: fixedEnd})
	appendOK(t, h.Store, evs)
	if err := h.Store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	more := Generate(11, 2, GenOptions{End: fixedEnd})
	for name, err := range map[string]error{
		"Append": h.Store.Append(ctx, more),
		"Search": func() error { _, err := h.Store.Search(ctx, scope("c1", "P1")); return err }(),
		"Get":    func() error { _, err := h.Store.Get(ctx, evs[0].CompanyID, evs[0].ID); return err }(),
		"ReadFrom": func() error {
			_, err := h.Store.ReadFrom(ctx, 0, 10)
			return err
		}(),
		"DeleteBefore": func() error { _, err := h.Store.DeleteBefore(ctx, "c1", fixedEnd); return err }(),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if h.Reopen != nil {
		h.Store = h.Reopen(t)
		if got := readAll(t, h.Store, 0); len(got) != len(evs) {
			t.Fatalf("after Close and reopen: %d events, want %d", len(got), len(evs))
		}
	}
}

// testCancelledAppend: an Append whose context is cancelled before or
// during the call stores all of its batch or none of it, and a retry of
// the same batch then completes it.
func testCancelledAppend(t *testing.T, h *harness) {
	type attempt struct {
		company string
		batch   []event.Event
	}
	var attempts []attempt
	visible := func(company string) int {
		q := scope(company, "P1")
		q.Size = 1
		return search(t, h.Store, q).Total
	}
	for i := range 6 {
		company := fmt.Sprintf("cancel%d", i)
		n := 1500
		batch := Generate(uint64(300+i), n, GenOptions{End: fixedEnd, Companies: []string{company}, Projects: []string{"P1"}})
		var err error
		if i == 0 {
			err = h.Store.Append(cancelledContext(t), batch)
		} else {
			ctx, cancel := contextCancelledSoon(t, i)
			err = h.Store.Append(ctx, batch)
			cancel()
		}
		got := visible(company)
		switch {
		case err != nil && got != 0:
			t.Fatalf("attempt %d: Append failed (%v) but %d of %d events are visible", i, err, got, n)
		case err == nil && got != n:
			t.Fatalf("attempt %d: Append succeeded but %d of %d events are visible", i, got, n)
		}
		t.Logf("attempt %d: err=%v visible=%d", i, err, got)
		attempts = append(attempts, attempt{company, batch})
	}
	retry := func(when string) {
		for i, a := range attempts {
			if got := visible(a.company); got != 0 && got != len(a.batch) {
				t.Fatalf("%s: attempt %d left %d of %d events", when, i, got, len(a.batch))
			}
			retried := slices.Clone(a.batch)
			appendOK(t, h.Store, retried)
			if got := visible(a.company); got != len(a.batch) {
				t.Fatalf("%s: retry of attempt %d: %d of %d events visible", when, i, got, len(a.batch))
			}
		}
	}
	if h.reopen(t) {
		retry("after reopen")
	} else {
		retry("without reopen")
	}
}

// testIsolation: companies share project IDs in the generated data, so a
// backend that scopes by project alone returns another company's events.
func testIsolation(t *testing.T, h *harness) {
	evs := Generate(12, 400, GenOptions{End: fixedEnd, Companies: []string{"c1", "c2", "c3"}})
	appendOK(t, h.Store, evs)
	for _, c := range []string{"c1", "c2", "c3", "c4"} {
		for _, p := range []string{"P1", "P2", "P9"} {
			for _, lv := range [][2]bool{{true, true}, {true, false}, {false, true}} {
				q := scope(c, p)
				q.IncludeProject, q.IncludeCompany = lv[0], lv[1]
				expect(t, h.Store, q, evs)
				for _, e := range search(t, h.Store, q).Events {
					if e.CompanyID != c {
						t.Fatalf("search in %s returned %s of %s", c, e.ID, e.CompanyID)
					}
					if e.Level == event.LevelProject && (!lv[0] || e.ProjectID != p) {
						t.Fatalf("search in %s/%s levels %v returned project event %s of %s", c, p, lv, e.ID, e.ProjectID)
					}
					if e.Level == event.LevelCompany && !lv[1] {
						t.Fatalf("search in %s/%s without company level returned %s", c, p, e.ID)
					}
				}
			}
		}
	}
}
