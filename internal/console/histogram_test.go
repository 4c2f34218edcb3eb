package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/console"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// typesByReference is a test double that counts with query.Types the
// reference way (query.Match over every page), so the histogram's count tree
// is checked whether or not the store under it honours Types yet.
type typesByReference struct{ store.Store }

func (s typesByReference) Search(ctx context.Context, q query.Query) (store.Result, error) {
	if len(q.Types) == 0 {
		return s.Store.Search(ctx, q)
	}
	all := q
	all.Types, all.Size, all.Page = nil, query.MaxSize, 0
	var res store.Result
	for {
		page, err := s.Store.Search(ctx, all)
		if err != nil {
			return store.Result{}, err
		}
		for i := range page.Events {
			if q.Match(&page.Events[i]) {
				res.Total++
			}
		}
		if len(page.Events) < all.Size {
			return res, nil
		}
		all.Page++
	}
}

func TestHistogramCountsPerBucketAndType(t *testing.T) {
	t.Run("reference Types", func(t *testing.T) {
		testHistogramCounts(t, newEnv(t, envConfig{consoleStore: func(s store.Store) store.Store { return typesByReference{s} }}), true)
	})
	t.Run("embedded store", func(t *testing.T) {
		testHistogramCounts(t, newEnv(t, envConfig{}), false)
	})
}

func testHistogramCounts(t *testing.T, e *env, reference bool) {
	// An hour that lies wholly in the past, on a minute boundary.
	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	type key struct {
		minute int
		typ    string
	}
	want := map[key]int{}
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{"info", "warn", "error"}
	var recs []client.Record
	wantTotal := 0
	for i := range 2000 {
		// Sparse on purpose: minutes 10-19 hold nothing, so the count tree
		// must skip them and still answer zeros.
		m := rng.IntN(60)
		if m >= 10 && m < 20 {
			continue
		}
		typ := types[rng.IntN(3)]
		action := "LoginSucceed"
		if i%5 == 0 {
			action = "UserModified" // excluded by the request below
		}
		occurred := t0.Add(time.Duration(m)*time.Minute + time.Duration(rng.IntN(60000))*time.Millisecond)
		recs = append(recs, client.Record{ID: fmt.Sprint("h", i), Action: action, Type: typ, Occurred: occurred})
		if action != "UserModified" {
			want[key{m, typ}]++
			wantTotal++
		}
	}
	// Just outside the range on both sides.
	recs = append(recs,
		client.Record{ID: "before", Action: "LoginSucceed", Type: "info", Occurred: t0.Add(-time.Millisecond)},
		client.Record{ID: "after", Action: "LoginSucceed", Type: "info", Occurred: t0.Add(time.Hour)})
	e.ingest(recs...)

	body := fmt.Sprintf(`{"excludedActions":["UserModified"],"from":%d,"to":%d,"bucket":"minute"}`,
		t0.UnixMilli(), t0.Add(time.Hour).UnixMilli()-1)
	r := e.post("/v1/mgmt/audit/histogram", e.auth(), body)
	if r.status != 200 {
		t.Fatalf("histogram: %d %s", r.status, r.body)
	}
	var h console.Histogram
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Bucket != "minute" || h.BucketMs != 60000 || len(h.Buckets) != 60 {
		t.Fatalf("bucket %q %d ms, %d bars; want minute, 60000, 60", h.Bucket, h.BucketMs, len(h.Buckets))
	}
	// The total is the one /search answers for the same request.
	sr := e.post("/v1/mgmt/audit/search", e.auth(), body)
	var res struct{ Total int }
	if err := json.Unmarshal(sr.body, &res); err != nil || sr.status != 200 {
		t.Fatalf("search: %d %s", sr.status, sr.body)
	}
	if h.Total != wantTotal || res.Total != wantTotal {
		t.Fatalf("histogram total %d, search total %d, want %d", h.Total, res.Total, wantTotal)
	}
	for i, b := range h.Buckets {
		if b.Start != t0.Add(time.Duration(i)*time.Minute).UnixMilli() {
			t.Fatalf("bar %d starts at %d", i, b.Start)
		}
	}
	if !reference && !typesHonoured(t, e) {
		t.Skip("the embedded store ignores query.Types: per-type counts cannot be checked until it honours them")
	}
	for i, b := range h.Buckets {
		for _, c := range []struct {
			typ string
			got int
		}{{"info", b.Info}, {"warn", b.Warn}, {"error", b.Error}} {
			if w := want[key{i, c.typ}]; c.got != w {
				t.Errorf("minute %d %s: %d, want %d", i, c.typ, c.got, w)
			}
		}
	}
}

func TestHistogramChoosesTheBucket(t *testing.T) {
	e := newEnv(t, envConfig{})
	now := time.Now()
	for _, c := range []struct {
		span   time.Duration
		bucket string
		bars   int // at most; at least bars-1 (alignment adds one)
	}{
		{15 * time.Minute, "minute", 16},
		{time.Hour, "minute", 61},
		{6 * time.Hour, "5m", 73},
		{24 * time.Hour, "15m", 97},
		{7 * 24 * time.Hour, "3h", 57},
		{30 * 24 * time.Hour, "12h", 61},
	} {
		from := now.Add(-c.span).UnixMilli()
		to := now.UnixMilli()
		r := e.post("/v1/mgmt/audit/histogram", e.auth(), fmt.Sprintf(`{"from":%d,"to":%d}`, from, to))
		if r.status != 200 {
			t.Fatalf("%v: %d %s", c.span, r.status, r.body)
		}
		var h console.Histogram
		if err := json.Unmarshal(r.body, &h); err != nil {
			t.Fatal(err)
		}
		n := len(h.Buckets)
		if n > console.MaxBuckets || n == 0 {
			t.Fatalf("%v: %d bars", c.span, n)
		}
		if h.Bucket != c.bucket || n > c.bars || n < c.bars-2 {
			t.Errorf("%v: %d × %s, want about %d × %s", c.span, n, h.Bucket, c.bars, c.bucket)
		}
		// The bars cover the range exactly: the first holds from, the last holds to.
		if h.Buckets[0].Start > from || h.Buckets[0].Start+h.BucketMs <= from ||
			h.Buckets[n-1].Start > to || h.Buckets[n-1].Start+h.BucketMs <= to {
			t.Errorf("%v: bars [%d, %d) do not cover [%d, %d]", c.span, h.Buckets[0].Start, h.Buckets[n-1].Start+h.BucketMs, from, to)
		}
	}
	// Day bars start at the viewer's midnight.
	r := e.post("/v1/mgmt/audit/histogram", e.auth(), fmt.Sprintf(`{"bucket":"day","utcOffsetMinutes":120,"from":%d}`, now.Add(-5*24*time.Hour).UnixMilli()))
	var h console.Histogram
	if err := json.Unmarshal(r.body, &h); err != nil || r.status != 200 {
		t.Fatalf("day: %d %s", r.status, r.body)
	}
	for _, b := range h.Buckets {
		if local := time.UnixMilli(b.Start).In(time.FixedZone("+2", 7200)); local.Hour() != 0 || local.Minute() != 0 {
			t.Fatalf("day bar starts at %v", local)
		}
	}
}

// BenchmarkHistogram times the histogram of a day holding 100,000 events
// (96 bars of 15 minutes) on the embedded store, with and without a filter:
//
//	go test -run '^$' -bench Histogram -benchtime 5x ./internal/console/
func BenchmarkHistogram(b *testing.B) {
	e := newEnv(b, envConfig{})
	now := time.Now().UTC()
	types := []string{"info", "warn", "error"}
	const n = 100_000
	batch := make([]event.Event, 0, 10_000)
	for i := range n {
		batch = append(batch, event.Event{
			ID: fmt.Sprint("b", i), CompanyID: e.creds.CompanyID, ProjectID: e.creds.ProjectID, Level: event.LevelProject,
			Action: []string{"LoginSucceed", "LoginFailed", "UserModified"}[i%3], Type: types[(i/3)%3],
			UserID: fmt.Sprint("u", i%500), Occurred: now.Add(-time.Duration(i) * 24 * time.Hour / n).UnixMilli(),
		})
		if len(batch) == cap(batch) {
			if err := e.st.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for _, c := range []struct{ name, body string }{
		{"all", `{}`},
		{"action", `{"actions":["LoginFailed"]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			from := now.Add(-24 * time.Hour).UnixMilli()
			body := strings.Replace(c.body, "{", fmt.Sprintf(`{"from":%d,`, from), 1)
			body = strings.Replace(body, ",}", "}", 1)
			for b.Loop() {
				req, _ := http.NewRequest("POST", e.srv.URL+"/v1/mgmt/audit/histogram", strings.NewReader(body))
				req.Header.Set("Authorization", e.auth())
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var h console.Histogram
				err = json.NewDecoder(resp.Body).Decode(&h)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || h.Total == 0 {
					b.Fatalf("%d %v %+v", resp.StatusCode, err, h)
				}
			}
		})
	}
}
