package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

func integration(t *testing.T) bool {
	t.Helper()
	return os.Getenv("AUDITTRAIL_INTEGRATION") == "1"
}

// testPostgresURL is the server the integration run uses: the local one
// unless AUDITTRAIL_BENCH_POSTGRES_URL names another.
func testPostgresURL() string {
	if u := os.Getenv("AUDITTRAIL_BENCH_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

func smallRun(t *testing.T, engines []string) *Report {
	t.Helper()
	opts := Options{
		Events: 2000, Engines: engines, DataDir: t.TempDir(), Seed: 11,
		QueriesPerShape: 10, Warmup: 1, Warm: true, SingleEvents: 200, Concurrency: 8, VisibilityProbes: 5,
		Database: "audittrail_bench_test", Logger: slog.New(slog.DiscardHandler), CrashChild: testCrashChild, CrashAfter: 300 * time.Millisecond,
	}
	opts.PostgresURL = testPostgresURL()
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRunEndToEnd loads a tiny trail into the embedded engine and the
// reference store (query.Match over everything), and with
// AUDITTRAIL_INTEGRATION=1 into both PostgreSQL engines too, and checks that
// every engine answered every shape and all agree with the reference.
func TestRunEndToEnd(t *testing.T) {
	engines := []string{"memory", "embedded"}
	if integration(t) {
		engines = append(engines, "pgtable", "postgres")
		t.Cleanup(func() {
			for _, e := range []string{"pgtable", "postgres"} {
				_ = dropDatabase(context.Background(), testPostgresURL(), "audittrail_bench_test_"+e)
			}
		})
	} else {
		t.Log("PostgreSQL engines skipped: set AUDITTRAIL_INTEGRATION=1 to run them")
	}
	rep := smallRun(t, engines)

	if rep.Trail.Events != 2000 || rep.AvgJSONBytes < 500 {
		t.Fatalf("trail stats %+v, avg %.0f B", rep.Trail, rep.AvgJSONBytes)
	}
	if len(rep.Engines) != len(engines) {
		t.Fatalf("%d engine reports for %v", len(rep.Engines), engines)
	}
	for _, e := range rep.Engines {
		if e.Error != "" {
			t.Fatalf("%s failed: %s", e.Name, e.Error)
		}
		// Every engine with data outside the heap read it back before
		// the shapes, once: the run is shorter than rewarmAfter; the
		// reference (memory) has none.
		if warmed := e.WarmBytes > 0 && e.WarmSeconds > 0 && e.Warmings == 1; warmed != (e.Name != "memory") {
			t.Errorf("%s: warmed %d B %d times in %.3f s", e.Name, e.WarmBytes, e.Warmings, e.WarmSeconds)
		}
		if e.IngestPerSec <= 0 || e.SinglePerSec <= 0 || e.SingleEvents != 200 || e.VisibilityProbes != 5 || e.VisibilityMisses != 0 {
			t.Errorf("%s: ingest %.0f/s, single %.0f/s (%d events), visibility %d probes %d missed",
				e.Name, e.IngestPerSec, e.SinglePerSec, e.SingleEvents, e.VisibilityProbes, e.VisibilityMisses)
		}
		if e.Name == "embedded" && e.IngestCPUMicrosPerEvent <= 0 {
			t.Errorf("embedded: ingest CPU %.1f µs/event", e.IngestCPUMicrosPerEvent)
		}
		if e.Name == "embedded" && (e.RestartAcked == 0 || e.RestartFound < e.RestartAcked || e.RestartSeconds <= 0) {
			t.Errorf("embedded restart after kill -9: %d acknowledged, %d found, %.2f s",
				e.RestartAcked, e.RestartFound, e.RestartSeconds)
		}
		if e.Name != "memory" && e.DiskBytes <= 0 {
			t.Errorf("%s: %d bytes on disk", e.Name, e.DiskBytes)
		}
		if e.PeakRSSBytes <= 0 {
			t.Errorf("%s: no peak RSS", e.Name)
		}
		if (e.Name == "pgtable" || e.Name == "postgres") && e.ServerPeakPssBytes <= 0 {
			t.Errorf("%s: the PostgreSQL server's memory was not sampled", e.Name)
		}
		if len(e.Shapes) != len(Shapes) {
			t.Fatalf("%s answered %d shapes, want %d", e.Name, len(e.Shapes), len(Shapes))
		}
		for _, s := range e.Shapes {
			if s.Errors > 0 || s.Queries != 10 || s.P50Ms <= 0 || s.P99Ms < s.P50Ms {
				t.Errorf("%s %s: %+v", e.Name, s.Shape, s)
			}
		}
	}
	for _, d := range rep.Disagreements {
		t.Errorf("%s %s #%d: total %d vs %s %d, page differs %v: %s",
			d.Engine, d.Shape, d.Query, d.Total, d.RefEngine, d.RefTotal, d.PageDiffers, d.Description)
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(append([]string{}, Shapes...), engines...) {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if ts := rep.CheckTargets(); len(ts) < 8 || !strings.Contains(table.String(), "issue 3 targets") {
		t.Errorf("%d targets checked; table:\n%s", len(ts), table.String())
	}
	if !strings.Contains(table.String(), "All engines agreed") {
		t.Errorf("table does not say the engines agreed:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Engines) != len(engines) {
		t.Fatalf("JSON report does not read back: %v", err)
	}
}

// lossyStore forgets the last event of every batch: the disagreement check
// must catch it.
type lossyStore struct{ *storetest.MemStore }

func (l lossyStore) Append(ctx context.Context, events []event.Event) error {
	if len(events) > 1 {
		events = events[:len(events)-1]
	}
	return l.MemStore.Append(ctx, events)
}

func TestRunReportsDisagreement(t *testing.T) {
	register("lossy", func(context.Context, EngineConfig) (Engine, error) {
		return &StoreEngine{Store: lossyStore{storetest.NewMemStore()}, About: "loses events"}, nil
	})
	t.Cleanup(func() { delete(registry, "lossy") })
	rep := smallRun(t, []string{"memory", "lossy"})
	if len(rep.Disagreements) == 0 {
		t.Fatal("an engine that lost 2 events in 2000 was not reported")
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "WARNING") {
		t.Fatalf("no warning row in the table:\n%s", table.String())
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Options{
		"no dir":         {Events: 10},
		"unknown engine": {Events: 10, DataDir: "/tmp/x", Engines: []string{"oracle"}},
		"twice":          {Events: 10, DataDir: "/tmp/x", Engines: []string{"memory", "memory"}},
		"page too big":   {Events: 10, DataDir: "/tmp/x", PageSize: 5000},
	} {
		o.EnsureDefaults()
		if o.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// slowEngine answers every search after a pause.
type slowEngine struct{ StoreEngine }

func (s *slowEngine) Search(ctx context.Context, q query.Query) (store.Result, error) {
	time.Sleep(5 * time.Millisecond)
	return s.StoreEngine.Search(ctx, q)
}

func TestShapeBudgetStopsSlowEngines(t *testing.T) {
	slow := &slowEngine{StoreEngine{Store: storetest.NewMemStore()}}
	set := QuerySet{Shape: ShapeUserID, Queries: make([]query.Query, 100)}
	sr, ans := runShape(context.Background(), slow, set, 0, 30*time.Millisecond)
	if sr.Queries == 0 || sr.Queries >= 100 {
		t.Fatalf("%d queries ran within a 30 ms budget at 5 ms each", sr.Queries)
	}
	ran := 0
	for _, a := range ans {
		if a.ran {
			ran++
		}
	}
	if ran != sr.Queries {
		t.Fatalf("%d answers marked as run, %d queries counted", ran, sr.Queries)
	}
	// Queries one engine skipped are not disagreements.
	full := make([]answer, 100)
	for i := range full {
		full[i] = answer{total: 0, page: hashPage(nil), ran: true, ok: true}
	}
	got := compareAnswers([]string{"a", "b"}, []QuerySet{set}, map[string][][]answer{"a": {full}, "b": {ans}})
	if len(got) != 0 {
		t.Fatalf("skipped queries reported as disagreements: %+v", got[0])
	}
}

func TestWriteGrowth(t *testing.T) {
	small := &Report{Events: 1000, Engines: []EngineReport{{Name: "embedded", IngestPerSec: 5000,
		Shapes: []ShapeReport{{Shape: ShapeUserID, P50Ms: 1, P99Ms: 2}}}}}
	big := &Report{Events: 10000, Engines: []EngineReport{{Name: "embedded", IngestPerSec: 4000,
		Shapes: []ShapeReport{{Shape: ShapeUserID, P50Ms: 3, P99Ms: 10}}}}}
	path := t.TempDir() + "/big.json"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := big.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteGrowth(&out, []*Report{small, back}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1,000 events", "10,000 events", "3.0x / 5.0x", "4,000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("growth table lacks %q:\n%s", want, out.String())
		}
	}
	if WriteGrowth(&out, []*Report{small}) == nil {
		t.Error("one report accepted")
	}
}

func TestCheckTargets(t *testing.T) {
	shapes := func(p50, p99 float64) []ShapeReport {
		var out []ShapeReport
		for _, s := range Shapes {
			out = append(out, ShapeReport{Shape: s, P50Ms: p50, P99Ms: p99})
		}
		return out
	}
	r := &Report{Events: 10, Trail: GenStats{JSONBytes: 1000}, Engines: []EngineReport{
		{Name: "embedded", IngestPerSec: 150_000, SingleEvents: 1, SinglePerSec: 10_000, VisibilityProbes: 1,
			VisibilityP99Ms: 1, DiskBytes: 300, PeakRSSBytes: 1 << 30, RestartAcked: 5, RestartFound: 5, RestartSeconds: 1,
			Shapes: shapes(1, 10)},
		{Name: "postgres", Shapes: shapes(30, 40)},
	}}
	r.Engines[0].Shapes[0].P99Ms = 60 // userId: structured p99 over 25 ms, and slower than postgres at p99
	got := map[string]bool{}
	for _, tg := range r.CheckTargets() {
		got[tg.What] = tg.Met
	}
	want := map[string]bool{
		"batch ingest": true, "single events, concurrent clients": false, "searchable after acknowledgement (p99)": true,
		"structured queries, worst p99": false, "text queries, worst p99": true, "deep page p99": true,
		"median shape vs postgres (p50)": true, "every shape vs postgres": false, "bytes on disk": true,
		"peak RSS": true, "ready after kill -9": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets\n got %v\nwant %v", got, want)
	}
}

// TestRunReusesKeptDatabases: a run with ReuseDatabases queries the
// PostgreSQL databases a --keep run loaded, agrees with a reference that
// loads the trail, keeps them, and refuses them for another trail.
func TestRunReusesKeptDatabases(t *testing.T) {
	if !integration(t) {
		t.Skip("set AUDITTRAIL_INTEGRATION=1 to run the PostgreSQL engines")
	}
	const db = "audittrail_bench_reuse"
	pg := []string{"pgtable", "postgres"}
	t.Cleanup(func() {
		for _, e := range pg {
			_ = dropDatabase(context.Background(), testPostgresURL(), db+"_"+e)
		}
	})
	// The trail moves with End, by default the minute the run starts:
	// runs a minute apart would load and query different trails.
	end := time.Now().Truncate(time.Minute).UnixMilli()
	run := func(events int, engines []string, keep, reuse bool) *Report {
		t.Helper()
		rep, err := Run(context.Background(), Options{
			Events: events, End: end, Engines: engines, DataDir: t.TempDir(), Seed: 5, QueriesPerShape: 5, Warmup: 1,
			SingleEvents: -1, VisibilityProbes: -1, Database: db, PostgresURL: testPostgresURL(),
			KeepData: keep, ReuseDatabases: reuse, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for _, e := range run(1500, pg, true, false).Engines {
		if e.Error != "" || e.Reused || e.IngestPerSec <= 0 {
			t.Fatalf("loading run, %s: error %q, reused %v, %.0f ev/s", e.Name, e.Error, e.Reused, e.IngestPerSec)
		}
	}
	for range 2 { // the reused databases are kept as they were, for the next run
		rep := run(1500, append([]string{"memory"}, pg...), false, true)
		for _, e := range rep.Engines {
			if e.Error != "" || len(e.Shapes) != len(Shapes) {
				t.Fatalf("%s: error %q, %d shapes", e.Name, e.Error, len(e.Shapes))
			}
			if reused := e.Name != "memory"; e.Reused != reused || (reused && e.IngestPerSec != 0) || e.DiskBytes < 0 {
				t.Fatalf("%s: reused %v, %.0f ev/s", e.Name, e.Reused, e.IngestPerSec)
			}
		}
		if len(rep.Disagreements) > 0 {
			t.Fatalf("the reused databases disagree with the reference: %+v", rep.Disagreements[0])
		}
		var table bytes.Buffer
		if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "loaded earlier") {
			t.Fatalf("table does not say the databases were loaded earlier (%v):\n%s", err, table.String())
		}
	}
	for _, e := range run(1000, pg, false, true).Engines {
		if !strings.Contains(e.Error, "holds 1500 events") {
			t.Errorf("%s reused a database of another trail: error %q", e.Name, e.Error)
		}
	}
	// The same trail a minute later: every Occurred shifted. The error
	// names the End that queries the kept trail.
	loaded := end
	end += 60_000
	for _, e := range run(1500, pg, false, true).Engines {
		if want := fmt.Sprintf("--end %d", loaded); !strings.Contains(e.Error, want) {
			t.Errorf("%s reused a database of a trail with another End: error %q, want it to say %q", e.Name, e.Error, want)
		}
	}
}
