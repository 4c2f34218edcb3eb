package embedded_test

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// TestFormatStats prints, for a segment of the benchmark trail, the bytes
// per row of each section, the CPU per event of the segment write and the
// CPU of decoding one row of a page whose rows lie in different blocks.
// AUDITTRAIL_FORMAT_STATS=100000,1000000 names the segment sizes (rows)
// to write; a 100k segment holds the first 100k events of the
// 1M-event benchmark trail, as the benchmark's first flush does.
func TestFormatStats(t *testing.T) {
	spec := os.Getenv("AUDITTRAIL_FORMAT_STATS")
	if spec == "" {
		t.Skip("set AUDITTRAIL_FORMAT_STATS=100000[,1000000] to print segment figures")
	}
	for _, f := range splitComma(spec) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			t.Fatalf("bad size %q", f)
		}
		g, err := bench.NewGenerator(bench.GenOptions{Events: max(n, 1_000_000), Seed: 1, End: benchEnd})
		if err != nil {
			t.Fatal(err)
		}
		evs := g.Fill(make([]event.Event, n))
		jsonBytes := 0
		for i := range evs {
			jsonBytes += bench.WireSize(&evs[i])
		}
		// The formats compared: the previous version (16-row blocks), then
		// the current one with each block size of AUDITTRAIL_FORMAT_RPB
		// (default: the flush's and the merge's).
		type format struct{ ver, rpb int }
		formats := []format{{formatStatsPrev, 16}}
		rpbs := splitComma(os.Getenv("AUDITTRAIL_FORMAT_RPB"))
		if len(rpbs) == 0 {
			rpbs = []string{strconv.Itoa(embedded.FlushBlockRows()), strconv.Itoa(embedded.MergeBlockRows())}
		}
		for _, r := range rpbs {
			rpb, err := strconv.Atoi(r)
			if err != nil {
				t.Fatalf("bad block size %q", r)
			}
			formats = append(formats, format{embedded.SegVersion, rpb})
		}
		paths := make([]string, len(formats))
		for k, fm := range formats {
			label := "v" + strconv.Itoa(fm.ver) + "/" + strconv.Itoa(fm.rpb)
			dir := t.TempDir()
			path, cpu, err := embedded.WriteSegmentForTest(dir, slices.Clone(evs), fm.ver, fm.rpb)
			if err != nil {
				t.Fatal(err)
			}
			paths[k] = path
			if keep := os.Getenv("AUDITTRAIL_FORMAT_KEEP"); keep != "" {
				b, err := os.ReadFile(path)
				if err == nil {
					err = os.WriteFile(keep+"-v"+strconv.Itoa(fm.ver)+"-"+strconv.Itoa(fm.rpb)+"-"+f+".seg", b, 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			names, sizes, rows, file, err := embedded.SectionSizesForTest(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s segment of %d rows: JSON %.1f B/row, file %.1f B/row (%.1f %% of the JSON); write CPU %.2f µs/event",
				label, rows, float64(jsonBytes)/float64(rows), float64(file)/float64(rows), 100*float64(file)/float64(jsonBytes),
				float64(cpu.Nanoseconds())/1e3/float64(rows))
			for i, name := range names {
				if sizes[i] > 0 {
					t.Logf("  %-20s %12d bytes %7.2f B/row", name, sizes[i], float64(sizes[i])/float64(rows))
				}
			}
		}
		evs = nil
		// A page of 100 rows, each from a different block, spread over
		// the segment; the formats in turn, so that all see the same load.
		page := make([]int, 100)
		for i := range page {
			page[i] = (i*n/len(page) + 7) % n
		}
		per := make([]time.Duration, len(formats))
		for range 5 {
			for k, path := range paths {
				d, err := embedded.DecodeRowsForTest(path, page, 20)
				if err != nil {
					t.Fatal(err)
				}
				per[k] += d / 5
			}
		}
		for k, fm := range formats {
			t.Logf("one row of a 100-row page from distinct blocks, CPU: v%d with %d-row blocks %.1f µs",
				fm.ver, fm.rpb, float64(per[k].Nanoseconds())/1e3)
		}
	}
}

// formatStatsPrev is the previous segment version, which TestFormatStats
// compares with the current one.
const formatStatsPrev = 8

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
