package stream_test

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// mixedEvents are n events over two projects and the company level, so a
// batch touches three trees.
func mixedEvents(prefix string, n int) []event.Event {
	evs := streamtest.Events("C1", "P1", prefix, n)
	for i := range evs {
		switch i % 3 {
		case 1:
			evs[i].ProjectID = "P2"
		case 2:
			evs[i].ProjectID, evs[i].Level = "", event.LevelCompany
		}
	}
	return evs
}

// TestEvidencePartsVerify: a batch's evidence (three trees) split to each size limit
// gives parts within it (a part over it only for a lone event), that
// together prove every event in order, each verified on its own by a
// receiver as a batch; small evidence is passed through unchanged.
func TestEvidencePartsVerify(t *testing.T) {
	for _, limit := range []int{1 << 20, 8000, 3000, 100} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			log := streamtest.NewEvidenceLog(t)
			v := &client.StreamVerifier{VerifierKey: log.VerifierKey}
			for b, n := range []int{1, 40, 500, 7} {
				events := mixedEvents(fmt.Sprintf("b%d", b), n)
				raw := log.Batch(t, events)
				parts, err := stream.EvidenceParts(stream.Batch{Events: events, Evidence: raw}, limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(raw) <= limit && (len(parts) != 1 || string(parts[0].JSON) != string(raw)) {
					t.Fatalf("evidence of %d bytes under the limit %d was rewritten into %d parts", len(raw), limit, len(parts))
				}
				at := 0
				for _, p := range parts {
					if len(p.JSON) > limit && p.Events > 1 {
						t.Fatalf("a part of %d events has %d bytes, limit %d", p.Events, len(p.JSON), limit)
					}
					var ev client.StreamEvidence
					if err := json.Unmarshal(p.JSON, &ev); err != nil {
						t.Fatal(err)
					}
					if len(ev.Checkpoints) > 3 || len(ev.Checkpoints) == 0 {
						t.Fatalf("part carries %d checkpoints", len(ev.Checkpoints))
					}
					var audits []json.RawMessage
					for i := at; i < at+p.Events; i++ {
						rec, _ := json.Marshal(&events[i])
						audits = append(audits, rec)
					}
					ps, err := v.VerifyBatch(audits, &ev)
					if err != nil || len(ps) != 0 {
						t.Fatalf("part of events %d..%d: %v %v", at, at+p.Events-1, err, ps)
					}
					at += p.Events
				}
				if at != n {
					t.Fatalf("parts prove %d of %d events", at, n)
				}
				if n == 500 && limit == 8000 && len(parts) < 10 {
					t.Fatalf("500 events in %d parts of at most 8000 bytes", len(parts))
				}
			}
		})
	}
	if _, err := stream.EvidenceParts(stream.Batch{Events: mixedEvents("x", 4), Evidence: streamtest.NewEvidenceLog(t).Batch(t, mixedEvents("x", 3))}, 100); err == nil {
		t.Fatal("evidence of 3 events split for 4")
	}
	if parts, err := stream.EvidenceParts(stream.Batch{Events: mixedEvents("x", 4)}, 100); parts != nil || err != nil {
		t.Fatalf("no evidence gave %v, %v", parts, err)
	}
}

// BenchmarkEvidenceParts: the CPU a log destination spends cutting a
// 500-event batch's evidence (three trees of ~33,000 leaves) to its
// record size limit, per batch; ns/op / 500 is the cost per event.
func BenchmarkEvidenceParts(b *testing.B) {
	log := streamtest.NewEvidenceLog(b)
	for range 200 {
		log.Batch(b, mixedEvents("w", 500))
	}
	events := mixedEvents("b", 500)
	batch := stream.Batch{Events: events, Evidence: log.Batch(b, events)}
	for _, limit := range []int{8192, 60000, 512 << 10} {
		b.Run(fmt.Sprint(limit), func(b *testing.B) {
			// Process CPU, steadier than wall time on a shared machine.
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			for b.Loop() {
				if _, err := stream.EvidenceParts(batch, limit); err != nil {
					b.Fatal(err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(len(events)), "cpu-ns/event")
		})
	}
}
