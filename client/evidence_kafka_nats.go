package client

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Header names under which Kafka records and NATS messages carry stream
// evidence (docs/tamper-evidence.md): the first record or message of each
// group holds the group's StreamEvidence, the others nothing more.
const (
	KafkaEvidenceHeader = "audit-evidence"
	NATSEvidenceHeader  = "Audit-Evidence"
)

// ChannelVerifier checks a stream delivered one message per event over
// several ordered channels, as Kafka (a channel is a record key, whose
// records share one partition) and NATS (a channel is a subject) deliver
// it. The server cuts each batch into groups, one channel each, and the
// first message of a group carries the group's evidence in a header;
// messages until the channel's next evidence belong to the group. A group
// is verified when the channel's next group starts, or at Flush.
//
// Within a group, messages are paired with their proofs by event id, in
// the order they arrived: a message repeated byte for byte (a retried
// batch) is dropped, a proof without its message leaves a gap that the
// verifier reports as missing, messages out of leaf order are reported as
// reordered, and a message without a proof as unproven.
//
// Feed each channel's messages in the channel's order (Kafka: offset order
// of the partition; NATS: stream order); channels may interleave in any
// way. Not safe for concurrent use.
type ChannelVerifier struct {
	Verifier *StreamVerifier

	open map[string]*channelGroup
	keys []string // channels with an open group, in first-seen order
}

type channelGroup struct {
	ev     *StreamEvidence
	events []json.RawMessage
}

// Message takes the next message of channel: the event's JSON (the record
// value or message data) and the value of its evidence header (nil when it
// has none). It returns the problems of the group it closes, if any.
func (c *ChannelVerifier) Message(channel string, evidence, event []byte) ([]EvidenceProblem, error) {
	if c.open == nil {
		c.open = map[string]*channelGroup{}
	}
	var problems []EvidenceProblem
	g := c.open[channel]
	if len(evidence) > 0 {
		ev := &StreamEvidence{}
		if err := json.Unmarshal(evidence, ev); err != nil {
			return nil, fmt.Errorf("%w: evidence of channel %s: %w", ErrInvalidResponse, channel, err)
		}
		if g != nil {
			ps, err := c.verify(g)
			if err != nil {
				return nil, err
			}
			problems = ps
		} else {
			c.keys = append(c.keys, channel)
		}
		g = &channelGroup{ev: ev}
		c.open[channel] = g
	}
	if g == nil {
		return append(problems, EvidenceProblem{ID: eventID(event), Index: -1,
			Reason: "no evidence before it on its channel: its group's first message is missing, or was read from the middle"}), nil
	}
	g.events = append(g.events, append(json.RawMessage(nil), event...))
	return problems, nil
}

// Flush verifies every open group: call it once everything delivered so
// far was read. A group's last messages may still be on their way when a
// stream is read live; Flush then reports them as missing.
func (c *ChannelVerifier) Flush() ([]EvidenceProblem, error) {
	var problems []EvidenceProblem
	for _, k := range c.keys {
		ps, err := c.verify(c.open[k])
		if err != nil {
			return nil, err
		}
		problems = append(problems, ps...)
	}
	c.open, c.keys = nil, nil
	return problems, nil
}

func (c *ChannelVerifier) verify(g *channelGroup) ([]EvidenceProblem, error) {
	audits, ev := alignEvidence(g.events, g.ev)
	return c.Verifier.VerifyBatch(audits, ev)
}

func eventID(raw []byte) string {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &head)
	return head.ID
}

// alignEvidence pairs delivered events (in arrival order) with the proofs
// of ev by event id, for StreamVerifier.VerifyBatch: a byte-identical
// repeat is dropped (at least once delivery), a proof no event claims is
// left out (the verifier then sees the gap in leaf indexes), a changed
// repeat keeps its id's proof (reported as repeated or altered) and events
// without a proof go last, unpaired (reported as unproven).
func alignEvidence(events []json.RawMessage, ev *StreamEvidence) ([]json.RawMessage, *StreamEvidence) {
	free := map[string][]int{} // id → positions of its unclaimed proofs
	for i, l := range ev.Leaves {
		free[l.ID] = append(free[l.ID], i)
	}
	claimed := map[string]json.RawMessage{}
	first := map[string]InclusionProof{}
	out := *ev
	out.Leaves = make([]InclusionProof, 0, len(ev.Leaves))
	audits := make([]json.RawMessage, 0, len(events))
	var unproven []json.RawMessage
	for _, e := range events {
		id := eventID(e)
		if prev, ok := claimed[id]; ok && bytes.Equal(prev, e) {
			continue
		}
		switch pos := free[id]; {
		case len(pos) > 0:
			free[id] = pos[1:]
			if _, ok := claimed[id]; !ok {
				claimed[id], first[id] = e, ev.Leaves[pos[0]]
			}
			audits, out.Leaves = append(audits, e), append(out.Leaves, ev.Leaves[pos[0]])
		case claimed[id] != nil:
			audits, out.Leaves = append(audits, e), append(out.Leaves, first[id])
		default:
			unproven = append(unproven, e)
		}
	}
	return append(audits, unproven...), &out
}
