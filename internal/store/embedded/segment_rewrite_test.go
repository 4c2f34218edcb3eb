package embedded

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestRewriteSegments rewrites every segment of a closed data directory
// with the merge writer, one segment at a time, each as a merge of itself
// alone (every row, deleted ones included): what the segments of an
// older build look like after merging with this one. Compact merges only
// what is not merged yet, so this is how a compacted directory is brought
// to the current layout for before/after query figures:
//
//	cp -a DIR COPY && AUDITTRAIL_REWRITE_DIR=COPY go test -run TestRewriteSegments -v ./internal/store/embedded
//
// It must not run on a directory an engine has open.
func TestRewriteSegments(t *testing.T) {
	dir := os.Getenv("AUDITTRAIL_REWRITE_DIR")
	if dir == "" {
		t.Skip("set AUDITTRAIL_REWRITE_DIR to a copy of a closed data directory")
	}
	segDir := filepath.Join(dir, segDirName)
	paths, err := filepath.Glob(filepath.Join(segDir, "*"+segSuffix))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no segments in %s: %v", segDir, err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	tmp := filepath.Join(dir, "rewrite.tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	var rows, before, after int64
	c0 := cpuTime()
	t0 := time.Now()
	for _, path := range paths {
		s, err := openSegment(path)
		if err != nil {
			t.Fatal(err)
		}
		refs := make([]mref, s.n)
		for j := range s.n {
			refs[j] = mref{0, s.bySeq(j)}
		}
		out, err := writeMergedSegment(tmp, s.meta.Gen, []*mergeIn{newMergeIn(s, dec)}, refs, enc, func() error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		before += int64(len(s.mm))
		rows += int64(s.n)
		t.Logf("%s: v%d, %d rows, %d-row blocks", filepath.Base(path), s.ver, s.n, s.rpb)
		s.close()
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		after += st.Size()
		if err := os.Rename(out, path); err != nil {
			t.Fatal(err)
		}
	}
	if err := syncDir(segDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d segments, %d rows: %d -> %d bytes (%.1f -> %.1f B/row); %.1f cpu-µs/row, %v",
		len(paths), rows, before, after, float64(before)/float64(rows), float64(after)/float64(rows),
		float64((cpuTime()-c0).Nanoseconds())/1e3/float64(rows), time.Since(t0).Round(time.Second))
}
