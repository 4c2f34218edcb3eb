package metrics

import (
	"bufio"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestExposition(t *testing.T) {
	r := NewRegistry()
	req := r.NewCounterVec("audittrail_http_requests_total", "HTTP requests by route and status.", "route", "code")
	req.With("search", "200").Add(2)
	req.With("event", "429").Inc()
	req.With(`we"ird\`+"\n", "500").Inc()
	h := r.NewHistogram("audittrail_search_seconds", "Search latency.", []float64{0.1, 1})
	h.Observe(0.05)
	h.Observe(0.1) // on the boundary: counted in le="0.1"
	h.Observe(0.5)
	h.Observe(7)
	r.NewGaugeFunc("audittrail_up", "Always 1.", func() float64 { return 1 })

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", ct)
	}
	want := `# HELP audittrail_http_requests_total HTTP requests by route and status.
# TYPE audittrail_http_requests_total counter
audittrail_http_requests_total{route="event",code="429"} 1
audittrail_http_requests_total{route="search",code="200"} 2
audittrail_http_requests_total{route="we\"ird\\\n",code="500"} 1
# HELP audittrail_search_seconds Search latency.
# TYPE audittrail_search_seconds histogram
audittrail_search_seconds_bucket{le="0.1"} 2
audittrail_search_seconds_bucket{le="1"} 3
audittrail_search_seconds_bucket{le="+Inf"} 4
audittrail_search_seconds_sum 7.65
audittrail_search_seconds_count 4
# HELP audittrail_up Always 1.
# TYPE audittrail_up gauge
audittrail_up 1
`
	if got := rec.Body.String(); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	checkFormat(t, rec.Body.String())
}

// checkFormat parses the text format loosely, as a scraper would: every
// sample line is `name{labels} value`, and every name has a TYPE first.
func checkFormat(t *testing.T, text string) {
	t.Helper()
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+)$`)
	typed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			typed[strings.Fields(line)[2]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("malformed sample line %q", line)
		}
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m[1], "")
		if !typed[m[1]] && !typed[base] {
			t.Fatalf("sample %q before its TYPE", line)
		}
	}
}

func TestHistogramLabelsAndConcurrency(t *testing.T) {
	r := NewRegistry()
	hv := r.NewHistogramVec("lat_seconds", "x", nil, "op")
	c := r.NewCounter("ops_total", "y")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				hv.With("ingest").Observe(0.002)
				c.Inc()
			}
		}()
	}
	wg.Wait()
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`lat_seconds_bucket{op="ingest",le="0.001"} 0`,
		`lat_seconds_bucket{op="ingest",le="0.0025"} 8000`,
		`lat_seconds_bucket{op="ingest",le="+Inf"} 8000`,
		`lat_seconds_count{op="ingest"} 8000`,
		"ops_total 8000",
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	checkFormat(t, b.String())
}

func TestRegistrationMistakesPanic(t *testing.T) {
	for name, fn := range map[string]func(r *Registry){
		"duplicate":  func(r *Registry) { r.NewCounter("a", ""); r.NewCounter("a", "") },
		"bad name":   func(r *Registry) { r.NewCounter("1a", "") },
		"le label":   func(r *Registry) { r.NewHistogramVec("h", "", nil, "le") },
		"bad bucket": func(r *Registry) { r.NewHistogram("h", "", []float64{1, 1}) },
		"arity":      func(r *Registry) { r.NewCounterVec("c", "", "x").With() },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn(NewRegistry())
		}()
	}
}

func TestCollector(t *testing.T) {
	r := NewRegistry()
	r.NewCounter("a_total", "A.").Inc()
	r.NewCollector("streams", func(w io.Writer) error {
		_, err := io.WriteString(w, "# HELP b_total B.\n# TYPE b_total counter\nb_total{c=\"x\"} 2\n")
		return err
	})
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "a_total 1\n") || !strings.Contains(b.String(), `b_total{c="x"} 2`) {
		t.Fatalf("%s", b.String())
	}
	checkFormat(t, b.String())
}
