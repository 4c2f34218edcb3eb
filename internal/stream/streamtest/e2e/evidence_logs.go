package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/audittrail/audittrail/client"
)

// Receiver-side verification of the log destinations (Splunk HEC,
// Datadog, Sumo Logic, OTLP, syslog), which carry each batch's evidence as
// a separate record after its events: what a receiver holds is replayed
// through client.LogStream against the server's published key, clean and
// tampered with.

// LogRecord is one record a log destination holds, in arrival order: an
// event's wire JSON, or one evidence record (Evidence set).
type LogRecord struct {
	Event    json.RawMessage
	Evidence json.RawMessage
}

// VerifierKey is the checkpoint key the server publishes, as a receiver
// fetches it once.
func (r *Run) VerifierKey() string {
	r.t.Helper()
	k, err := r.Client.Ledger().CheckpointKey(context.Background())
	if err != nil || k.VerifierKey == "" {
		r.t.Fatalf("checkpoint key: %v", err)
	}
	return k.VerifierKey
}

// VerifyLogRecords verifies records as one receiver would and returns
// every problem found.
func VerifyLogRecords(t *testing.T, key string, recs []LogRecord) []client.EvidenceProblem {
	t.Helper()
	s := &client.LogStream{Verifier: &client.StreamVerifier{VerifierKey: key}}
	var problems []client.EvidenceProblem
	for i, rec := range recs {
		if rec.Evidence == nil {
			s.Event(rec.Event)
			continue
		}
		var ev client.StreamEvidence
		if err := json.Unmarshal(rec.Evidence, &ev); err != nil {
			t.Fatalf("record %d: evidence does not decode: %v", i, err)
		}
		ps, err := s.Evidence(&ev)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		problems = append(problems, ps...)
	}
	return append(problems, s.Finish()...)
}

// CheckLogEvidence asserts that every event the destination holds is
// proven by the evidence it holds, with no problem at all, and returns how
// many evidence records there were and the size of the largest.
func CheckLogEvidence(t *testing.T, key string, recs []LogRecord) (evidence, largest int) {
	t.Helper()
	if ps := VerifyLogRecords(t, key, recs); len(ps) > 0 {
		for _, p := range ps[:min(len(ps), 10)] {
			t.Errorf("%s", p)
		}
		t.Fatalf("%d problems in a clean stream of %d records", len(ps), len(recs))
	}
	for _, r := range recs {
		if r.Evidence != nil {
			evidence++
			largest = max(largest, len(r.Evidence))
		}
	}
	if evidence == 0 {
		t.Fatal("the destination holds no evidence record")
	}
	return evidence, largest
}

var gapLeaves = regexp.MustCompile(`^leaves (\d+) to (\d+) before it were never delivered|^leaf \d+ before it was never delivered`)

// CheckLossyLogEvidence is CheckLogEvidence for a destination that may
// lose what a killed receiver had read (syslog over TCP or TLS): the only
// problems allowed are missing and unproven events, and the missing
// leaves reported must be exactly the events lost plus those that arrived
// without their evidence (a batch cut after some of its events): the
// verifier saw every gap. It returns the missing leaves reported.
func CheckLossyLogEvidence(t *testing.T, key string, recs []LogRecord, lost int) (missing int) {
	t.Helper()
	unproven := 0
	for _, p := range VerifyLogRecords(t, key, recs) {
		switch {
		case strings.HasSuffix(p.Reason, "missing event"):
			missing++ // named by an evidence record
		case gapLeaves.MatchString(p.Reason):
			if m := gapLeaves.FindStringSubmatch(p.Reason); m[1] != "" {
				from, _ := strconv.Atoi(m[1])
				to, _ := strconv.Atoi(m[2])
				missing += to - from + 1
			} else {
				missing++
			}
		case strings.Contains(p.Reason, "unproven"):
			unproven++
		default:
			t.Fatalf("a problem other than a loss: %s", p)
		}
		t.Logf("reported: %s", p)
	}
	if missing != lost+unproven {
		t.Fatalf("the verifier reported %d missing leaves; %d events were lost and %d arrived without evidence", missing, lost, unproven)
	}
	return missing
}

// TamperLogRecords tampers with a copy of what a receiver holds in each
// way an attacker at the receiver could, and asserts the verifier reports
// each naming the event: an event's field altered, an event dropped, two
// events swapped, an old batch (its events and evidence) replayed at the
// end.
func TamperLogRecords(t *testing.T, key string, recs []LogRecord) {
	t.Helper()
	copies := map[string]int{}
	ids := make([]string, len(recs))
	for i, r := range recs {
		if r.Evidence == nil {
			var head struct {
				ID string `json:"id"`
			}
			json.Unmarshal(r.Event, &head)
			ids[i] = head.ID
			copies[head.ID]++
		}
	}
	proves := func(i int) (*client.StreamEvidence, map[string]bool) {
		var ev client.StreamEvidence
		if err := json.Unmarshal(recs[i].Evidence, &ev); err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		for _, l := range ev.Leaves {
			named[l.ID] = true
		}
		return &ev, named
	}
	// The largest checkpoint of each tree over the whole stream.
	largest := map[string]uint64{}
	for i, r := range recs {
		if r.Evidence != nil {
			ev, _ := proves(i)
			for _, l := range ev.Leaves {
				largest[l.Tree] = max(largest[l.Tree], l.Size)
			}
		}
	}
	// A batch in the stream whose two events just before its evidence it
	// proves, each delivered once, and whose checkpoint was outgrown.
	at := -1
	for i := 2; i < len(recs) && at < 0; i++ {
		if recs[i].Evidence == nil || recs[i-1].Evidence != nil || recs[i-2].Evidence != nil {
			continue
		}
		ev, named := proves(i)
		if !named[ids[i-1]] || !named[ids[i-2]] || copies[ids[i-1]] != 1 || copies[ids[i-2]] != 1 {
			continue
		}
		for _, l := range ev.Leaves {
			if l.Size < largest[l.Tree] {
				at = i
				break
			}
		}
	}
	if at < 0 {
		t.Fatal("no batch to tamper with: none has two events delivered once and an outgrown checkpoint")
	}
	a, b := ids[at-2], ids[at-1]
	clone := func() []LogRecord { return append([]LogRecord(nil), recs...) }
	want := func(name string, recs []LogRecord, id, reason string) {
		t.Helper()
		ps := VerifyLogRecords(t, key, recs)
		for _, p := range ps {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				t.Logf("%s: %s", name, p)
				return
			}
		}
		t.Errorf("%s: want a problem naming %s about %q, got %v", name, id, reason, ps)
	}

	altered := clone()
	var rec map[string]any
	if err := json.Unmarshal(altered[at-1].Event, &rec); err != nil {
		t.Fatal(err)
	}
	rec["action"] = "Tampered"
	altered[at-1].Event, _ = json.Marshal(rec)
	want("altered field", altered, b, "altered")

	dropped := clone()
	dropped = append(dropped[:at-1], dropped[at:]...)
	want("dropped event", dropped, b, "missing")

	swapped := clone()
	swapped[at-2], swapped[at-1] = swapped[at-1], swapped[at-2]
	want("swapped pair", swapped, a, "reordered")

	// The old batch again: the events it proves and its evidence.
	_, named := proves(at)
	replayed := clone()
	for i := 0; i <= at; i++ {
		if recs[i].Evidence == nil && named[ids[i]] {
			replayed = append(replayed, recs[i])
		}
	}
	replayed = append(replayed, recs[at])
	want("old batch replayed", replayed, b, "replayed")
}

// LogStore keeps what a fake destination took, in arrival order, for
// decoders that run in the destination's handler goroutines.
type LogStore struct {
	mu   sync.Mutex
	recs []LogRecord
}

func (s *LogStore) Add(recs ...LogRecord) {
	s.mu.Lock()
	s.recs = append(s.recs, recs...)
	s.mu.Unlock()
}

// Records returns a copy of what the destination holds.
func (s *LogStore) Records() []LogRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LogRecord(nil), s.recs...)
}
