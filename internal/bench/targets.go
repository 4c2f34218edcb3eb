package bench

import (
	"fmt"
	"slices"
	"strings"
)

// Issue 3's targets for the embedded engine (2 cores, 10M events, warm).
const (
	targetBatchIngest   = 100_000 // events/s
	targetSingleIngest  = 20_000  // events/s from 64 clients
	targetVisibleMs     = 100
	targetStructuredP99 = 25 // ms
	targetTextP99       = 100
	targetDeepPageP99   = 50
	targetMedianRatio   = 20 // times faster than PostgreSQL on the median shape
	targetDiskShare     = 0.40
	targetRSSBytes      = 2 << 30
	targetRestartSec    = 5
)

// textShapes and structured shapes have different latency targets.
var textShapes = []string{ShapeTextWord, ShapeTextAction, ShapeTextRare}

// Target is one of issue 3's targets checked against a run.
type Target struct {
	What string `json:"what"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// CheckTargets checks issue 3's targets for the engine named embedded, against
// every PostgreSQL engine of the run. The targets are stated for 10M
// events; a smaller run only shows the direction.
func (r *Report) CheckTargets() []Target {
	emb := r.engine("embedded")
	if emb == nil || emb.Error != "" {
		return nil
	}
	var out []Target
	add := func(what, want, got string, met bool) {
		out = append(out, Target{What: what, Want: want, Got: got, Met: met})
	}
	add("batch ingest", fmt.Sprintf("≥ %s ev/s", thousands(targetBatchIngest)), thousands(int64(emb.IngestPerSec))+" ev/s",
		emb.IngestPerSec >= targetBatchIngest)
	if emb.SingleEvents > 0 {
		add("single events, concurrent clients", fmt.Sprintf("≥ %s ev/s", thousands(targetSingleIngest)),
			thousands(int64(emb.SinglePerSec))+" ev/s", emb.SinglePerSec >= targetSingleIngest)
	}
	if emb.VisibilityProbes > 0 {
		add("searchable after acknowledgement (p99)", fmt.Sprintf("≤ %d ms", targetVisibleMs),
			fmt.Sprintf("%.2f ms, %d missed", emb.VisibilityP99Ms, emb.VisibilityMisses),
			emb.VisibilityP99Ms <= targetVisibleMs && emb.VisibilityMisses == 0)
	}
	worst := func(shapes func(string) bool) (string, float64) {
		name, p99 := "", 0.0
		for _, s := range emb.Shapes {
			if shapes(s.Shape) && s.P99Ms >= p99 {
				name, p99 = s.Shape, s.P99Ms
			}
		}
		return name, p99
	}
	isText := func(s string) bool { return slices.Contains(textShapes, s) }
	if name, p99 := worst(func(s string) bool { return !isText(s) && s != ShapeDeepPage }); name != "" {
		add("structured queries, worst p99", fmt.Sprintf("≤ %d ms", targetStructuredP99), fmt.Sprintf("%s ms (%s)", ms(p99), name),
			p99 <= targetStructuredP99)
	}
	if name, p99 := worst(isText); name != "" {
		add("text queries, worst p99", fmt.Sprintf("≤ %d ms", targetTextP99), fmt.Sprintf("%s ms (%s)", ms(p99), name), p99 <= targetTextP99)
	}
	if s := emb.shape(ShapeDeepPage); s != nil {
		add("deep page p99", fmt.Sprintf("≤ %d ms", targetDeepPageP99), ms(s.P99Ms)+" ms", s.P99Ms <= targetDeepPageP99)
	}
	for _, pg := range []string{"postgres", "pgtable"} {
		other := r.engine(pg)
		if other == nil || other.Error != "" {
			continue
		}
		var ratios []float64
		var slower []string
		for _, s := range emb.Shapes {
			o := other.shape(s.Shape)
			if o == nil || s.P50Ms <= 0 {
				continue
			}
			ratios = append(ratios, o.P50Ms/s.P50Ms)
			if o.P50Ms <= s.P50Ms || o.P99Ms <= s.P99Ms {
				slower = append(slower, s.Shape)
			}
		}
		m := median(ratios)
		add("median shape vs "+pg+" (p50)", fmt.Sprintf("≥ %dx faster", targetMedianRatio), fmt.Sprintf("%.1fx", m), m >= targetMedianRatio)
		got := "every shape"
		if len(slower) > 0 {
			got = "not faster at p50 or p99 on " + strings.Join(slower, ", ")
		}
		add("every shape vs "+pg, "faster at p50 and p99", got, len(slower) == 0)
	}
	if r.Trail.JSONBytes > 0 {
		share := float64(emb.DiskBytes) / float64(r.Trail.JSONBytes)
		add("bytes on disk", fmt.Sprintf("≤ %.0f %% of the JSON", 100*targetDiskShare), fmt.Sprintf("%.0f %%", 100*share), share <= targetDiskShare)
	}
	add("peak RSS", "≤ 2 GiB", bytesHuman(emb.PeakRSSBytes), emb.PeakRSSBytes <= targetRSSBytes)
	if emb.RestartAcked > 0 {
		lost := max(0, emb.RestartAcked-emb.RestartFound)
		add("ready after kill -9", fmt.Sprintf("< %d s, nothing acknowledged lost", targetRestartSec),
			fmt.Sprintf("%.2f s, %d lost", emb.RestartSeconds, lost), emb.RestartSeconds < targetRestartSec && lost == 0)
	}
	return out
}

func (r *Report) writeTargets(b *strings.Builder) {
	ts := r.CheckTargets()
	if len(ts) == 0 {
		return
	}
	fmt.Fprintf(b, "\nissue 3 targets for embedded (stated for 10,000,000 events on 2 cores; this run: %s events):\n", thousands(int64(r.Events)))
	for _, t := range ts {
		mark := "met    "
		if !t.Met {
			mark = "NOT MET"
		}
		fmt.Fprintf(b, "  %s  %-40s want %-36s got %s\n", mark, t.What, t.Want, t.Got)
	}
}
