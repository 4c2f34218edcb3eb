package e2e

import (
	"testing"

	"github.com/audittrail/audittrail/internal/event"
)

// ReplayWindow is how far back a repeated event may lie behind the newest
// one delivered before it on its channel: the engine's default batch size
// (stream.Options.BatchMaxEvents), so a repeat can only be the batch in
// flight when a write failed after the destination took it.
const ReplayWindow = 500

// Arrival is one record as the destination holds it, in the order the
// destination keeps them: the event id and the ordered channel it
// travelled on (a Kafka key, an S3 directory and day; "" when the
// destination keeps a single order).
type Arrival struct {
	ID      string
	Channel string
}

// CheckOnceInOrder asserts that every sent event arrived, nothing else
// did, the first copies keep ingest order within each channel, and, when
// repeats is true, every repeated copy belongs to a batch in flight (less
// than ReplayWindow events behind the newest first copy of its channel);
// when false no repeat is allowed. It returns how many repeats it dropped.
func CheckOnceInOrder(t *testing.T, sent []event.Event, got []Arrival, repeats bool) (duplicates int) {
	t.Helper()
	index := make(map[string]int, len(sent))
	for i := range sent {
		index[sent[i].ID] = i
	}
	seen := make(map[string]bool, len(sent))
	newest := map[string]int{} // channel → highest ingest index arrived on it
	for pos, a := range got {
		i, ok := index[a.ID]
		if !ok {
			t.Fatalf("arrival %d is event %q, which was never sent (or sent before the connector existed)", pos, a.ID)
		}
		top, has := newest[a.Channel]
		if seen[a.ID] {
			duplicates++
			if !repeats {
				t.Fatalf("event %s arrived twice (arrival %d)", a.ID, pos)
			}
			if top-i >= ReplayWindow {
				t.Fatalf("event %s repeated at arrival %d, %d events behind the newest on channel %q: more than a batch in flight", a.ID, pos, top-i, a.Channel)
			}
			continue
		}
		seen[a.ID] = true
		if has && i < top {
			t.Fatalf("event %s (ingested #%d) arrived first after #%d on channel %q: ingest order broken", a.ID, i, top, a.Channel)
		}
		newest[a.Channel] = i
	}
	missing := 0
	for _, e := range sent {
		if !seen[e.ID] {
			if missing < 5 {
				t.Errorf("event %s (project %q, level %s) never arrived", e.ID, e.ProjectID, e.Level)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d events never arrived", missing, len(sent))
	}
	return duplicates
}
