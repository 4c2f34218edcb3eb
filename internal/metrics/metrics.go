// Package metrics is a small registry of counters and histograms that
// writes the Prometheus text exposition format (version 0.0.4). It covers
// what the service exports and nothing more, so it needs no dependency.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBuckets suit request latencies in seconds: from 0.5 ms to 10 s.
var DefaultBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []family
	names    map[string]bool
}

type family interface {
	name() string
	write(w io.Writer) error
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

func (r *Registry) register(f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[f.name()] {
		panic("metrics: duplicate metric " + f.name()) // a programming error, found at start-up
	}
	r.names[f.name()] = true
	r.families = append(r.families, f)
}

// WriteTo writes every family in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	cw := &countingWriter{w: w}
	for _, f := range fams {
		if err := f.write(cw); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

// Handler serves the registry at /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = r.WriteTo(w)
	})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// vec keeps one child per combination of label values.
type vec[T any] struct {
	fullName, help string
	labels         []string
	newChild       func() *T
	mu             sync.RWMutex
	children       map[string]*T
	values         map[string][]string
}

func (v *vec[T]) name() string { return v.fullName }

func (v *vec[T]) with(values ...string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", v.fullName, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	c, ok := v.children[key]
	v.mu.RUnlock()
	if ok {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.children[key]; ok {
		return c
	}
	c = v.newChild()
	v.children[key] = c
	v.values[key] = slices.Clone(values)
	return c
}

// sorted returns children ordered by label values, so output is stable.
func (v *vec[T]) sorted() ([]string, []*T) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	keys := make([]string, 0, len(v.children))
	for k := range v.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*T, len(keys))
	labels := make([]string, len(keys))
	for i, k := range keys {
		out[i] = v.children[k]
		labels[i] = v.labelString(v.values[k], "", "")
	}
	return labels, out
}

// labelString renders {a="x",b="y"} with an optional extra pair (le).
func (v *vec[T]) labelString(values []string, extraName, extraValue string) string {
	if len(v.labels) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range v.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(v.labels) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName)
		b.WriteString(`="`)
		b.WriteString(extraValue)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func checkNames(name string, labels []string) {
	if !validName(name) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	for _, l := range labels {
		if !validName(l) || strings.Contains(l, ":") || l == "le" {
			panic("metrics: invalid label name " + strconv.Quote(l))
		}
	}
}

// Counter only goes up.
type Counter struct{ bits atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Add adds d, which must not be negative.
func (c *Counter) Add(d float64) {
	if d < 0 {
		panic("metrics: counter decreased")
	}
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Value is the current count.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// CounterVec is a counter family partitioned by labels.
type CounterVec struct{ v *vec[Counter] }

// NewCounterVec registers a counter family; labels may be empty.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	checkNames(name, labels)
	cv := &CounterVec{v: &vec[Counter]{fullName: name, help: help, labels: labels,
		newChild: func() *Counter { return &Counter{} }, children: map[string]*Counter{}, values: map[string][]string{}}}
	r.register(cv)
	return cv
}

// NewCounter registers a counter without labels.
func (r *Registry) NewCounter(name, help string) *Counter {
	return r.NewCounterVec(name, help).With()
}

// With returns the counter for these label values, creating it at zero.
func (cv *CounterVec) With(values ...string) *Counter { return cv.v.with(values...) }

func (cv *CounterVec) name() string { return cv.v.fullName }

func (cv *CounterVec) write(w io.Writer) error {
	labels, cs := cv.v.sorted()
	if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", cv.v.fullName, helpEscaper.Replace(cv.v.help), cv.v.fullName); err != nil {
		return err
	}
	for i, c := range cs {
		if _, err := fmt.Fprintf(w, "%s%s %s\n", cv.v.fullName, labels[i], formatFloat(c.Value())); err != nil {
			return err
		}
	}
	return nil
}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	upper  []float64
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	count  uint64
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // first bucket with upper >= v
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

// ObserveSince records the seconds elapsed since start.
func (h *Histogram) ObserveSince(start time.Time) { h.Observe(time.Since(start).Seconds()) }

// HistogramVec is a histogram family partitioned by labels.
type HistogramVec struct{ v *vec[Histogram] }

// NewHistogramVec registers a histogram family; nil buckets means
// DefaultBuckets. Buckets must be strictly increasing.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	checkNames(name, labels)
	if buckets == nil {
		buckets = DefaultBuckets
	}
	for i := 1; i < len(buckets); i++ {
		if buckets[i] <= buckets[i-1] {
			panic("metrics: buckets of " + name + " are not strictly increasing")
		}
	}
	upper := slices.Clone(buckets)
	hv := &HistogramVec{v: &vec[Histogram]{fullName: name, help: help, labels: labels,
		newChild: func() *Histogram {
			return &Histogram{upper: upper, counts: make([]uint64, len(upper)+1)}
		}, children: map[string]*Histogram{}, values: map[string][]string{}}}
	r.register(hv)
	return hv
}

// NewHistogram registers a histogram without labels.
func (r *Registry) NewHistogram(name, help string, buckets []float64) *Histogram {
	return r.NewHistogramVec(name, help, buckets).With()
}

// With returns the histogram for these label values.
func (hv *HistogramVec) With(values ...string) *Histogram { return hv.v.with(values...) }

func (hv *HistogramVec) name() string { return hv.v.fullName }

func (hv *HistogramVec) write(w io.Writer) error {
	n := hv.v.fullName
	if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", n, helpEscaper.Replace(hv.v.help), n); err != nil {
		return err
	}
	hv.v.mu.RLock()
	keys := make([]string, 0, len(hv.v.children))
	for k := range hv.v.children {
		keys = append(keys, k)
	}
	hv.v.mu.RUnlock()
	sort.Strings(keys)
	for _, k := range keys {
		hv.v.mu.RLock()
		h, values := hv.v.children[k], hv.v.values[k]
		hv.v.mu.RUnlock()
		h.mu.Lock()
		counts := slices.Clone(h.counts)
		sum, count := h.sum, h.count
		h.mu.Unlock()
		var cum uint64
		for i, up := range h.upper {
			cum += counts[i]
			if _, err := fmt.Fprintf(w, "%s_bucket%s %d\n", n, hv.v.labelString(values, "le", formatFloat(up)), cum); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "%s_bucket%s %d\n", n, hv.v.labelString(values, "le", "+Inf"), count); err != nil {
			return err
		}
		ls := hv.v.labelString(values, "", "")
		if _, err := fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", n, ls, formatFloat(sum), n, ls, count); err != nil {
			return err
		}
	}
	return nil
}

// GaugeFunc reports a value computed at scrape time (e.g. goroutines).
type GaugeFunc struct {
	fullName, help string
	fn             func() float64
}

// NewGaugeFunc registers a gauge read from fn on every scrape.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	checkNames(name, nil)
	r.register(&GaugeFunc{fullName: name, help: help, fn: fn})
}

func (g *GaugeFunc) name() string { return g.fullName }

func (g *GaugeFunc) write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", g.fullName, helpEscaper.Replace(g.help), g.fullName, g.fullName, formatFloat(g.fn()))
	return err
}

// collector writes families kept elsewhere (another package's own
// registry) in the same exposition.
type collector struct {
	fullName string
	fn       func(w io.Writer) error
}

// NewCollector registers fn, which writes complete metric families (HELP,
// TYPE and samples) in the text format on every scrape. name identifies
// it for duplicate detection only.
func (r *Registry) NewCollector(name string, fn func(w io.Writer) error) {
	r.register(&collector{fullName: name, fn: fn})
}

func (c *collector) name() string { return c.fullName }

func (c *collector) write(w io.Writer) error { return c.fn(w) }
