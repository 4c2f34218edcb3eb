package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report for machines.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as the table a person reads: the trail,
// ingest figures per engine, then per query shape each engine's p50 / p99
// in milliseconds and how many times slower each other engine is than the
// first.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	if r.Command != "" {
		fmt.Fprintf(&b, "$ %s\n", r.Command)
	}
	fmt.Fprintf(&b, "audittrail-bench  %s events  seed %d  %d queries/shape  page size %d  GOMAXPROCS %d%s  %s\n",
		thousands(int64(r.Events)), r.Seed, r.QueriesPerShape, r.PageSize, r.GOMAXPROCS, gcPace(r), r.Started.Format("2006-01-02 15:04 UTC"))
	t := r.Trail
	fmt.Fprintf(&b, "trail: %s events, %.0f B of JSON each on average (%s raw), hot project %.1f %%, no tenant %.1f %%, "+
		"several tenants %.1f %%, company-level %.1f %%, %d actions, %d countries, %s users, %s IPs\n\n",
		thousands(int64(t.Events)), r.AvgJSONBytes, bytesHuman(t.JSONBytes), 100*t.HotShare(), 100*t.NoTenantShare(),
		pct(t.MultiTenant, t.Events-t.CompanyLevel), pct(t.CompanyLevel, t.Events), t.Actions, t.Geos,
		thousands(int64(t.DistinctUsers)), thousands(int64(t.DistinctIPs)))

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	head := []string{"ingest"}
	for _, e := range r.Engines {
		head = append(head, e.Name)
	}
	row(head...)
	perEngine := func(label string, f func(e EngineReport) string) {
		cells := []string{label}
		for _, e := range r.Engines {
			cells = append(cells, f(e))
		}
		row(cells...)
	}
	perEngine(fmt.Sprintf("batch append (%d/call) ev/s", r.BatchSize), func(e EngineReport) string {
		if e.Reused {
			return "loaded earlier"
		}
		return thousands(int64(e.IngestPerSec))
	})
	perEngine("ingest CPU of this process µs/ev*", func(e EngineReport) string { return fmt.Sprintf("%.1f", e.IngestCPUMicrosPerEvent) })
	perEngine("load wall time s", func(e EngineReport) string { return fmt.Sprintf("%.1f", e.LoadSeconds) })
	perEngine("post-load (vacuum) s", func(e EngineReport) string { return fmt.Sprintf("%.1f", e.PostLoadSeconds) })
	perEngine(fmt.Sprintf("single events, %d clients ev/s", r.Concurrency), func(e EngineReport) string { return thousands(int64(e.SinglePerSec)) })
	perEngine("single append p99 ms", func(e EngineReport) string { return fmt.Sprintf("%.2f", e.SingleP99Ms) })
	perEngine("visible after ack p50/p99 ms", func(e EngineReport) string {
		s := fmt.Sprintf("%.2f / %.2f", e.VisibilityP50Ms, e.VisibilityP99Ms)
		if e.VisibilityMisses > 0 {
			s += fmt.Sprintf(" (%d missed)", e.VisibilityMisses)
		}
		return s
	})
	perEngine("reopen after kill -9 s (lost acked)", func(e EngineReport) string {
		if e.RestartAcked == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f (%d)", e.RestartSeconds, max(0, e.RestartAcked-e.RestartFound))
	})
	perEngine("bytes on disk", func(e EngineReport) string {
		if r.Trail.JSONBytes == 0 {
			return bytesHuman(e.DiskBytes)
		}
		return fmt.Sprintf("%s (%.0f %% of JSON)", bytesHuman(e.DiskBytes), 100*float64(e.DiskBytes)/float64(r.Trail.JSONBytes))
	})
	perEngine("bytes on disk after compaction (s)", func(e EngineReport) string {
		if e.DiskBytesCompacted == 0 {
			return "-"
		}
		pct := ""
		if r.Trail.JSONBytes > 0 {
			pct = fmt.Sprintf(", %.0f %% of JSON", 100*float64(e.DiskBytesCompacted)/float64(r.Trail.JSONBytes))
		}
		return fmt.Sprintf("%s (%.1f s%s)", bytesHuman(e.DiskBytesCompacted), e.CompactSeconds, pct)
	})
	perEngine("page cache warmed before shapes", func(e EngineReport) string {
		if e.Warmings == 0 {
			return "-"
		}
		return fmt.Sprintf("%s x%d, %.1f s", bytesHuman(e.WarmBytes), e.Warmings, e.WarmSeconds)
	})
	perEngine("peak RSS of bench process*", func(e EngineReport) string { return bytesHuman(e.PeakRSSBytes) })
	perEngine("peak Pss of server processes**", func(e EngineReport) string {
		if e.ServerPeakPssBytes == 0 {
			return "in process"
		}
		return bytesHuman(e.ServerPeakPssBytes)
	})
	row()

	head = []string{"query p50 / p99 ms"}
	for _, e := range r.Engines {
		head = append(head, e.Name)
	}
	for _, e := range r.Engines[min(1, len(r.Engines)):] {
		head = append(head, e.Name+"/"+r.Engines[0].Name)
	}
	head = append(head, "mean total")
	row(head...)
	ratios := make([][]float64, len(r.Engines)) // per other engine, the p50 ratios
	for _, shape := range Shapes {
		cells := []string{shape}
		var ref *ShapeReport
		var meanTotal float64
		for i, e := range r.Engines {
			s := e.shape(shape)
			if s == nil {
				cells = append(cells, "-")
				continue
			}
			if i == 0 {
				ref, meanTotal = s, s.MeanTotal
			}
			c := fmt.Sprintf("%s / %s", ms(s.P50Ms), ms(s.P99Ms))
			if s.Queries < r.QueriesPerShape {
				c += fmt.Sprintf(" (n=%d)", s.Queries)
			}
			if s.Errors > 0 {
				c += fmt.Sprintf(" (%d err)", s.Errors)
			}
			cells = append(cells, c)
		}
		for i, e := range r.Engines[min(1, len(r.Engines)):] {
			s := e.shape(shape)
			if ref == nil || s == nil || ref.P50Ms <= 0 || ref.P99Ms <= 0 {
				cells = append(cells, "-")
				continue
			}
			p50, p99 := s.P50Ms/ref.P50Ms, s.P99Ms/ref.P99Ms
			ratios[i+1] = append(ratios[i+1], p50)
			cells = append(cells, fmt.Sprintf("%.1fx / %.1fx", p50, p99))
		}
		cells = append(cells, thousands(int64(meanTotal+0.5)))
		row(cells...)
	}
	if len(r.Engines) > 1 {
		cells := []string{"median shape (p50 ratio)"}
		for range r.Engines {
			cells = append(cells, "")
		}
		for i := range r.Engines[1:] {
			cells = append(cells, fmt.Sprintf("%.1fx", median(ratios[i+1])))
		}
		cells = append(cells, "")
		row(cells...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	r.writeTargets(&b)
	b.WriteString("\nshapes (each with the exact total; page size as above):\n")
	for _, shape := range Shapes {
		fmt.Fprintf(&b, "  %-22s %s\n", shape, ShapeDescriptions[shape])
	}
	b.WriteString("\nengines:")
	for _, e := range r.Engines {
		fmt.Fprintf(&b, "\n%s: %s", e.Name, e.Note)
		if e.Error != "" {
			fmt.Fprintf(&b, "\n  ERROR: %s", e.Error)
		}
	}
	if r.budgetRanOut() {
		fmt.Fprintf(&b, "\n(n=…): the shape's %.0f s budget ran out after n timed queries.", r.ShapeBudgetSec)
	}
	b.WriteString("\n* VmHWM, or CPU time less the trail generator's, of this process while the engine ran: the whole\n" +
		"  engine when it runs in process (embedded), only the client for PostgreSQL engines, whose server is\n" +
		"  another process.\n" +
		"** PostgreSQL engines: all postgres processes of this machine (shared buffers counted once), sampled\n" +
		"   every 0.5 s; the server is shared, so other databases' work counts too.\n")
	if n := len(r.Disagreements); n > 0 {
		fmt.Fprintf(&b, "\nWARNING: %d queries answered differently (total or first page) — a bug in one of the engines:\n", n)
		byShape := map[string]int{}
		for _, d := range r.Disagreements {
			byShape[d.Engine+" "+d.Shape]++
		}
		keys := make([]string, 0, len(byShape))
		for k := range byShape {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %-40s %d queries\n", k, byShape[k])
		}
		for _, d := range r.Disagreements[:min(10, n)] {
			fmt.Fprintf(&b, "  %s #%d: %s total %d, %s total %d, page differs %v: %s\n",
				d.Shape, d.Query, d.RefEngine, d.RefTotal, d.Engine, d.Total, d.PageDiffers, d.Description)
		}
	} else if len(r.Engines) > 1 {
		b.WriteString("\nAll engines agreed on every total and first page.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) budgetRanOut() bool {
	for _, e := range r.Engines {
		for _, s := range e.Shapes {
			if s.Queries < r.QueriesPerShape {
				return true
			}
		}
	}
	return false
}

func (e *EngineReport) shape(name string) *ShapeReport {
	for i := range e.Shapes {
		if e.Shapes[i].Shape == name {
			return &e.Shapes[i]
		}
	}
	return nil
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// gcPace describes the collector's pace of the run (reports from before it
// was recorded have none).
func gcPace(r *Report) string {
	switch {
	case r.GOGC == 0 && r.GoMemLimit == 0:
		return ""
	case r.GoMemLimit == math.MaxInt64:
		return fmt.Sprintf("  GOGC %d", r.GOGC)
	}
	return fmt.Sprintf("  GOGC %d  GOMEMLIMIT %s", r.GOGC, bytesHuman(r.GoMemLimit))
}
