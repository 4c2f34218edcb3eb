package e2e

import "github.com/audittrail/audittrail/internal/stream/streamtest"

// HTTPOutages are the ways an HTTP destination fails, each applied to
// every receiver at once: it answers 500 without taking the batch, it
// drops connections, and it takes batches but the answers are lost (so
// those batches arrive again: at least once).
func HTTPOutages(rvs ...*streamtest.Receiver) []Outage {
	set := func(o streamtest.Outage) func() {
		return func() {
			for _, rv := range rvs {
				rv.SetOutage(o)
			}
		}
	}
	up := set(streamtest.Up)
	return []Outage{
		{Name: "HTTP 500", Down: set(streamtest.Status500), Up: up},
		{Name: "connections dropped", Down: set(streamtest.CloseConn), Up: up},
		{Name: "answers lost", Down: set(streamtest.LoseAnswer), Up: up},
	}
}

// InOrder gives the arrivals of a destination that keeps one order (a
// webhook receiver, a log index), from the ids in arrival order.
func InOrder(ids []string) []Arrival {
	out := make([]Arrival, len(ids))
	for i, id := range ids {
		out[i] = Arrival{ID: id}
	}
	return out
}
