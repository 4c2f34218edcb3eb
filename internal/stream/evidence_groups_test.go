package stream_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

// syntheticBatch is a batch of n events over two trees with evidence in the
// ledger's wire form: shared hashes, proofs by path (neighbouring leaves
// share most of theirs, as in a real batch).
func syntheticBatch(t testing.TB, n int) stream.Batch {
	t.Helper()
	trees := []string{"C1/project/P1", "C1/company"}
	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	type leaf struct {
		ID       string `json:"id"`
		Tree     string `json:"tree"`
		Index    uint64 `json:"index"`
		Size     uint64 `json:"size"`
		LeafHash []byte `json:"leafHash"`
		Hashes   []byte `json:"hashes"`
		Path     []int  `json:"path"`
	}
	var w struct {
		Checkpoints []string `json:"checkpoints"`
		Leaves      []leaf   `json:"leaves"`
		Nodes       [][]byte `json:"nodes"`
	}
	for _, tr := range trees {
		w.Checkpoints = append(w.Checkpoints, "audittrail/"+tr+"\n100000\nroot\n\n— audittrail sig\n")
	}
	b := stream.Batch{ConnectorID: "c"}
	slot := map[string]int{}
	for i := range n {
		tree := trees[i%3/2] // two of three in the project
		id := fmt.Sprintf("e%04d", i)
		b.Events = append(b.Events, event.Event{ID: id, Seq: uint64(i + 1)})
		l := leaf{ID: id, Tree: tree, Index: uint64(1000 + i), Size: 100000, LeafHash: hash(id)}
		for level := range 17 { // 17 hashes, the upper ones shared
			name := fmt.Sprintf("%s/%d/%d", tree, level, (1000+i)>>(level+1))
			k, ok := slot[name]
			if !ok {
				k = len(w.Nodes)
				slot[name] = k
				w.Nodes = append(w.Nodes, hash(name))
			}
			l.Path = append(l.Path, k)
		}
		w.Leaves = append(w.Leaves, l)
	}
	raw, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	b.Evidence = raw
	return b
}

// A part decodes (as receivers decode it) to exactly the proofs of its
// events, with the checkpoints of their trees only.
func TestGroupEvidencePart(t *testing.T) {
	b := syntheticBatch(t, 60)
	var whole client.StreamEvidence
	if err := json.Unmarshal(b.Evidence, &whole); err != nil {
		t.Fatal(err)
	}
	g, err := stream.OpenEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	var project []int
	for i, l := range whole.Leaves {
		if l.Tree == "C1/project/P1" {
			project = append(project, i)
		}
	}
	raw, err := g.Part(project)
	if err != nil {
		t.Fatal(err)
	}
	var part client.StreamEvidence
	if err := json.Unmarshal(raw, &part); err != nil {
		t.Fatal(err)
	}
	if len(part.Checkpoints) != 1 || !strings.HasPrefix(part.Checkpoints[0], "audittrail/C1/project/P1\n") {
		t.Fatalf("checkpoints of the project's part: %q", part.Checkpoints)
	}
	if len(part.Leaves) != len(project) {
		t.Fatalf("%d proofs for %d events", len(part.Leaves), len(project))
	}
	for j, i := range project {
		got, want := part.Leaves[j], whole.Leaves[i]
		if got.ID != want.ID || got.Index != want.Index || !bytes.Equal(got.LeafHash, want.LeafHash) ||
			!slices.EqualFunc(got.Hashes, want.Hashes, bytes.Equal) {
			t.Fatalf("proof %d of the part differs from proof %d of the batch", j, i)
		}
	}
	if len(raw) >= len(b.Evidence) {
		t.Fatalf("the part (%d bytes) is not smaller than the whole (%d)", len(raw), len(b.Evidence))
	}

	// Evidence that does not match the batch is refused, not cut wrongly.
	b.Events = b.Events[1:]
	if _, err := stream.OpenEvidence(b); err == nil {
		t.Fatal("evidence of 60 events opened for a batch of 59")
	}
}

// Split keeps every part under the bound (unless a part is one event),
// in order, covering every position once.
func TestGroupEvidenceSplit(t *testing.T) {
	b := syntheticBatch(t, 500)
	g, err := stream.OpenEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	all := make([]int, 500)
	for i := range all {
		all[i] = i
	}
	for _, bound := range []int{1 << 20, 64 << 10, 4 << 10, 10} {
		runs, evs, err := g.Split(all, bound)
		if err != nil {
			t.Fatal(err)
		}
		var joined []int
		for j, run := range runs {
			joined = append(joined, run...)
			if len(evs[j]) > bound && len(run) > 1 {
				t.Fatalf("bound %d: a part of %d events has %d bytes", bound, len(run), len(evs[j]))
			}
			var e client.StreamEvidence
			if err := json.Unmarshal(evs[j], &e); err != nil || len(e.Leaves) != len(run) || e.Leaves[0].ID != b.Events[run[0]].ID {
				t.Fatalf("bound %d: part %d does not decode to its events: %v", bound, j, err)
			}
		}
		if !slices.Equal(joined, all) {
			t.Fatalf("bound %d: the parts do not cover the batch in order", bound)
		}
		t.Logf("bound %d: %d parts", bound, len(runs))
	}
}

// BenchmarkGroupEvidence is the sinks' added work per batch: open a
// 500-event batch's evidence and cut it by tree, as Kafka and NATS do.
func BenchmarkGroupEvidence(b *testing.B) {
	batch := syntheticBatch(b, 500)
	var byTree [2][]int
	for i := range 500 {
		byTree[i%3/2] = append(byTree[i%3/2], i)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		g, err := stream.OpenEvidence(batch)
		if err != nil {
			b.Fatal(err)
		}
		for _, pos := range byTree {
			if _, _, err := g.Split(pos, 256<<10); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(batch.Evidence)), "evidence-bytes")
	// Process CPU, steadier than wall time on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// EvidenceRuns passes a one-group batch's evidence on untouched when it
// fits, and cuts it otherwise.
func TestEvidenceRuns(t *testing.T) {
	b := syntheticBatch(t, 30)
	all := make([]int, 30)
	for i := range all {
		all[i] = i
	}
	runs, evs, err := stream.EvidenceRuns(b, [][]int{all}, 1<<20)
	if err != nil || len(runs) != 1 || !bytes.Equal(evs[0], b.Evidence) {
		t.Fatalf("one group that fits: %d runs, %v, evidence passed on: %v", len(runs), err, len(evs) == 1 && bytes.Equal(evs[0], b.Evidence))
	}
	runs, _, err = stream.EvidenceRuns(b, [][]int{all[:10], all[10:]}, 1<<20)
	if err != nil || len(runs) != 2 || !slices.Equal(runs[1], all[10:]) {
		t.Fatalf("two groups: %v, %v", runs, err)
	}
	if runs, _, err := stream.EvidenceRuns(b, [][]int{all}, 2000); err != nil || len(runs) < 2 {
		t.Fatalf("one group over the bound: %d runs, %v", len(runs), err)
	}
	if runs, evs, err := stream.EvidenceRuns(stream.Batch{Events: b.Events}, [][]int{all}, 1<<20); runs != nil || evs != nil || err != nil {
		t.Fatal("a batch without evidence got some")
	}
}
