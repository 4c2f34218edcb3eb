package embedded_test

import (
	"testing"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

// TestIndexKeysBenchTrail holds the posting keys of the benchmark trail
// (the events BenchmarkIndexEvents times) to the reference definitions.
func TestIndexKeysBenchTrail(t *testing.T) {
	const n = 20_000
	g, err := bench.NewGenerator(bench.GenOptions{Events: n, Seed: 1, End: benchEnd})
	if err != nil {
		t.Fatal(err)
	}
	if err := embedded.CheckIndexKeys(g.Fill(make([]event.Event, n))); err != nil {
		t.Fatal(err)
	}
}
