package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// What the end-to-end test (package kafka_test) reuses of this package's
// fake cluster and checks.

type FakeKafka = fakeKafka

const TestTopic = testTopic

var (
	StartKafka    = startKafka
	CheckConsumed = checkConsumed
)

func (f *fakeKafka) Stop()        { f.stop() }
func (f *fakeKafka) Start()       { f.start() }
func (f *fakeKafka) Addr() string { return f.addr() }

// Consumed is one record of the topic as ConsumeAll returns it.
type Consumed = consumed

// ConsumeAll reads the topic from its start: at least atLeast records,
// then until it has been quiet for a moment.
func ConsumeAll(t *testing.T, addr string, atLeast int) []Consumed {
	return consumeAll(t, addr, atLeast)
}

func (c consumed) EventID() string { return c.event.ID }
func (c consumed) Key() string     { return c.key }
func (c consumed) Value() []byte   { return c.value }

// Evidence is the record's evidence header, nil when it has none.
func (c consumed) Evidence() []byte {
	if v, ok := c.headers[HeaderEvidence]; ok {
		return []byte(v)
	}
	return nil
}

// SetMaxEvidenceBytes changes the evidence header's bound until the test
// ends, so that groups are cut by size.
func SetMaxEvidenceBytes(t *testing.T, n int) {
	old := maxEvidenceBytes
	maxEvidenceBytes = n
	t.Cleanup(func() { maxEvidenceBytes = old })
}

// FailProduces makes the broker store every produce but answer it with an
// error, until heal is called: the producer cannot know the records are
// stored, so the batch in flight is sent again.
func (f *fakeKafka) FailProduces() (heal func()) {
	h := f.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicasAfterAppend, Count: -1})
	return h.Remove
}
