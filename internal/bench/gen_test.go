package bench

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
)

// testEnd is a fixed End so that tests see the same trail on every run.
var testEnd = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

func generate(t *testing.T, opts GenOptions, batch int) ([]event.Event, GenStats) {
	t.Helper()
	g, err := NewGenerator(opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []event.Event
	buf := make([]event.Event, batch)
	for {
		b := g.Fill(buf)
		if len(b) == 0 {
			break
		}
		out = append(out, b...)
	}
	return out, g.Stats()
}

func TestGeneratorIsDeterministic(t *testing.T) {
	opts := GenOptions{Events: 3000, Seed: 7, End: testEnd}
	a, sa := generate(t, opts, 1000)
	b, sb := generate(t, opts, 7) // the batch size must not change the trail
	if len(a) != 3000 || len(b) != 3000 {
		t.Fatalf("got %d and %d events, want 3000", len(a), len(b))
	}
	for i := range a {
		ja, _ := json.Marshal(a[i])
		jb, _ := json.Marshal(b[i])
		if string(ja) != string(jb) || a[i].CompanyID != b[i].CompanyID {
			t.Fatalf("event %d differs between runs:\n%s\n%s", i, ja, jb)
		}
	}
	if sa != sb {
		t.Fatalf("stats differ: %+v vs %+v", sa, sb)
	}
	c, _ := generate(t, GenOptions{Events: 3000, Seed: 8, End: testEnd}, 1000)
	same := 0
	for i := range a {
		if a[i].UserID == c[i].UserID && string(a[i].Data) == string(c[i].Data) {
			same++
		}
	}
	if same > 30 {
		t.Fatalf("seeds 7 and 8 share %d of 3000 events", same)
	}
}

func TestGeneratorDistribution(t *testing.T) {
	const n = 30_000
	events, st := generate(t, GenOptions{Events: n, Seed: 1, End: testEnd}, 1000)
	within := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.3f, want within [%.3f, %.3f]", name, got, lo, hi)
		}
	}
	within("hot project share", st.HotShare(), 0.58, 0.62)
	within("no-tenant share", st.NoTenantShare(), 0.18, 0.22)
	within("several-tenant share", float64(st.MultiTenant)/float64(n), 0.05, 0.25)
	within("company-level share", float64(st.CompanyLevel)/float64(n), 0.005, 0.02)
	within("average JSON bytes", st.AvgJSONBytes(), 620, 800)
	if st.Actions < 55 || st.Geos < 45 {
		t.Errorf("only %d actions and %d countries occur", st.Actions, st.Geos)
	}

	var jsonBytes int64
	devices, methods, projects := map[string]int{}, map[string]int{}, map[string]int{}
	ids := map[string]bool{}
	ties, userModifiedWithChange, scimWithRequest := 0, 0, 0
	span := genDefaultSpan.Milliseconds()
	for i := range events {
		e := &events[i]
		if err := e.Validate(); err != nil {
			t.Fatalf("event %d invalid: %v", i, err)
		}
		if ids[e.ID] {
			t.Fatalf("duplicate id %s", e.ID)
		}
		ids[e.ID] = true
		if e.Occurred <= testEnd-span || e.Occurred > testEnd {
			t.Fatalf("event %d occurred %d outside the 30 days before %d", i, e.Occurred, testEnd)
		}
		if i > 0 && e.Occurred == events[i-1].Occurred {
			ties++
		}
		b, _ := json.Marshal(e)
		if len(b) != WireSize(e) {
			t.Fatalf("WireSize %d, marshalled %d: %s", WireSize(e), len(b), b)
		}
		jsonBytes += int64(len(b))
		devices[e.Device]++
		methods[e.Method]++
		projects[e.ProjectID]++
		if e.Action == "UserModified" && len(e.ChangedFields()) > 0 {
			userModifiedWithChange++
		}
		if e.Action == "SCIMEvent" {
			var d struct {
				Request map[string]any `json:"scim_request"`
			}
			if json.Unmarshal(e.Data, &d) == nil && d.Request["userName"] != nil {
				scimWithRequest++
			}
		}
	}
	if jsonBytes != st.JSONBytes {
		t.Errorf("stats count %d JSON bytes, marshalling gives %d", st.JSONBytes, jsonBytes)
	}
	delete(devices, "")
	if got := sortedKeys(devices); !slices.Equal(got, []string{"Bot", "Desktop", "Mobile", "Tablet", "Unknown"}) {
		t.Errorf("devices %v, want the five", got)
	}
	delete(methods, "")
	delete(methods, "Impersonate")
	if len(methods) != 8 {
		t.Errorf("methods %v, want eight", sortedKeys(methods))
	}
	if len(projects) != genProjects+1 { // plus "" for company-level events
		t.Errorf("%d projects, want %d and the company level", len(projects), genProjects)
	}
	if ties == 0 {
		t.Error("no two consecutive events share a millisecond; ties must be exercised")
	}
	if userModifiedWithChange == 0 || scimWithRequest == 0 {
		t.Errorf("UserModified with data.Change: %d, SCIMEvent with scim_request: %d", userModifiedWithChange, scimWithRequest)
	}
}

func TestGeneratorContinuesWithFreshIDs(t *testing.T) {
	first, _ := generate(t, GenOptions{Events: 500, Seed: 3, End: testEnd}, 100)
	more, _ := generate(t, GenOptions{Events: 500, Seed: 3, End: testEnd, FirstIndex: 500}, 100)
	ids := map[string]bool{}
	for _, e := range append(first, more...) {
		if ids[e.ID] {
			t.Fatalf("id %s repeated across the continuation", e.ID)
		}
		ids[e.ID] = true
	}
}

func TestNewGeneratorRejectsBadOptions(t *testing.T) {
	for _, o := range []GenOptions{{Events: 10}, {Events: -1, End: testEnd}} {
		if _, err := NewGenerator(o); err == nil {
			t.Errorf("NewGenerator(%+v) accepted", o)
		}
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
