package otlp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

func TestParseConfigNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		raw, field string
	}{
		{`[]`, "(root)"},
		{`{}`, "endpoint"},
		{`{"endpoint":"collector:4318"}`, "endpoint"},
		{`{"endpoint":"http://c:4318?x=1"}`, "endpoint"},
		{`{"endpoint":"http://c:4318","headers":{"Content-Type":"text/plain"}}`, "headers.Content-Type"},
		{`{"endpoint":"http://c:4318","headers":{"a b":"c"}}`, "headers.a b"},
		{`{"endpoint":"http://c:4318","compression":"zstd"}`, "compression"},
		{`{"endpoint":"http://c:4318","body":"xml"}`, "body"},
		{`{"endpoint":"http://c:4318","resourceAttributes":{"service.name":"x"}}`, "resourceAttributes.service.name"},
		{`{"endpoint":"http://c:4318","headers":["a"]}`, "headers"},
		{`{"endpoint":"http://c:4318","protocol":"grpc"}`, "protocol"},
	} {
		_, err := Factory(json.RawMessage(tc.raw))
		var fe *stream.FieldError
		if !errors.As(err, &fe) || !errors.Is(err, stream.ErrInvalid) {
			t.Errorf("%s: got %v, want a stream.FieldError", tc.raw, err)
			continue
		}
		if fe.Field != tc.field {
			t.Errorf("%s: error names %q (%v), want %q", tc.raw, fe.Field, err, tc.field)
		}
	}
	for endpoint, want := range map[string]string{
		"http://c:4318":           "http://c:4318/v1/logs",
		"http://c:4318/":          "http://c:4318/v1/logs",
		"https://gw/otlp":         "https://gw/otlp/v1/logs",
		"https://gw/otlp/v1/logs": "https://gw/otlp/v1/logs",
	} {
		c := Config{Endpoint: endpoint}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.url() != want {
			t.Errorf("url(%s) = %s, want %s", endpoint, c.url(), want)
		}
	}
}

func testEvents(from, n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		seq := from + i
		e := event.Event{
			ID:            fmt.Sprintf("ev-%06d", seq),
			Level:         event.LevelProject,
			ProjectID:     "P1",
			Action:        "LoginSucceed",
			Type:          event.TypeInfo,
			UserID:        "U" + strconv.Itoa(seq%7),
			ActorID:       "A1",
			Method:        "otp",
			RemoteAddress: "203.0.113.7",
			Occurred:      1_760_000_000_000 + int64(seq),
			LoginIDs:      []string{"user@example.com"},
			Tenants:       []string{"t1", "t2"},
			Data:          json.RawMessage(fmt.Sprintf(`{"n":%d,"ratio":0.5,"ok":true,"none":null,"list":[1,"two"],"big":12345678901234567890}`, seq)),
			Seq:           uint64(seq + 1),
		}
		switch seq % 3 {
		case 1:
			e.Type, e.Action = event.TypeWarn, "LoginFailed"
		case 2:
			e.Level, e.ProjectID, e.Type, e.Action = event.LevelCompany, "", event.TypeError, "ProjectDeleted"
		}
		out[i] = e
	}
	return out
}

// collector runs the OpenTelemetry Collector's OTLP receiver in process on
// a fixed port, feeding a consumer that records every log record and can
// be told to fail; it can be shut down and started again.
type collector struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	rcv      receiver.Logs
	records  []plog.LogRecord
	resource []pcommon.Map
	refuse   atomic.Bool
	requests atomic.Int64
}

func startCollector(t *testing.T) *collector {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, addr: l.Addr().String()}
	l.Close()
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	c.requests.Add(1)
	if c.refuse.Load() {
		return errors.New("pipeline full (test)") // retryable: the receiver answers 503
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			sl := rl.ScopeLogs().At(j)
			if sl.Scope().Name() != Scope {
				return consumererror.NewPermanent(fmt.Errorf("scope %q", sl.Scope().Name()))
			}
			for k := 0; k < sl.LogRecords().Len(); k++ {
				r := plog.NewLogRecord()
				sl.LogRecords().At(k).CopyTo(r)
				res := pcommon.NewMap()
				rl.Resource().Attributes().CopyTo(res)
				c.records = append(c.records, r)
				c.resource = append(c.resource, res)
			}
		}
	}
	return nil
}

func (c *collector) start() {
	c.t.Helper()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = c.addr
	next, err := consumer.NewLogs(c.ConsumeLogs)
	if err != nil {
		c.t.Fatal(err)
	}
	rcv, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, next)
	if err != nil {
		c.t.Fatal(err)
	}
	for range 100 { // the previous listener's port may take a moment
		if err = rcv.Start(context.Background(), componenttest.NewNopHost()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start OTLP receiver: %v", err)
	}
	c.mu.Lock()
	c.rcv = rcv
	c.mu.Unlock()
}

func (c *collector) stop() {
	c.mu.Lock()
	rcv := c.rcv
	c.rcv = nil
	c.mu.Unlock()
	if rcv != nil {
		rcv.Shutdown(context.Background())
	}
}

func (c *collector) received() ([]plog.LogRecord, []pcommon.Map) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]plog.LogRecord(nil), c.records...), append([]pcommon.Map(nil), c.resource...)
}

func str(m pcommon.Map, key string) string {
	v, ok := m.Get(key)
	if !ok {
		return "<absent>"
	}
	return v.AsString()
}

// optional is str for an attribute the sink leaves out when empty.
func optional(m pcommon.Map, key string) string {
	if v, ok := m.Get(key); ok {
		return v.AsString()
	}
	return ""
}

// checkRecords asserts the collector decoded every sent event once, in
// order, into the record it should be.
func checkRecords(t *testing.T, body string, sent []event.Event, got []plog.LogRecord, res []pcommon.Map) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("collector received %d records, sent %d", len(got), len(sent))
	}
	for i, r := range got {
		e := sent[i]
		attrs := r.Attributes()
		if id := str(attrs, AttrID); id != e.ID {
			t.Fatalf("record %d is event %s, want %s (order broken or duplicated)", i, id, e.ID)
		}
		num, text := Severity(e.Type)
		if int(r.SeverityNumber()) != num || r.SeverityText() != text ||
			!r.Timestamp().AsTime().Equal(time.UnixMilli(e.Occurred)) || r.ObservedTimestamp() == 0 {
			t.Fatalf("event %s: severity %d %q time %v", e.ID, r.SeverityNumber(), r.SeverityText(), r.Timestamp().AsTime())
		}
		if str(attrs, AttrAction) != e.Action || str(attrs, AttrType) != e.Type || str(attrs, AttrLevel) != string(e.Level) ||
			optional(attrs, AttrUserID) != e.UserID || optional(attrs, AttrClientAddress) != e.RemoteAddress {
			t.Fatalf("event %s: attributes %v", e.ID, attrs.AsRaw())
		}
		if e.ProjectID != "" && str(attrs, AttrProjectID) != e.ProjectID {
			t.Fatalf("event %s: project attribute %v", e.ID, attrs.AsRaw())
		}
		if e.ProjectID == "" && str(attrs, AttrProjectID) != "<absent>" {
			t.Fatalf("company event %s has a project attribute", e.ID)
		}
		// The sink leaves tenants out when there are none (an event the
		// server records itself, such as ConnectorCreated, has none).
		if v, ok := attrs.Get(AttrTenants); (ok && v.Slice().Len() != len(e.Tenants)) || (!ok && len(e.Tenants) != 0) {
			t.Fatalf("event %s: tenants %v", e.ID, v.AsRaw())
		}
		if str(res[i], "service.name") != "audittrail-test" || str(res[i], "deployment.environment") != "test" {
			t.Fatalf("resource %v", res[i].AsRaw())
		}
		want, _ := json.Marshal(e)
		var gotJSON []byte
		if body == BodyStructured {
			if r.Body().Type() != pcommon.ValueTypeMap {
				t.Fatalf("event %s: body type %v", e.ID, r.Body().Type())
			}
			gotJSON, _ = json.Marshal(r.Body().Map().AsRaw())
			var a, b any
			json.Unmarshal(want, &a)
			json.Unmarshal(gotJSON, &b)
			want, _ = json.Marshal(a) // both sides through map[string]any
			gotJSON, _ = json.Marshal(b)
		} else {
			gotJSON = []byte(r.Body().Str())
		}
		if string(gotJSON) != string(want) {
			t.Fatalf("event %s: body\n got %s\nwant %s", e.ID, gotJSON, want)
		}
	}
}

// deliver retries a batch as the delivery engine does.
func deliver(t *testing.T, s stream.Sink, b stream.Batch, deadline time.Duration) (attempts int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		attempts++
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.Write(wctx, b)
		wcancel()
		if err == nil {
			return attempts
		}
		if ctx.Err() != nil {
			t.Fatalf("batch starting %s not delivered after %d attempts: %v", b.Events[0].ID, attempts, err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 400*time.Millisecond)
		s.Connect(ctx)
	}
}

func TestCollectorReceivesEveryEventThroughOutages(t *testing.T) {
	for _, tc := range []struct{ body, compression string }{
		{BodyJSON, "gzip"},
		{BodyStructured, "none"},
	} {
		t.Run(tc.body+"-"+tc.compression, func(t *testing.T) {
			c := startCollector(t)
			s, err := New(Config{
				Endpoint: "http://" + c.addr, Body: tc.body, Compression: tc.compression,
				ServiceName: "audittrail-test", ResourceAttributes: map[string]string{"deployment.environment": "test"},
				Headers: map[string]string{"X-Api-Key": "k"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			const batches, perBatch = 10, 200
			var sent []event.Event
			retried := 0
			for b := range batches {
				evs := testEvents(b*perBatch, perBatch)
				batch := stream.Batch{ConnectorID: "c1", Events: evs}
				// Each outage lasts until a Write has failed on it, then the
				// batch is retried as the engine would.
				outage := func(begin, end func()) {
					begin()
					if err := s.Write(context.Background(), batch); err == nil {
						t.Fatalf("batch %d: Write succeeded during the outage", b)
					}
					retried++
					end()
				}
				switch b {
				case 3: // the collector goes away and comes back
					outage(c.stop, c.start)
				case 6: // the pipeline refuses: the receiver answers 503
					outage(func() { c.refuse.Store(true) }, func() { c.refuse.Store(false) })
				}
				deliver(t, s, batch, 30*time.Second)
				sent = append(sent, evs...)
			}
			got, res := c.received()
			checkRecords(t, tc.body, sent, got, res)
		})
	}
}

func TestPartialSuccessIsNotAnAcknowledgement(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"too old"}}`))
	}))
	defer srv.Close()
	s, err := New(Config{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(context.Background(), stream.Batch{Events: testEvents(0, 3)})
	if !errors.Is(err, ErrPartialSuccess) {
		t.Fatalf("Write: %v, want ErrPartialSuccess", err)
	}
}
