package bench

import (
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

// BenchmarkGenerator measures generation alone, which the load's wall time
// includes and its append rate does not.
func BenchmarkGenerator(b *testing.B) {
	g, err := NewGenerator(GenOptions{Events: b.N, Seed: 1, End: testEnd})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]event.Event, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for len(g.Fill(buf)) > 0 {
	}
	b.ReportMetric(g.Stats().AvgJSONBytes(), "json-bytes/event")
}
