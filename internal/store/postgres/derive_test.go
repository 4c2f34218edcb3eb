package postgres

import (
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/audittrail/audittrail/internal/store/storetest"
)

// TestDeriveAllMatchesDerive checks the split derivation against derive
// one event at a time: every candidate gets its own event's columns,
// whichever goroutine derived it, and the skipped events get none.
func TestDeriveAllMatchesDerive(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	events := storetest.Generate(7, 1000, storetest.GenOptions{})
	var candidates []int
	for i := range events {
		if i%7 != 3 { // as if every seventh were a repeat within the batch
			candidates = append(candidates, i)
		}
	}
	if len(candidates)/deriveChunk < 2 {
		t.Fatalf("%d candidates take the sequential path", len(candidates))
	}
	got := deriveAll(events, candidates)
	isCandidate := map[int]bool{}
	for _, i := range candidates {
		isCandidate[i] = true
	}
	for i := range events {
		want := derivedColumns{}
		if isCandidate[i] {
			want = derive(&events[i])
		}
		// ChangedFields comes out of a map: the attrs' order may differ.
		slices.Sort(got[i].attrs)
		slices.Sort(want.attrs)
		if !reflect.DeepEqual(got[i], want) {
			t.Fatalf("event %d (candidate %v): got %+v, want %+v", i, isCandidate[i], got[i], want)
		}
	}
}
