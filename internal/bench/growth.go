package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read report %s: %w", path, err)
	}
	return &r, nil
}

// WriteGrowth writes how each engine's figures grow between runs of
// different sizes (issue 3: "show how cost grows"): per shape the p50 and
// p99 at each size and the factor from the first run to the last, then
// ingest and disk. Runs should share seed and options but for --events.
func WriteGrowth(w io.Writer, runs []*Report) error {
	if len(runs) < 2 {
		return fmt.Errorf("%w: growth needs at least two reports", ErrInvalidOptions)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	head := []string{"p50 / p99 ms", "engine"}
	for _, r := range runs {
		head = append(head, thousands(int64(r.Events))+" events")
	}
	head = append(head, "growth p50 / p99")
	row(head...)
	first, last := runs[0], runs[len(runs)-1]
	for _, eng := range first.Engines {
		for _, shape := range Shapes {
			cells := []string{shape, eng.Name}
			for _, r := range runs {
				s := r.engine(eng.Name).shapeOrNil(shape)
				if s == nil {
					cells = append(cells, "-")
					continue
				}
				cells = append(cells, ms(s.P50Ms)+" / "+ms(s.P99Ms))
			}
			a, z := first.engine(eng.Name).shapeOrNil(shape), last.engine(eng.Name).shapeOrNil(shape)
			if a != nil && z != nil && a.P50Ms > 0 && a.P99Ms > 0 {
				cells = append(cells, fmt.Sprintf("%.1fx / %.1fx", z.P50Ms/a.P50Ms, z.P99Ms/a.P99Ms))
			} else {
				cells = append(cells, "-")
			}
			row(cells...)
		}
		for _, m := range []struct {
			label string
			f     func(e *EngineReport) string
		}{
			{"batch ingest ev/s", func(e *EngineReport) string { return thousands(int64(e.IngestPerSec)) }},
			{"bytes on disk", func(e *EngineReport) string { return bytesHuman(e.DiskBytes) }},
			{"peak RSS (bench process)", func(e *EngineReport) string { return bytesHuman(e.PeakRSSBytes) }},
		} {
			cells := []string{m.label, eng.Name}
			for _, r := range runs {
				if e := r.engine(eng.Name); e != nil {
					cells = append(cells, m.f(e))
				} else {
					cells = append(cells, "-")
				}
			}
			row(append(cells, "")...)
		}
		row()
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) engine(name string) *EngineReport {
	for i := range r.Engines {
		if r.Engines[i].Name == name {
			return &r.Engines[i]
		}
	}
	return nil
}

// shapeOrNil is shape on a report that may lack the engine.
func (e *EngineReport) shapeOrNil(name string) *ShapeReport {
	if e == nil {
		return nil
	}
	return e.shape(name)
}
