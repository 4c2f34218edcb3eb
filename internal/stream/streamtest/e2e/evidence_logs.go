package e2e

import (
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
	for i, p := range VerifyLogRecords(t, key, recs) {
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
		if i < 5 {
			t.Logf("reported: %s", p)
		}
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
	ids, at := tamperTarget(t, recs)
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
	_, named := proves(t, recs, at)
	replayed := clone()
	for i := 0; i <= at; i++ {
		if recs[i].Evidence == nil && named[ids[i]] {
			replayed = append(replayed, recs[i])
		}
	}
	replayed = append(replayed, recs[at])
	want("old batch replayed", replayed, b, "replayed")
}

// tamperTarget picks a batch part in the stream: at least two events,
// each delivered once, then its evidence (at) proving exactly them, with a
// checkpoint later batches outgrew, in trees proven before and after it. It returns the event id of each record
// ("" for evidence) and at.
func tamperTarget(t *testing.T, recs []LogRecord) (ids []string, at int) {
	t.Helper()
	copies := map[string]int{}
	ids = make([]string, len(recs))
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
	// The largest checkpoint of each tree over the whole stream, and the
	// first and last evidence records proving an event of it.
	largest := map[string]uint64{}
	first, last := map[string]int{}, map[string]int{}
	for i, r := range recs {
		if r.Evidence != nil {
			ev, _ := proves(t, recs, i)
			for _, l := range ev.Leaves {
				largest[l.Tree] = max(largest[l.Tree], l.Size)
				if _, ok := first[l.Tree]; !ok {
					first[l.Tree] = i
				}
				last[l.Tree] = i
			}
		}
	}
	// A batch part in the stream: at least two events, each delivered once,
	// then the evidence proving exactly them, whose checkpoint was outgrown.
	at = -1
	start := 0 // the record after the evidence before i
	for i := 0; i < len(recs) && at < 0; i++ {
		if recs[i].Evidence == nil {
			continue
		}
		from := start
		start = i + 1
		ev, named := proves(t, recs, i)
		if i-from < 2 || len(ev.Leaves) != i-from {
			continue
		}
		once := true
		for j := from; j < i; j++ {
			once = once && named[ids[j]] && copies[ids[j]] == 1
		}
		// Each of its trees has events before and after it, so that a
		// loss of this part leaves a gap between two verified leaves.
		for _, l := range ev.Leaves {
			once = once && first[l.Tree] < i && last[l.Tree] > i
		}
		if !once {
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
		t.Fatal("no batch to tamper with: none has two or more events delivered once and an outgrown checkpoint")
	}
	return ids, at
}

// proves decodes the evidence record recs[i] and the ids it names.
func proves(t *testing.T, recs []LogRecord, i int) (*client.StreamEvidence, map[string]bool) {
	t.Helper()
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

// LoseLogBatch takes from a copy of what a receiver holds what a receiver
// killed mid-stream loses, and asserts the verifier reports every event of
// it as missing (CheckLossyLogEvidence): a whole batch part, its events
// and its evidence; and the tail of one, its last event and its evidence,
// leaving the others unproven.
func LoseLogBatch(t *testing.T, key string, recs []LogRecord) {
	t.Helper()
	_, at := tamperTarget(t, recs)
	start := at - 1
	for start > 0 && recs[start-1].Evidence == nil {
		start--
	}
	whole := append(append([]LogRecord(nil), recs[:start]...), recs[at+1:]...)
	t.Logf("a batch of %d events lost with its evidence:", at-start)
	CheckLossyLogEvidence(t, key, whole, at-start)
	tail := append(append([]LogRecord(nil), recs[:at-1]...), recs[at+1:]...)
	t.Logf("the last event of a batch of %d lost with its evidence:", at-start)
	if CheckLossyLogEvidence(t, key, tail, 1) != at-start {
		t.Fatalf("the verifier did not report the %d leaves of the cut batch missing", at-start)
	}
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
