package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

const natsServerBin = "/usr/sbin/nats-server"

func integration(t testing.TB) {
	t.Helper()
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("needs NATS JetStream on 127.0.0.1:4222 and " + natsServerBin + "; set AUDITTRAIL_INTEGRATION=1")
	}
}

// uniqueStream creates a JetStream stream capturing <prefix>.> on the
// server at url and deletes it when the test ends.
func uniqueStream(t *testing.T, url string) (name, prefix string) {
	t.Helper()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	name, prefix = "AUDITTRAIL_TEST_"+suffix, "audittrail_test_"+suffix
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{prefix + ".>"},
		Storage:    jetstream.FileStorage,
		Duplicates: 10 * time.Minute,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Logf("delete stream %s: %v", name, err)
		}
	})
	return name, prefix
}

type received struct {
	subject string
	header  natsgo.Header
	data    []byte
	event   event.Event
}

// readStream returns every message of the stream in stream order.
func readStream(t *testing.T, url, name string) []received {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.State.Msgs)
	var out []received
	if total == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for len(out) < total {
		batch, err := cons.Fetch(total-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			var e event.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatalf("message %s is not an event: %v", m.Data(), err)
			}
			out = append(out, received{subject: m.Subject(), header: m.Headers(), data: m.Data(), event: e})
			n++
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages", len(out), total)
		}
	}
	return out
}

// checkReceived asserts every sent event arrived once, in order, with the
// subject, headers and body it should have. JetStream dedupes by msg id, so
// no duplicates are tolerated either.
func checkReceived(t *testing.T, prefix string, sent []event.Event, got []received) {
	t.Helper()
	if len(got) != len(sent) {
		seen := map[string]int{}
		for _, r := range got {
			seen[r.event.ID]++
		}
		missing, dup := 0, 0
		for _, e := range sent {
			switch seen[e.ID] {
			case 0:
				missing++
			case 1:
			default:
				dup++
			}
		}
		t.Fatalf("stream holds %d messages, sent %d events (%d missing, %d duplicated)", len(got), len(sent), missing, dup)
	}
	for i, r := range got {
		want := sent[i]
		if r.event.ID != want.ID {
			t.Fatalf("message %d is event %s, want %s (order broken)", i, r.event.ID, want.ID)
		}
		if r.subject != subject(prefix, &want) {
			t.Errorf("event %s on subject %s, want %s", want.ID, r.subject, subject(prefix, &want))
		}
		if r.header.Get(jetstream.MsgIDHeader) != want.ID || r.header.Get(HeaderAction) != want.Action ||
			r.header.Get(HeaderType) != want.Type || r.header.Get(HeaderLevel) != string(want.Level) ||
			r.header.Get(HeaderProject) != want.ProjectID {
			t.Errorf("event %s has headers %v", want.ID, r.header)
		}
		if r.event.Action != want.Action || r.event.ProjectID != want.ProjectID || r.event.Occurred != want.Occurred ||
			r.event.UserID != want.UserID || string(r.event.Data) != string(want.Data) {
			t.Errorf("event %s decoded as %+v, want %+v", want.ID, r.event, want)
		}
	}
}

func newSink(t *testing.T, url, prefix, streamName string) *Sink {
	t.Helper()
	s, err := New(Config{URL: url, SubjectPrefix: prefix, Stream: streamName, Timeout: Duration(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestSharedServerDeliversInOrderAndDedupesRetries(t *testing.T) {
	integration(t)
	const url = "nats://127.0.0.1:4222"
	name, prefix := uniqueStream(t, url)
	s := newSink(t, url, prefix, name)

	var sent []event.Event
	ctx := context.Background()
	for b := range 5 {
		evs := streamtest.Mixed(b*100, 100, time.Millisecond)
		if err := s.Write(ctx, stream.Batch{ConnectorID: "c1", Events: evs}); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		sent = append(sent, evs...)
	}
	// A retry of an acknowledged batch, as after a crash before the cursor
	// was saved: JetStream must drop every copy.
	if err := s.Write(ctx, stream.Batch{ConnectorID: "c1", Events: sent[200:300]}); err != nil {
		t.Fatal(err)
	}
	checkReceived(t, prefix, sent, readStream(t, url, name))
}

func TestConnectRefusesAMissingStream(t *testing.T) {
	integration(t)
	s, err := New(Config{URL: "nats://127.0.0.1:4222", Stream: "AUDITTRAIL_NO_SUCH_STREAM"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err == nil {
		s.Close(context.Background())
		t.Fatal("Connect succeeded for a stream that does not exist")
	}
}

func TestWriteFailsWhenNoStreamCapturesTheSubject(t *testing.T) {
	integration(t)
	s := newSink(t, "nats://127.0.0.1:4222", "audittrail_nostream_"+strconv.FormatInt(time.Now().UnixNano(), 36), "")
	if err := s.Write(context.Background(), stream.Batch{Events: streamtest.Mixed(0, 3, time.Millisecond)}); err == nil {
		t.Fatal("Write returned nil though no stream stored the events")
	}
}

// ownServer is a nats-server child process that the test may kill.
type ownServer struct {
	t    *testing.T
	port int
	dir  string
	url  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

func startOwnServer(t *testing.T) *ownServer {
	t.Helper()
	if _, err := os.Stat(natsServerBin); err != nil {
		t.Fatalf("%s is missing (Debian package nats-server): %v", natsServerBin, err)
	}
	s := &ownServer{t: t, dir: t.TempDir()}
	// A port picked free can be taken before nats-server binds it: then
	// try another.
	for attempt := 1; ; attempt++ {
		s.port = streamtest.FreePort(t, "tcp")
		s.url = fmt.Sprintf("nats://127.0.0.1:%d", s.port)
		err := s.tryRun()
		if err == nil {
			break
		}
		s.kill()
		if attempt == 3 {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.kill)
	return s
}

// run brings the server back after an outage, on the same port and store.
func (s *ownServer) run() {
	if err := s.tryRun(); err != nil {
		s.t.Error(err)
	}
}

func (s *ownServer) tryRun() error {
	cmd := exec.Command(natsServerBin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		nc, err := natsgo.Connect(s.url, natsgo.Timeout(200*time.Millisecond))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err // for kill
			return fmt.Errorf("nats-server exited before it was ready on port %d: %v", s.port, err)
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nats-server on port %d did not become ready", s.port)
}

func (s *ownServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

func TestOutageMidStreamLosesNothing(t *testing.T) {
	integration(t)
	srv := startOwnServer(t)
	name, prefix := uniqueStream(t, srv.url)
	s := newSink(t, srv.url, prefix, name)

	const batches, perBatch = 20, 250
	var sent []event.Event
	retried := 0
	for b := range batches {
		evs := streamtest.Mixed(b*perBatch, perBatch, time.Millisecond)
		batch := stream.Batch{ConnectorID: "c1", Events: evs}
		switch b {
		case 6:
			// Down before the batch: the write and reconnects fail until
			// the server is back.
			srv.kill()
			go func() { time.Sleep(400 * time.Millisecond); srv.run() }()
		case 13:
			// Down while the batch is in flight.
			go func() { time.Sleep(time.Millisecond); srv.kill(); time.Sleep(300 * time.Millisecond); srv.run() }()
		}
		if n := streamtest.Deliver(t, s, batch, 60*time.Second); n > 1 {
			retried++
		}
		sent = append(sent, evs...)
	}
	if retried == 0 {
		t.Fatal("no batch needed a retry: the outage was not injected")
	}
	checkReceived(t, prefix, sent, readStream(t, srv.url, name))
}

// BenchmarkPublish compares the pipelined publish with one synchronous
// publish per event (go test -bench Publish -run ^$ with
// AUDITTRAIL_INTEGRATION=1).
func BenchmarkPublish(b *testing.B) {
	integration(b)
	for _, mode := range []string{"async", "sync"} {
		b.Run(mode, func(b *testing.B) {
			const url = "nats://127.0.0.1:4222"
			suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
			name, prefix := "AUDITTRAIL_BENCH_"+suffix, "audittrail_bench_"+suffix
			nc, err := natsgo.Connect(url)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}}); err != nil {
				b.Fatal(err)
			}
			defer js.DeleteStream(ctx, name)
			s, err := New(Config{URL: url, SubjectPrefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			s.syncPublish = mode == "sync"
			if err := s.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			const perBatch = 500
			evs := streamtest.Mixed(0, perBatch, time.Millisecond)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				for j := range evs {
					evs[j].ID = fmt.Sprintf("b%d-%d", i, j)
				}
				if err := s.Write(ctx, stream.Batch{Events: evs}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
