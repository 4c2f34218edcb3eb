package embedded

import (
	"os"
	"testing"
)

// TestSegmentStats prints the size of each section of the segment files
// named by AUDITTRAIL_SEGSTAT (a diagnostic; skipped without it).
func TestSegmentStats(t *testing.T) {
	path := os.Getenv("AUDITTRAIL_SEGSTAT")
	if path == "" {
		t.Skip("set AUDITTRAIL_SEGSTAT to a segment file to print its section sizes")
	}
	s, err := openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	names := []string{"meta", "occurred", "seq", "bySeq", "keyOffs", "keyBytes", "blockOffs", "blockCRCs", "blocks", "dictOffs", "dictKeys", "postOffs", "postCRCs", "posts"}
	for i, n := range names {
		t.Logf("%-10s %12d bytes  %6.1f B/row", n, len(s.sec[i]), float64(len(s.sec[i]))/float64(s.n))
	}
	t.Logf("rows %d, keys %d, file %d bytes", s.n, s.meta.Keys, len(s.mm))
}
