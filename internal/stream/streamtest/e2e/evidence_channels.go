package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/audittrail/audittrail/client"
)

// ChannelMessage is one Kafka record or NATS message as a receiver reads
// it: its ordered channel (record key, subject), the value of its evidence
// header (nil when none) and the event JSON it carries.
type ChannelMessage struct {
	Channel  string
	Evidence []byte
	Event    []byte
}

func (m ChannelMessage) id() string {
	var h struct{ ID string }
	_ = json.Unmarshal(m.Event, &h)
	return h.ID
}

// VerifierKey is the server's published checkpoint key, as a receiver
// pins it.
func (r *Run) VerifierKey() string {
	r.t.Helper()
	k, err := r.Client.Ledger().CheckpointKey(context.Background())
	if err != nil {
		r.t.Fatalf("checkpoint key: %v", err)
	}
	return k.VerifierKey
}

// VerifyChannels is a receiver's check of what it read, in the order it
// read it: every group through client.ChannelVerifier.
func (r *Run) VerifyChannels(key string, msgs []ChannelMessage) []client.EvidenceProblem {
	r.t.Helper()
	cv := &client.ChannelVerifier{Verifier: &client.StreamVerifier{VerifierKey: key}}
	var all []client.EvidenceProblem
	for _, m := range msgs {
		ps, err := cv.Message(m.Channel, m.Evidence, m.Event)
		if err != nil {
			r.t.Fatalf("verify: %v", err)
		}
		all = append(all, ps...)
	}
	ps, err := cv.Flush()
	if err != nil {
		r.t.Fatalf("verify: %v", err)
	}
	return append(all, ps...)
}

// CheckChannelEvidence is the receiver's side of a channel destination
// (Kafka, NATS): the stream it read (msgs, every event of the run) is
// proven with no problem and in more than one group, and each way of
// tampering with it at the receiver is reported by client.StreamVerifier
// naming the event: a field altered, an event dropped, two events
// swapped, an old group replayed after newer ones.
func (r *Run) CheckChannelEvidence(msgs []ChannelMessage) {
	r.t.Helper()
	key := r.VerifierKey()
	if ps := r.VerifyChannels(key, msgs); len(ps) != 0 {
		r.t.Fatalf("the stream as delivered: %d problems, first %v", len(ps), ps[0])
	}
	// Where each message's group starts, and how often each id came.
	groups, evBytes, eventBytes := 0, 0, 0
	count := map[string]int{}
	for _, m := range msgs {
		if m.Evidence != nil {
			groups++
		}
		evBytes += len(m.Evidence)
		eventBytes += len(m.Event)
		count[m.id()]++
	}
	if groups < 3 {
		r.t.Fatalf("%d messages in %d evidence groups: want several", len(msgs), groups)
	}
	r.t.Logf("%d messages proven in %d groups: %d bytes of evidence headers for %d bytes of events (%.0f%%)",
		len(msgs), groups, evBytes, eventBytes, 100*float64(evBytes)/float64(eventBytes))

	want := func(name string, tampered []ChannelMessage, id, reason string) {
		r.t.Helper()
		ps := r.VerifyChannels(key, tampered)
		for _, p := range ps {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				r.t.Logf("%s: %s", name, p)
				return
			}
		}
		r.t.Fatalf("%s: want a problem for %q about %q, got %v", name, id, reason, ps)
	}
	// next returns the position of the next message of i's channel.
	next := func(i int) int {
		for j := i + 1; j < len(msgs); j++ {
			if msgs[j].Channel == msgs[i].Channel {
				return j
			}
		}
		return -1
	}
	// A message inside a group (not its first), delivered once, followed
	// on its channel by another such message of the same group.
	pick := -1
	for i := len(msgs) / 2; i < len(msgs) && pick < 0; i++ {
		j := next(i)
		if msgs[i].Evidence == nil && count[msgs[i].id()] == 1 && j > 0 && msgs[j].Evidence == nil && count[msgs[j].id()] == 1 {
			pick = i
		}
	}
	if pick < 0 {
		r.t.Fatal("no two consecutive messages of one group, each delivered once")
	}
	after := next(pick)
	clone := func() []ChannelMessage { return append([]ChannelMessage(nil), msgs...) }

	altered := clone()
	ev := msgs[pick].Event
	changed := bytes.Replace(ev, []byte(`"action":"`), []byte(`"action":"x`), 1)
	if bytes.Equal(changed, ev) {
		r.t.Fatalf("message %s has no action to alter", ev)
	}
	altered[pick].Event = changed
	want("field altered", altered, msgs[pick].id(), "altered")

	dropped := append(clone()[:pick], msgs[pick+1:]...)
	want("event dropped", dropped, msgs[after].id(), "missing")

	swapped := clone()
	swapped[pick], swapped[after] = swapped[after], swapped[pick]
	want("two events swapped", swapped, msgs[pick].id(), "reordered")

	// The first group of a channel, replayed at the end: its events came
	// before, and its checkpoint is older than the ones seen since.
	first := 0
	for msgs[first].Evidence == nil {
		first++
	}
	replay := []ChannelMessage{msgs[first]}
	for j := next(first); j > 0 && msgs[j].Evidence == nil; j = next(j) {
		replay = append(replay, msgs[j])
	}
	want("old group replayed", append(clone(), replay...), msgs[first].id(), "old batch replayed")
}
