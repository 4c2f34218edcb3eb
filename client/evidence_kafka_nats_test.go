package client_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/client"
)

// fixtureGroup is f.batch as a channel receives it: the events, and the
// evidence its first message carries.
func fixtureGroup(t *testing.T, f *streamFixture, from, to int, size uint64) ([]json.RawMessage, []byte) {
	b := f.batch(from, to, size)
	return b["audits"].([]json.RawMessage), body(t, b["evidence"])
}

func feed(t *testing.T, cv *client.ChannelVerifier, groups ...[]json.RawMessage) []client.EvidenceProblem {
	t.Helper()
	var all []client.EvidenceProblem
	for _, g := range groups {
		ev := []byte(g[0])
		for _, m := range g[1:] {
			var evidence []byte
			if ev != nil {
				evidence, ev = ev, nil
			}
			ps, err := cv.Message("k", evidence, m)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ps...)
		}
	}
	ps, err := cv.Flush()
	if err != nil {
		t.Fatal(err)
	}
	return append(all, ps...)
}

// group is one evidence header followed by the messages of its group.
func group(t *testing.T, f *streamFixture, from, to int, size uint64, edit func([]json.RawMessage) []json.RawMessage) []json.RawMessage {
	evs, ev := fixtureGroup(t, f, from, to, size)
	evs = append([]json.RawMessage(nil), evs...)
	if edit != nil {
		evs = edit(evs)
	}
	return append([]json.RawMessage{ev}, evs...)
}

func TestChannelVerifier(t *testing.T) {
	f := newStreamFixture(t, 30)
	newCV := func() *client.ChannelVerifier {
		return &client.ChannelVerifier{Verifier: &client.StreamVerifier{VerifierKey: f.k.vkey}}
	}
	want := func(name string, ps []client.EvidenceProblem, id, reason string) {
		t.Helper()
		for _, p := range ps {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				return
			}
		}
		t.Errorf("%s: want a problem for %q about %q, got %v", name, id, reason, ps)
	}

	// Clean, with the prefix of a failed produce stored before its retry
	// (Kafka: e10, e11 of the group, then the whole group again).
	partial := group(t, f, 10, 20, 20, func(m []json.RawMessage) []json.RawMessage { return m[:2] })
	if ps := feed(t, newCV(), group(t, f, 0, 10, 12, nil), partial, group(t, f, 10, 20, 20, nil), group(t, f, 20, 30, 30, nil)); len(ps) != 0 {
		t.Fatalf("clean stream: %v", ps)
	}
	// A byte-identical repeat inside a group is a redelivery.
	if ps := feed(t, newCV(), group(t, f, 0, 10, 12, func(m []json.RawMessage) []json.RawMessage { return append(m, m[3]) })); len(ps) != 0 {
		t.Fatalf("repeat in a group: %v", ps)
	}

	// A gap right after leaf 0, in the first group a verifier sees (the
	// previous leaf of the batch is 0, which must count as one).
	want("dropped after leaf 0", feed(t, newCV(), group(t, f, 0, 10, 12, func(m []json.RawMessage) []json.RawMessage {
		return append(m[:1:1], m[2:]...)
	})), "e2", "missing")

	first := group(t, f, 0, 10, 12, nil)
	want("dropped", feed(t, newCV(), first, group(t, f, 10, 20, 20, func(m []json.RawMessage) []json.RawMessage {
		return append(m[:4:4], m[5:]...)
	})), "e15", "missing")
	want("swapped", feed(t, newCV(), first, group(t, f, 10, 20, 20, func(m []json.RawMessage) []json.RawMessage {
		m[2], m[3] = m[3], m[2]
		return m
	})), "e12", "reordered")
	want("altered", feed(t, newCV(), first, group(t, f, 10, 20, 20, func(m []json.RawMessage) []json.RawMessage {
		m[5] = json.RawMessage(`{"id":"e15","action":"A","data":{"n":999}}`)
		return m
	})), "e15", "altered")
	want("injected", feed(t, newCV(), first, group(t, f, 10, 20, 20, func(m []json.RawMessage) []json.RawMessage {
		return append(m, json.RawMessage(`{"id":"forged"}`))
	})), "forged", "no proof")
	want("replayed", feed(t, newCV(), first, group(t, f, 10, 20, 20, nil), first), "e0", "old batch replayed")

	// A message before any evidence on its channel (read from the middle,
	// or its group's first message removed).
	ps, err := newCV().Message("k", nil, json.RawMessage(`{"id":"e3"}`))
	if err != nil || len(ps) != 1 || ps[0].ID != "e3" {
		t.Fatalf("a message without evidence: %v, %v", ps, err)
	}
}

// VerifyS3Batch merges a batch's objects back into batch order: one
// object per "day" here, lines alternating between them.
func TestVerifyS3Batch(t *testing.T) {
	f := newStreamFixture(t, 20)
	newV := func() *client.StreamVerifier { return &client.StreamVerifier{VerifierKey: f.k.vkey} }
	s3batch := func(from, to int, size uint64, edit func(a, b [][]byte) ([][]byte, [][]byte)) ([]byte, map[string][]byte) {
		raw := f.batch(from, to, size)
		audits := raw["audits"].([]json.RawMessage)
		ev := raw["evidence"].(client.StreamEvidence)
		s := client.S3Evidence{Evidence: &ev, Objects: []client.S3EvidenceObject{{Key: "a"}, {Key: "b"}}}
		var a, b [][]byte
		for i, rec := range audits {
			o := i % 2
			s.Objects[o].Lines = append(s.Objects[o].Lines, i)
			if o == 0 {
				a = append(a, append(rec, '\n'))
			} else {
				b = append(b, append(rec, '\n'))
			}
		}
		if edit != nil {
			a, b = edit(a, b)
		}
		join := func(ls [][]byte) []byte {
			var out []byte
			for _, l := range ls {
				out = append(out, l...)
			}
			return out
		}
		return body(t, s), map[string][]byte{"a": join(a), "b": join(b)}
	}
	check := func(v *client.StreamVerifier, ev []byte, objs map[string][]byte) []client.EvidenceProblem {
		t.Helper()
		ps, err := v.VerifyS3Batch(ev, objs)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	want := func(name string, ps []client.EvidenceProblem, id, reason string) {
		t.Helper()
		for _, p := range ps {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				return
			}
		}
		t.Errorf("%s: want a problem for %q about %q, got %v", name, id, reason, ps)
	}
	v := newV()
	for _, r := range [][2]int{{0, 10}, {10, 20}} {
		ev, objs := s3batch(r[0], r[1], uint64(r[1]), nil)
		if ps := check(v, ev, objs); len(ps) != 0 {
			t.Fatalf("clean batch %v: %v", r, ps)
		}
	}
	tampered := func(name, id, reason string, edit func(a, b [][]byte) ([][]byte, [][]byte)) {
		t.Helper()
		v := newV()
		ev, objs := s3batch(0, 10, 10, nil)
		check(v, ev, objs)
		ev, objs = s3batch(10, 20, 20, edit)
		want(name, check(v, ev, objs), id, reason)
	}
	// Object a holds e10, e12, e14, …; b holds e11, e13, ….
	tampered("dropped", "e15", "missing", func(a, b [][]byte) ([][]byte, [][]byte) { return append(a[:2:2], a[3:]...), b })
	tampered("swapped", "e12", "reordered", func(a, b [][]byte) ([][]byte, [][]byte) { a[1], a[2] = a[2], a[1]; return a, b })
	tampered("altered", "e13", "altered", func(a, b [][]byte) ([][]byte, [][]byte) {
		b[1] = []byte(`{"id":"e13","action":"B","data":{"n":13}}` + "\n")
		return a, b
	})
	tampered("object lost", "e12", "missing", func(a, b [][]byte) ([][]byte, [][]byte) { return a, nil })
}
