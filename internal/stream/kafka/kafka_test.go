package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

func TestParseConfigNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		raw, field string
	}{
		{`"x"`, "(root)"},
		{`{"topic":"t"}`, "brokers"},
		{`{"brokers":["localhost"],"topic":"t"}`, "brokers[0]"},
		{`{"brokers":"localhost:9092","topic":"t"}`, "brokers"},
		{`{"brokers":["localhost:9092"]}`, "topic"},
		{`{"brokers":["localhost:9092"],"topic":"a/b"}`, "topic"},
		{`{"brokers":["localhost:9092"],"topic":"t","sasl":{"mechanism":"GSSAPI","username":"u","password":"p"}}`, "sasl.mechanism"},
		{`{"brokers":["localhost:9092"],"topic":"t","sasl":{"mechanism":"PLAIN","password":"p"}}`, "sasl.username"},
		{`{"brokers":["localhost:9092"],"topic":"t","sasl":{"mechanism":"PLAIN","username":"u"}}`, "sasl.password"},
		{`{"brokers":["localhost:9092"],"topic":"t","sasl":{"mechanism":"PLAIN","usr":"u"}}`, "sasl"},
		{`{"brokers":["localhost:9092"],"topic":"t","sasl":{"mechanism":1}}`, "sasl.mechanism"},
		{`{"brokers":["localhost:9092"],"topic":"t","caFile":"/x"}`, "tls"},
		{`{"brokers":["localhost:9092"],"topic":"t","compression":"brotli"}`, "compression"},
		{`{"brokers":["localhost:9092"],"topic":"t","timeout":"1 minute"}`, "timeout"},
		{`{"brokers":["localhost:9092"],"topic":"t","timeout":"500ms"}`, "timeout"},
		{`{"brokers":["localhost:9092"],"topic":"t","acks":1}`, "acks"},
	} {
		_, err := ParseConfig(json.RawMessage(tc.raw))
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want a ConfigError", tc.raw, err)
			continue
		}
		if ce.Field != tc.field {
			t.Errorf("%s: error names %q (%v), want %q", tc.raw, ce.Field, err, tc.field)
		}
		var fe *stream.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: the engine sees %v, want a stream.FieldError for %q", tc.raw, fe, tc.field)
		}
	}
	c, err := ParseConfig(json.RawMessage(`{"brokers":["localhost:9092"],"topic":"audit.events","compression":"zstd"}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Timeout) != DefaultTimeout {
		t.Fatalf("timeout default not applied: %v", c.Timeout)
	}
}

const testTopic = "audit-events"

// fakeKafka is a kfake cluster persisted in a directory so it can be shut
// down and brought back on the same port with its data.
type fakeKafka struct {
	t    testing.TB
	port int
	dir  string
	c    *kfake.Cluster
}

func startKafka(t testing.TB) *fakeKafka {
	f := &fakeKafka{t: t, port: streamtest.FreePort(t, "tcp"), dir: t.TempDir()}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeKafka) start() {
	f.t.Helper()
	var err error
	for range 50 { // the old listener's port may take a moment to free
		f.c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(f.port), kfake.DataDir(f.dir),
			kfake.SeedTopics(4, testTopic))
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("kfake: %v", err)
}

func (f *fakeKafka) stop() {
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
}

func (f *fakeKafka) addr() string { return "127.0.0.1:" + strconv.Itoa(f.port) }

type consumed struct {
	partition int32
	offset    int64
	key       string
	headers   map[string]string
	value     []byte
	event     event.Event
}

// consumeAll reads the topic from the start: at least atLeast records (or
// fails), then until it has been quiet for a moment.
func consumeAll(t *testing.T, addr string, atLeast int) []consumed {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []consumed
	for quiet := false; !quiet; {
		pollCtx := ctx
		if len(out) >= atLeast {
			// Have enough; drain whatever else (duplicates) is there.
			var cancel context.CancelFunc
			pollCtx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
		}
		fs := cl.PollFetches(pollCtx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want at least %d", len(out), atLeast)
		}
		if pollCtx.Err() != nil {
			quiet = true
			continue
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			c := consumed{partition: r.Partition, offset: r.Offset, key: string(r.Key), headers: map[string]string{}, value: r.Value}
			for _, h := range r.Headers {
				c.headers[h.Key] = string(h.Value)
			}
			if err := json.Unmarshal(r.Value, &c.event); err != nil {
				t.Fatalf("record %s is not an event: %v", r.Value, err)
			}
			out = append(out, c)
		})
	}
	return out
}

// checkConsumed asserts that, keeping the first copy of each id, every
// sent event arrived once with the right key and headers, each key on one
// partition, and in sent order within each key.
func checkConsumed(t *testing.T, sent []event.Event, got []consumed) (duplicates int) {
	t.Helper()
	first := map[string]consumed{}
	byKey := map[string][]string{}
	partitionOfKey := map[string]int32{}
	for _, c := range got {
		if _, dup := first[c.event.ID]; dup {
			duplicates++
			continue
		}
		first[c.event.ID] = c
		if p, ok := partitionOfKey[c.key]; ok && p != c.partition {
			t.Errorf("key %s on partitions %d and %d", c.key, p, c.partition)
		}
		partitionOfKey[c.key] = c.partition
		// got is in offset order within a partition, and one key has one
		// partition, so this is the key's stored order.
		byKey[c.key] = append(byKey[c.key], c.event.ID)
	}
	wantByKey := map[string][]string{}
	for _, e := range sent {
		c, ok := first[e.ID]
		if !ok {
			t.Fatalf("event %s never arrived", e.ID)
		}
		if c.key != Key(&e) || c.headers[HeaderID] != e.ID || c.headers[HeaderAction] != e.Action ||
			c.headers[HeaderType] != e.Type || c.headers[HeaderLevel] != string(e.Level) {
			t.Errorf("event %s: key %q headers %v", e.ID, c.key, c.headers)
		}
		if c.event.Action != e.Action || c.event.ProjectID != e.ProjectID || c.event.Occurred != e.Occurred ||
			string(c.event.Data) != string(e.Data) {
			t.Errorf("event %s decoded as %+v", e.ID, c.event)
		}
		wantByKey[Key(&e)] = append(wantByKey[Key(&e)], e.ID)
	}
	if len(first) != len(sent) {
		t.Fatalf("%d distinct events arrived, sent %d", len(first), len(sent))
	}
	for k, want := range wantByKey {
		gotIDs := byKey[k]
		for i := range want {
			if gotIDs[i] != want[i] {
				t.Fatalf("key %s: position %d holds %s, want %s (order broken)", k, i, gotIDs[i], want[i])
			}
		}
	}
	return duplicates
}

func newSink(t *testing.T, addr string) *Sink {
	t.Helper()
	s, err := New(Config{Brokers: []string{addr}, Topic: testTopic, Timeout: Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestConnectRefusesAnUnknownTopic(t *testing.T) {
	k := startKafka(t)
	s, err := New(Config{Brokers: []string{k.addr()}, Topic: "no-such-topic", Timeout: Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Connect: %v, want ErrUnknownTopic", err)
	}
}

func TestDeliversThroughOutagesInOrderPerKey(t *testing.T) {
	k := startKafka(t)
	s := newSink(t, k.addr())

	const batches, perBatch = 12, 200
	var sent []event.Event
	retried := 0
	for b := range batches {
		evs := streamtest.Mixed(b*perBatch, perBatch, time.Millisecond)
		switch b {
		case 3:
			// The cluster goes away and comes back with its data.
			k.stop()
			go func() { time.Sleep(1500 * time.Millisecond); k.start() }()
		case 6:
			// The broker stores the records but answers with an error, so
			// the producer cannot know they are stored: it resends with the
			// same sequence numbers until Write's deadline closes the
			// client, and the retry on a new producer id duplicates them.
			h := k.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicasAfterAppend, Count: -1})
			go func() { time.Sleep(1500 * time.Millisecond); h.Remove() }()
		case 9:
			// The broker refuses outright for longer than the timeout.
			h := k.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: -1})
			go func() { time.Sleep(1500 * time.Millisecond); h.Remove() }()
		}
		start := time.Now()
		n := streamtest.Deliver(t, s, stream.Batch{ConnectorID: "c1", Events: evs}, 60*time.Second)
		if n > 1 {
			retried++
		}
		t.Logf("batch %d: %d attempts, %v", b, n, time.Since(start).Round(time.Millisecond))
		sent = append(sent, evs...)
	}
	if retried < 2 {
		t.Fatalf("only %d batches needed a retry: the outages were not injected", retried)
	}
	dups := checkConsumed(t, sent, consumeAll(t, k.addr(), len(sent)))
	t.Logf("%d events, %d batches retried, %d duplicates dropped by id", len(sent), retried, dups)
}
