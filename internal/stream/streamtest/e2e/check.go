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

// Expect says what a destination may do besides holding every event once.
type Expect struct {
	// Repeats allows copies of the batch in flight when a write failed
	// after the destination took it: each less than ReplayWindow events
	// behind the newest first copy of its channel.
	Repeats bool
	// LostRuns is how many runs of events ingested one after the other
	// may be missing, each shorter than ReplayWindow. Only for a receiver
	// whose acknowledgement cannot tell "written" from "read, then
	// killed" (syslog over TCP: it closes the connection either way).
	LostRuns int
}

// CheckOnceInOrder asserts that every sent event arrived, nothing else
// did, the first copies keep ingest order within each channel, and, when
// repeats is true, every repeated copy belongs to a batch in flight; when
// false no repeat is allowed. It returns how many repeats it dropped.
func CheckOnceInOrder(t *testing.T, sent []event.Event, got []Arrival, repeats bool) (duplicates int) {
	t.Helper()
	duplicates, _ = CheckDelivered(t, sent, got, Expect{Repeats: repeats})
	return duplicates
}

// CheckDelivered is CheckOnceInOrder for what expect allows: repeats of
// the batch in flight, runs of lost events. It returns how many repeats it
// dropped and how many events were lost.
func CheckDelivered(t *testing.T, sent []event.Event, got []Arrival, expect Expect) (duplicates, lost int) {
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
			if !expect.Repeats {
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
	var runs [][2]int // [first, last] ingest indexes of each run of missing events
	for i, e := range sent {
		if seen[e.ID] {
			continue
		}
		lost++
		if n := len(runs); n > 0 && runs[n-1][1] == i-1 {
			runs[n-1][1] = i
		} else {
			runs = append(runs, [2]int{i, i})
		}
	}
	tooLong := false
	for _, r := range runs {
		tooLong = tooLong || r[1]-r[0]+1 >= ReplayWindow
	}
	if lost > 0 && (len(runs) > expect.LostRuns || tooLong) {
		for _, r := range runs[:min(len(runs), 5)] {
			t.Errorf("events %s … %s (ingested #%d to #%d) never arrived", sent[r[0]].ID, sent[r[1]].ID, r[0], r[1])
		}
		t.Fatalf("%d of %d events never arrived, in %d runs (%d allowed)", lost, len(sent), len(runs), expect.LostRuns)
	}
	for _, r := range runs {
		t.Logf("allowed loss: events %s … %s (%d) never arrived", sent[r[0]].ID, sent[r[1]].ID, r[1]-r[0]+1)
	}
	return duplicates, lost
}
