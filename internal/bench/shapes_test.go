package bench

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

func sampledTrail(t *testing.T, n int) ([]event.Event, *Sample) {
	t.Helper()
	events, _ := generate(t, GenOptions{Events: n, Seed: 5, End: testEnd}, 1000)
	s := NewSample(5, 1000)
	for i := range events {
		s.Observe(&events[i])
	}
	return events, s
}

func TestSampleIsUniformReservoir(t *testing.T) {
	events, s := sampledTrail(t, 5000)
	if s.Len() != 1000 {
		t.Fatalf("sample holds %d rows, want 1000", s.Len())
	}
	// A reservoir keeps late events as often as early ones: about half of
	// the rows must come from the second half of the trail.
	late := map[string]bool{}
	for _, e := range events[2500:] {
		late[correlationID(e.Data)] = true
	}
	n := 0
	for _, r := range s.rows {
		if late[r.correlationID] {
			n++
		}
	}
	if n < 400 || n > 600 {
		t.Fatalf("%d of 1000 sampled rows are from the second half, want about 500", n)
	}
}

func TestBuildQueries(t *testing.T) {
	events, s := sampledTrail(t, 3000)
	// query.Match tokenises an event's data on every call; do it once.
	tokens := make([][]string, len(events))
	for i := range events {
		tokens[i] = events[i].Tokens()
	}
	opts := QueryOptions{CompanyID: genCompanyID, End: testEnd, PerShape: 30, PageSize: 100, Seed: 9}
	sets := BuildQueries(s, opts)
	if !reflect.DeepEqual(sets, BuildQueries(s, opts)) {
		t.Fatal("the same sample and options gave different queries")
	}
	if len(sets) != len(Shapes) || len(Shapes) < 12 {
		t.Fatalf("%d query sets for %d shapes; issue 3 asks for at least 12", len(sets), len(Shapes))
	}
	for i, set := range sets {
		if ShapeDescriptions[set.Shape] == "" {
			t.Errorf("shape %q has no description for the legend", set.Shape)
		}
		if set.Shape != Shapes[i] || len(set.Queries) != opts.PerShape {
			t.Fatalf("set %d: shape %q with %d queries", i, set.Shape, len(set.Queries))
		}
		distinct := map[string]bool{}
		for _, q := range set.Queries {
			distinct[describeQuery(q)] = true
			if q.CompanyID != genCompanyID || q.From != testEnd-genDefaultSpan.Milliseconds() && set.Shape != ShapeLastDay {
				t.Fatalf("%s: query not scoped to the trail's company and window: %+v", set.Shape, q)
			}
			total := 0
			noText := q
			noText.TextTokens = nil
			for j := range events {
				if noText.Match(&events[j]) && hasPrefixes(tokens[j], q.TextTokens) {
					total++
				}
			}
			checkShape(t, set.Shape, q, total)
		}
		// Values vary: a shape asked with one value every time measures a
		// cache. The shapes scoped by project alone have only 10 projects.
		want := 10
		if set.Shape == ShapeLevelCompany {
			want = 1 // the company's trail is one, whatever the caller's project
		}
		if set.Shape == ShapeDeepPage || set.Shape == ShapeLevelProject || set.Shape == ShapeLastDay {
			want = 3
		}
		if len(distinct) < want {
			t.Errorf("%s: only %d distinct queries of %d", set.Shape, len(distinct), len(set.Queries))
		}
	}
}

// checkShape asserts what each shape must look like and that the values
// drawn exist in the trail.
func checkShape(t *testing.T, shape string, q query.Query, total int) {
	t.Helper()
	fail := func(why string) { t.Fatalf("%s: %s: %s (total %d)", shape, why, describeQuery(q), total) }
	switch shape {
	case ShapeUserID:
		if len(q.UserIDs) != 1 || total == 0 {
			fail("want one user id that occurs")
		}
	case ShapeLoginID:
		if len(q.LoginIDs) != 1 || total == 0 {
			fail("want one login id that occurs")
		}
	case ShapeRemoteAddress:
		if len(q.RemoteAddresses) != 1 || total == 0 {
			fail("want one address that occurs")
		}
	case ShapeActionsGeos:
		if len(q.Actions) == 0 || len(q.Geos) == 0 {
			fail("want actions and geos")
		}
	case ShapeExcludedActions:
		if len(q.ExcludedActions) == 0 || len(q.Actions) > 0 || total == 0 {
			fail("want excluded actions only")
		}
	case ShapeDevicesMethods:
		if len(q.Devices) == 0 || len(q.Methods) == 0 {
			fail("want devices and methods")
		}
	case ShapeTenants, ShapeTenantsNone:
		if len(q.Tenants) != 5 || q.NoTenants != (shape == ShapeTenantsNone) || total == 0 {
			fail("want five tenants that occur")
		}
	case ShapeTextWord:
		if len(q.TextTokens) != 1 || len(q.Actions) > 0 {
			fail("want one word")
		}
	case ShapeTextAction:
		if len(q.TextTokens) != 1 || len(q.Actions) != 1 {
			fail("want one word and one action")
		}
	case ShapeTextRare:
		if len(q.TextTokens) != 1 || total != 1 {
			fail("want a word of one event's data")
		}
	case ShapeDeepPage:
		if q.Page != 199 || q.Size != 50 {
			fail("want page 200 of 50")
		}
	case ShapeLevelCompany:
		if q.IncludeProject || !q.IncludeCompany || total == 0 {
			fail("want the company level only")
		}
	case ShapeLevelProject:
		if !q.IncludeProject || q.IncludeCompany || total == 0 {
			fail("want the project level only")
		}
	case ShapeLastDay:
		if q.From != testEnd-24*3600*1000 {
			fail("want the last 24 hours")
		}
	default:
		fail("unknown shape")
	}
}

// hasPrefixes is query.Match's text rule on precomputed tokens.
func hasPrefixes(tokens, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(tokens, func(t string) bool { return strings.HasPrefix(t, w) }) {
			return false
		}
	}
	return true
}

func TestTextWordsOccur(t *testing.T) {
	events, _ := sampledTrail(t, 3000)
	count := map[string]int{}
	hot := ""
	for i := range events {
		if p := events[i].ProjectID; p != "" {
			count[p]++
			if count[p] > count[hot] {
				hot = p
			}
		}
	}
	var tokens [][]string
	for i := range events {
		if events[i].ProjectID == hot {
			tokens = append(tokens, events[i].Tokens())
		}
	}
	for _, w := range TextWords {
		n := 0
		for _, toks := range tokens {
			if hasPrefixes(toks, query.TextTokens(w)) {
				n++
			}
		}
		if n < 5 {
			t.Errorf("text word %q matches %d events of the hot project; the one-word shape needs common words", w, n)
		}
	}
}
