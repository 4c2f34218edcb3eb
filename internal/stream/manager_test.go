package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// fakeSink records what it acknowledges and fails on demand.
type fakeSink struct {
	mu       sync.Mutex
	writes   [][]event.Event // acknowledged (or taken) writes, in order
	attempts int
	connects int
	failNext int  // refuse the next n writes
	failAll  bool // refuse every write
	takeFail int  // take the next n writes, then report failure (lost ack)
	hang     bool // block until the context ends
	attemptT []time.Time
}

func (f *fakeSink) Connect(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	return nil
}

func (f *fakeSink) Write(ctx context.Context, b stream.Batch) error {
	f.mu.Lock()
	f.attempts++
	f.attemptT = append(f.attemptT, time.Now())
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.failAll:
		return errors.New("destination down")
	case f.failNext > 0:
		f.failNext--
		return errors.New("destination down")
	case f.takeFail > 0:
		f.takeFail--
		f.writes = append(f.writes, slices.Clone(b.Events))
		return errors.New("connection reset after the destination took the batch")
	}
	f.writes = append(f.writes, slices.Clone(b.Events))
	return nil
}

func (f *fakeSink) Close(context.Context) error { return nil }

func (f *fakeSink) set(fn func(f *fakeSink)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func (f *fakeSink) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, w := range f.writes {
		ids = append(ids, streamtest.IDs(w)...)
	}
	return ids
}

func (f *fakeSink) events() []event.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var evs []event.Event
	for _, w := range f.writes {
		evs = append(evs, w...)
	}
	return evs
}

func (f *fakeSink) count() int { return len(f.ids()) }

func fakeDest(f *fakeSink) stream.Destination {
	return stream.Destination{New: func(cfg json.RawMessage) (stream.Sink, error) {
		var c struct {
			Endpoint string `json:"endpoint"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, err
		}
		if c.Endpoint == "" {
			return nil, stream.Invalid("endpoint", "is required")
		}
		return f, nil
	}}
}

type env struct {
	t    *testing.T
	st   store.Store
	sink *fakeSink
	opts stream.Options
	m    *stream.Manager
}

func newEnv(t *testing.T, tune func(*stream.Options)) *env {
	t.Helper()
	e := &env{t: t, st: streamtest.OpenStore(t), sink: &fakeSink{}}
	e.opts = streamtest.FastOptions(e.st, map[string]stream.Destination{"fake": fakeDest(e.sink)})
	if tune != nil {
		tune(&e.opts)
	}
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	m, err := stream.New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	e.t.Cleanup(func() { m.Close(context.Background()) })
}

func (e *env) create(s stream.Spec) stream.View {
	e.t.Helper()
	if s.CompanyID == "" {
		s.CompanyID = "C1"
	}
	if s.Name == "" {
		s.Name = "conn"
	}
	s.Type = "fake"
	if s.Config == nil {
		s.Config = json.RawMessage(`{"endpoint":"x","password":"pw"}`)
	}
	v, err := e.m.Create(context.Background(), s)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) append(evs []event.Event) {
	e.t.Helper()
	if err := e.st.Append(context.Background(), evs); err != nil {
		e.t.Fatal(err)
	}
	e.m.Notify()
}

func (e *env) waitCount(n int) {
	e.t.Helper()
	streamtest.Eventually(e.t, 15*time.Second, fmt.Sprintf("%d events delivered", n), func() bool { return e.sink.count() >= n })
}

func TestDeliversEveryEventOnceInOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.append(streamtest.Events("C1", "P1", "before", 10)) // before the connector: not delivered
	e.create(stream.Spec{})
	var want []string
	for i := range 20 {
		evs := streamtest.Events("C1", "P1", fmt.Sprintf("w%02d", i), 17)
		e.append(evs)
		want = append(want, streamtest.IDs(evs)...)
	}
	e.waitCount(len(want))
	time.Sleep(30 * time.Millisecond)
	if got := e.sink.ids(); !slices.Equal(got, want) {
		t.Fatalf("got %d ids, want %d in order", len(got), len(want))
	}
	for _, w := range e.sink.writes {
		if len(w) > e.opts.BatchMaxEvents {
			t.Fatalf("batch of %d events exceeds BatchMaxEvents %d", len(w), e.opts.BatchMaxEvents)
		}
	}
}

func TestBatchesByBytes(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) { o.BatchMaxBytes = 2000; o.BatchMaxEvents = 1000 })
	e.create(stream.Spec{})
	evs := streamtest.Events("C1", "P1", "b", 100)
	e.append(evs)
	e.waitCount(100)
	for _, w := range e.sink.writes {
		if len(w) > 10 {
			t.Fatalf("a batch of %d events of ~300 bytes exceeds 2000 bytes", len(w))
		}
	}
}

// After an outage nothing is lost, order is kept, and the only duplicates
// are whole re-sends of the batch that was in flight.
func TestOutageLosesNothing(t *testing.T) {
	e := newEnv(t, nil)
	e.create(stream.Spec{})
	var want []string
	add := func(prefix string) {
		evs := streamtest.Events("C1", "P1", prefix, 45)
		e.append(evs)
		want = append(want, streamtest.IDs(evs)...)
	}
	add("a")
	e.waitCount(len(want))
	e.sink.set(func(f *fakeSink) { f.failAll = true })
	add("b")
	streamtest.Eventually(t, 5*time.Second, "failed attempts", func() bool {
		e.sink.mu.Lock()
		defer e.sink.mu.Unlock()
		return e.sink.attempts > 8
	})
	e.sink.set(func(f *fakeSink) { f.failAll = false; f.takeFail = 2 })
	add("c")
	streamtest.Eventually(t, 5*time.Second, "all events", func() bool {
		seen := map[string]bool{}
		for _, id := range e.sink.ids() {
			seen[id] = true
		}
		return len(seen) == len(want)
	})

	pos := map[string]int{}
	for i, id := range want {
		pos[id] = i
	}
	prevStart, prevEnd := -1, -1
	var firsts []string
	seen := map[string]bool{}
	for _, w := range e.sink.writes {
		start := pos[w[0].ID]
		for i, ev := range w {
			if pos[ev.ID] != start+i {
				t.Fatalf("write not contiguous in ingest order at %s", ev.ID)
			}
			if !seen[ev.ID] {
				seen[ev.ID] = true
				firsts = append(firsts, ev.ID)
			}
		}
		if start != prevEnd+1 && start != prevStart {
			t.Fatalf("write starts at %d after a write [%d,%d]: neither the next event nor a re-send of the in-flight batch", start, prevStart, prevEnd)
		}
		prevStart, prevEnd = start, start+len(w)-1
	}
	if !slices.Equal(firsts, want) {
		t.Fatal("first deliveries are not every event in order")
	}
	if dups := len(e.sink.ids()) - len(want); dups == 0 {
		t.Fatal("the lost acknowledgements produced no re-send; the test injected nothing")
	}
	h := health(t, e)
	if h.FailedAttempts < 5 || h.LastError == "" || h.State != stream.StateActive {
		t.Fatalf("health: %+v", h)
	}
}

func health(t *testing.T, e *env) stream.Health {
	t.Helper()
	vs, err := e.m.List(context.Background(), "C1", "")
	if err != nil || len(vs) == 0 {
		t.Fatalf("list: %v %d", err, len(vs))
	}
	return vs[0].Health
}

func TestRestartResumesFromDurableCursor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "streams.json")
	fs, err := stream.OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *stream.Options) { o.State = fs })
	v := e.create(stream.Spec{})
	first := streamtest.Events("C1", "P1", "a", 50)
	e.append(first)
	e.waitCount(50)

	// The destination hangs on the next batch; the process stops mid-batch.
	e.sink.set(func(f *fakeSink) { f.hang = true })
	mid := streamtest.Events("C1", "P1", "b", 30)
	e.append(mid)
	streamtest.Eventually(t, 5*time.Second, "a write in flight", func() bool {
		e.sink.mu.Lock()
		defer e.sink.mu.Unlock()
		return e.sink.attempts > 3
	})
	if err := e.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Events appended while no manager runs.
	down := streamtest.Events("C1", "P1", "c", 30)
	if err := e.st.Append(context.Background(), down); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v mode %v", err, info.Mode())
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"password":"pw"`) {
		t.Fatal("state file lost the connector's secret")
	}

	fs2, err := stream.OpenFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	e.sink.set(func(f *fakeSink) { f.hang = false })
	e.opts.State = fs2
	e.start()
	e.waitCount(110)
	time.Sleep(30 * time.Millisecond)
	want := streamtest.IDs(slices.Concat(first, mid, down))
	if got := e.sink.ids(); !slices.Equal(got, want) {
		t.Fatalf("after restart got %d ids, want %d exactly once in order", len(got), len(want))
	}
	h, err := e.m.Health(context.Background(), "C1", v.ID)
	if err != nil || h.Delivered != 110 || h.LagEvents != 0 {
		t.Fatalf("health after restart: %+v %v", h, err)
	}
}

func TestFilters(t *testing.T) {
	mk := func(id, company, project string, level event.Level, action string, tenants ...string) event.Event {
		ev := streamtest.Events(company, project, id, 1)[0]
		ev.ID, ev.Level, ev.Action, ev.Tenants = id, level, action, tenants
		if level == event.LevelCompany {
			ev.ProjectID = ""
		}
		return ev
	}
	all := []event.Event{
		mk("p1-login-t1", "C1", "P1", event.LevelProject, "LoginSucceed", "t1"),
		mk("p1-fail-t2", "C1", "P1", event.LevelProject, "LoginFailed", "t2"),
		mk("p2-login-t1", "C1", "P2", event.LevelProject, "LoginSucceed", "t1", "t3"),
		mk("c-proj", "C1", "", event.LevelCompany, "ProjectCreated"),
		mk("other-co", "C2", "P1", event.LevelProject, "LoginSucceed", "t1"),
		mk("p1-notenant", "C1", "P1", event.LevelProject, "UserCreated"),
	}
	cases := []struct {
		name string
		spec stream.Spec
		want []string
	}{
		// Each case's last expected event is delivered last; the test waits for it.
		{"project default level", stream.Spec{ProjectID: "P1"}, []string{"p1-login-t1", "p1-fail-t2", "p1-notenant"}},
		{"company both", stream.Spec{}, []string{"p1-login-t1", "p1-fail-t2", "p2-login-t1", "c-proj", "p1-notenant"}},
		{"company level only", stream.Spec{Level: stream.LevelCompany}, []string{"c-proj"}},
		{"project and company", stream.Spec{ProjectID: "P2", Level: stream.LevelBoth}, []string{"p2-login-t1", "c-proj"}},
		{"actions includes", stream.Spec{Filters: []stream.Filter{{FilterType: "actions", Operator: "includes", Values: []string{"LoginSucceed", "ProjectCreated"}}}}, []string{"p1-login-t1", "p2-login-t1", "c-proj"}},
		{"actions excludes", stream.Spec{ProjectID: "P1", Filters: []stream.Filter{{FilterType: "actions", Operator: "excludes", Values: []string{"LoginFailed"}}}}, []string{"p1-login-t1", "p1-notenant"}},
		{"tenants includes", stream.Spec{Filters: []stream.Filter{{FilterType: "tenants", Operator: "includes", Values: []string{"t3", "t2"}}}}, []string{"p1-fail-t2", "p2-login-t1"}},
		{"tenants excludes and actions", stream.Spec{Filters: []stream.Filter{
			{FilterType: "tenants", Operator: "excludes", Values: []string{"t1"}},
			{FilterType: "actions", Operator: "excludes", Values: []string{"ProjectCreated"}},
		}}, []string{"p1-fail-t2", "p1-notenant"}},
		{"all includes", stream.Spec{Level: stream.LevelProject, Filters: []stream.Filter{{FilterType: "all", Operator: "includes"}}}, []string{"p1-login-t1", "p1-fail-t2", "p2-login-t1", "p1-notenant"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.create(tc.spec)
			e.append(slices.Clone(all))
			// Events that no connector here delivers, then one more copy of
			// the case's last expected event under a new id: once it arrives
			// every filtered-out event has been passed.
			e.append([]event.Event{mk("other-co-2", "C2", "P1", event.LevelProject, "LoginSucceed")})
			var marker event.Event
			for _, ev := range all {
				if ev.ID == tc.want[len(tc.want)-1] {
					marker = ev
				}
			}
			marker.ID, marker.Seq = "zz-marker", 0
			e.append([]event.Event{marker})
			e.waitCount(len(tc.want) + 1)
			time.Sleep(30 * time.Millisecond)
			got := e.sink.ids()
			if !slices.Equal(got, append(slices.Clone(tc.want), "zz-marker")) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
}

func TestMaskPIIDelivery(t *testing.T) {
	e := newEnv(t, nil)
	e.create(stream.Spec{MaskPII: true})
	ev := streamtest.Events("C1", "P1", "m", 1)[0]
	ev.Data = json.RawMessage(`{"Change":{"display_name":{"old":"Ann","new":"Bob"},"added_roles":["admin"]},"user":{"email":"a@b.c","phoneNumber":"+1555","userId":"U1","givenName":"Ann"},"external_id":"ext-9","correlation_id":"corr"}`)
	e.append([]event.Event{ev})
	e.waitCount(1)
	got := e.sink.events()[0]
	if got.LoginIDs[0] != stream.Masked || got.UserID != ev.UserID || got.RemoteAddress != ev.RemoteAddress || got.Geo != "US" || got.Device != "Desktop" || got.Occurred != ev.Occurred || got.ID != ev.ID || got.Action != ev.Action {
		t.Fatalf("masked event kept or lost the wrong fields: %+v", got)
	}
	var d map[string]any
	if err := json.Unmarshal(got.Data, &d); err != nil {
		t.Fatal(err)
	}
	s := string(got.Data)
	for _, leak := range []string{"Ann", "Bob", "a@b.c", "+1555", "ext-9"} {
		if strings.Contains(s, leak) {
			t.Fatalf("masked data still holds %q: %s", leak, s)
		}
	}
	for _, kept := range []string{`"admin"`, `"U1"`, `"corr"`, `"old":"***"`} {
		if !strings.Contains(s, kept) {
			t.Fatalf("masked data lost %s: %s", kept, s)
		}
	}
	// The stored event is untouched.
	stored, _ := e.st.Get(context.Background(), "C1", ev.ID)
	if stored.LoginIDs[0] == stream.Masked || !strings.Contains(string(stored.Data), "a@b.c") {
		t.Fatal("masking changed the stored event")
	}
}

func TestAutoPauseAndResume(t *testing.T) {
	type pause struct {
		spec       stream.Spec
		failingFor time.Duration
	}
	var pausesMu sync.Mutex
	var pauses []pause
	e := newEnv(t, func(o *stream.Options) {
		o.AutoPauseAfter = 150 * time.Millisecond
		o.OnAutoPause = func(_ context.Context, spec stream.Spec, failingFor time.Duration) {
			pausesMu.Lock()
			pauses = append(pauses, pause{spec, failingFor})
			pausesMu.Unlock()
		}
	})
	e.sink.set(func(f *fakeSink) { f.failAll = true })
	v := e.create(stream.Spec{})
	e.append(streamtest.Events("C1", "P1", "a", 5))
	streamtest.Eventually(t, 5*time.Second, "auto-pause", func() bool {
		h, _ := e.m.Health(context.Background(), "C1", v.ID)
		return h.State == stream.StateAutoPaused
	})
	pausesMu.Lock()
	if len(pauses) != 1 || pauses[0].spec.ID != v.ID || pauses[0].spec.CompanyID != "C1" || pauses[0].failingFor < 150*time.Millisecond {
		t.Fatalf("OnAutoPause calls: %+v", pauses)
	}
	pausesMu.Unlock()
	e.sink.mu.Lock()
	attempts := e.sink.attempts
	e.sink.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	e.sink.mu.Lock()
	if e.sink.attempts != attempts {
		t.Fatal("an auto-paused connector kept trying")
	}
	e.sink.failAll = false
	e.sink.mu.Unlock()
	if _, err := e.m.Resume(context.Background(), "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	e.waitCount(5)
	h, _ := e.m.Health(context.Background(), "C1", v.ID)
	if h.State != stream.StateActive || !h.FailingSince.IsZero() {
		t.Fatalf("after resume: %+v", h)
	}
}

func TestBreakerSpacesAttempts(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) {
		o.RetryMin, o.RetryMax = time.Millisecond, 2*time.Millisecond
		o.BreakerFailures, o.BreakerCooldown = 3, 80*time.Millisecond
	})
	e.sink.set(func(f *fakeSink) { f.failAll = true })
	v := e.create(stream.Spec{})
	e.append(streamtest.Events("C1", "P1", "a", 1))
	streamtest.Eventually(t, 5*time.Second, "six attempts", func() bool {
		e.sink.mu.Lock()
		defer e.sink.mu.Unlock()
		return e.sink.attempts >= 6
	})
	h, _ := e.m.Health(context.Background(), "C1", v.ID)
	if !h.BreakerOpen || h.State != stream.StateFailing {
		t.Fatalf("health: %+v", h)
	}
	e.sink.mu.Lock()
	ts := slices.Clone(e.sink.attemptT)
	e.sink.mu.Unlock()
	for i := 3; i < 6; i++ {
		if gap := ts[i].Sub(ts[i-1]); gap < 70*time.Millisecond {
			t.Fatalf("attempt %d came %v after the previous one with the breaker open", i+1, gap)
		}
	}
}

func TestReplayFromTime(t *testing.T) {
	e := newEnv(t, nil)
	v := e.create(stream.Spec{})
	evs := streamtest.Events("C1", "P1", "r", 30)
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := range evs {
		evs[i].Occurred = base + int64(i)*1000
	}
	e.append(evs)
	e.waitCount(30)
	cursor, err := e.m.Replay(context.Background(), "C1", v.ID, time.UnixMilli(base+10*1000))
	if err != nil {
		t.Fatal(err)
	}
	if cursor != evs[10].Seq-1 {
		t.Fatalf("replay cursor %d, want %d", cursor, evs[10].Seq-1)
	}
	e.waitCount(50)
	got := e.sink.ids()
	if !slices.Equal(got[30:], streamtest.IDs(evs[10:])) {
		t.Fatalf("replay delivered %v", got[30:])
	}
	// A time after every event replays nothing.
	if _, err := e.m.Replay(context.Background(), "C1", v.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := e.sink.count(); n != 50 {
		t.Fatalf("replay from the future delivered %d events", n-50)
	}
}

// A destination that hangs must not slow ingest: Append latency with three
// connectors stuck in Write matches the latency with them paused (rounds
// interleaved so that load from elsewhere on the machine hits both), and
// the lag simply grows.
func TestIngestUnaffectedByHangingSink(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.sink.set(func(f *fakeSink) { f.hang = true })
	var ids []string
	for i := range 3 {
		ids = append(ids, e.create(stream.Spec{Name: fmt.Sprint("c", i)}).ID)
	}
	var paused, hanging []time.Duration
	n := 0
	for round := range 10 {
		for _, id := range ids {
			var err error
			if round%2 == 0 {
				_, err = e.m.Pause(ctx, "C1", id)
			} else {
				_, err = e.m.Resume(ctx, "C1", id)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for range 30 {
			evs := streamtest.Events("C1", "P1", fmt.Sprintf("h%04d", n), 10)
			n++
			start := time.Now()
			if err := e.st.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			e.m.Notify()
			d := time.Since(start)
			if round%2 == 0 {
				paused = append(paused, d)
			} else {
				hanging = append(hanging, d)
			}
		}
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	t.Logf("Append+Notify of 10 events: paused p50 %v p99 %v; with hanging sinks p50 %v p99 %v",
		pct(paused, .5), pct(paused, .99), pct(hanging, .5), pct(hanging, .99))
	if pct(hanging, .5) > 3*pct(paused, .5)+10*time.Millisecond {
		t.Fatalf("median ingest latency rose from %v to %v while sinks hang", pct(paused, .5), pct(hanging, .5))
	}
	h, err := e.m.Health(ctx, "C1", ids[0])
	if err != nil || h.LagEvents != uint64(n*10) || h.Delivered != 0 || h.LagSeconds <= 0 {
		t.Fatalf("health: %+v %v", h, err)
	}
}

func TestAPI(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)

	_, err := e.m.Create(ctx, stream.Spec{CompanyID: "C1", Name: "x", Type: "fake", Config: json.RawMessage(`{}`)})
	var fe *stream.FieldError
	if !errors.As(err, &fe) || fe.Field != "config.endpoint" || !errors.Is(err, stream.ErrInvalid) {
		t.Fatalf("missing endpoint: %v", err)
	}
	_, err = e.m.Create(ctx, stream.Spec{CompanyID: "C1", Name: "x", Type: "nope"})
	if !errors.As(err, &fe) || fe.Field != "type" {
		t.Fatalf("unknown type: %v", err)
	}
	_, err = e.m.Create(ctx, stream.Spec{CompanyID: "C1", Name: "x", Type: "fake", Config: json.RawMessage(`{"endpoint":"e"}`),
		Filters: []stream.Filter{{FilterType: "actions", Operator: "has"}}})
	if !errors.As(err, &fe) || fe.Field != "filters[0].operator" {
		t.Fatalf("bad operator: %v", err)
	}

	v := e.create(stream.Spec{Name: "siem"})
	if strings.Contains(string(v.Config), "pw") || !strings.Contains(string(v.Config), stream.Redacted) {
		t.Fatalf("create showed the secret: %s", v.Config)
	}
	if _, err := e.m.Get(ctx, "C2", v.ID); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("another company sees the connector: %v", err)
	}
	// Sending back the redacted config keeps the secret.
	upd := v.Spec
	upd.Description = "changed"
	upd.Config = json.RawMessage(strings.Replace(string(v.Config), `"endpoint":"x"`, `"endpoint":"y"`, 1))
	v2, err := e.m.Update(ctx, "C1", v.ID, upd)
	if err != nil || v2.Description != "changed" || v2.Created != v.Created {
		t.Fatalf("update: %v %+v", err, v2)
	}
	recs, _ := e.opts.State.Load(ctx)
	if len(recs) != 1 || !strings.Contains(string(recs[0].Spec.Config), `"password":"pw"`) || !strings.Contains(string(recs[0].Spec.Config), `"endpoint":"y"`) {
		t.Fatalf("stored config after update: %s", recs[0].Spec.Config)
	}

	// Set upserts by name.
	_, created, err := e.m.Set(ctx, stream.Spec{CompanyID: "C1", Name: "siem", Type: "fake", Description: "again"})
	if err != nil || created {
		t.Fatalf("set existing: %v created=%v", err, created)
	}
	_, created, err = e.m.Set(ctx, stream.Spec{CompanyID: "C1", Name: "other", Type: "fake", Config: json.RawMessage(`{"endpoint":"z"}`)})
	if err != nil || !created {
		t.Fatalf("set new: %v created=%v", err, created)
	}
	list, _ := e.m.List(ctx, "C1", "")
	if len(list) != 2 {
		t.Fatalf("list: %d", len(list))
	}

	if _, err := e.m.Pause(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	e.append(streamtest.Events("C1", "P1", "p", 3))
	time.Sleep(50 * time.Millisecond)
	if h, _ := e.m.Health(ctx, "C1", v.ID); h.State != stream.StatePaused || h.LagEvents != 3 {
		t.Fatalf("paused health: %+v", h)
	}
	if _, err := e.m.Resume(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}

	if err := e.m.SendTest(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, time.Second, "test event", func() bool {
		return slices.ContainsFunc(e.sink.events(), func(ev event.Event) bool { return ev.Action == "AuditStreamTest" })
	})

	if err := e.m.Delete(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Get(ctx, "C1", v.ID); !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("deleted connector: %v", err)
	}

	var buf strings.Builder
	if err := e.m.WritePrometheus(ctx, &buf); err != nil || !strings.Contains(buf.String(), `audittrail_stream_delivered_events_total{connector=`) {
		t.Fatalf("metrics: %v\n%s", err, buf.String())
	}
}

func TestFromDescopeWebhook(t *testing.T) {
	body := `{"name":"audit","description":"d","url":"https://siem.example.com/in",
		"authentication":{"basic":{"username":"u","password":"p"}},"hmacSecret":"h","headers":{"X-A":"1"},"insecure":true,
		"filters":[{"key":"actions","operator":"includes","values":["LoginSucceed"]},{"filterType":"tenants","operator":"excludes","values":["t9"]}]}`
	s, err := stream.FromDescopeWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != stream.WebhookType || s.Name != "audit" || len(s.Filters) != 2 || s.Filters[0].FilterType != "actions" || s.Filters[1].FilterType != "tenants" {
		t.Fatalf("spec: %+v", s)
	}
	var cfg stream.WebhookConfig
	if err := json.Unmarshal(s.Config, &cfg); err != nil || cfg.URL != "https://siem.example.com/in" || cfg.Authentication.Basic.Password != "p" || cfg.HMACSecret != "h" || !cfg.Insecure || cfg.Headers["X-A"] != "1" {
		t.Fatalf("config: %s %v", s.Config, err)
	}
	bad := map[string]string{
		`{"url":"https://x"}`:           "name",
		`{"name":"n"}`:                  "url",
		`{"name":"n","url":"mailto:x"}`: "url",
		`{"name":"n","url":"https://x","filters":[{"filterType":"users","operator":"includes","values":["a"]}]}`: "filters[0].filterType",
		`{"name":"n","url":"https://x","filters":[{"filterType":"actions","operator":"includes"}]}`:              "filters[0].values",
		`{"name":"n","url":"https://x","insecure":"yes"}`:                                                        "insecure",
	}
	for b, field := range bad {
		_, err := stream.FromDescopeWebhook([]byte(b))
		var fe *stream.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: err %v, want field %s", b, err, field)
		}
	}
}

// The end of the log is found without reading it all, gaps in Seq included.
func TestHeadSearch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	for _, n := range []int{0, 1, 1023, 1024, 1025, 5000} {
		if n > 0 {
			evs := streamtest.Events("C1", "P1", fmt.Sprint("h", n), n)
			e.append(evs)
			// A repeat is skipped: no Seq assigned.
			e.append(evs[:1])
		}
		v := e.create(stream.Spec{Name: fmt.Sprint("c", n)})
		last, _ := e.st.ReadFrom(ctx, v.Health.Cursor, 1)
		if len(last) != 0 {
			t.Fatalf("after %d events: cursor %d is not the end of the log", n, v.Health.Cursor)
		}
		if n > 0 {
			prev, _ := e.st.ReadFrom(ctx, v.Health.Cursor-1, 1)
			if len(prev) != 1 || prev[0].Seq != v.Health.Cursor {
				t.Fatalf("after %d events: cursor %d is past the end of the log", n, v.Health.Cursor)
			}
		}
	}
}

// flakyLease is granted once, then taken away; the second grant waits
// until the test allows it.
type flakyLease struct {
	mu      sync.Mutex
	grants  int
	lost    chan struct{}
	regrant chan struct{}
}

type held struct{ lost chan struct{} }

func (h held) Lost() <-chan struct{} { return h.lost }
func (h held) Release()              {}

func (l *flakyLease) Acquire(ctx context.Context, id string) (stream.Held, error) {
	l.mu.Lock()
	l.grants++
	n := l.grants
	l.mu.Unlock()
	if n > 1 {
		select {
		case <-l.regrant:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return held{}, nil
	}
	return held{lost: l.lost}, nil
}

func TestLeaseLostStopsDelivery(t *testing.T) {
	l := &flakyLease{lost: make(chan struct{}), regrant: make(chan struct{})}
	e := newEnv(t, func(o *stream.Options) { o.Lease = l })
	e.create(stream.Spec{})
	e.append(streamtest.Events("C1", "P1", "a", 10))
	e.waitCount(10)
	close(l.lost)
	streamtest.Eventually(t, 5*time.Second, "re-acquire attempt", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.grants == 2
	})
	e.append(streamtest.Events("C1", "P1", "b", 10))
	time.Sleep(60 * time.Millisecond)
	if n := e.sink.count(); n != 10 {
		t.Fatalf("delivered %d events without the lease", n-10)
	}
	close(l.regrant)
	e.waitCount(20)
}

type retryAfterErr struct{ d time.Duration }

func (e retryAfterErr) Error() string             { return "429 slow down" }
func (e retryAfterErr) RetryAfter() time.Duration { return e.d }

// retryAfterSink refuses the first write asking for a pause.
type retryAfterSink struct {
	fakeSink
	asked bool
}

func (r *retryAfterSink) Write(ctx context.Context, b stream.Batch) error {
	r.mu.Lock()
	first := !r.asked
	r.asked = true
	r.attemptT = append(r.attemptT, time.Now())
	r.mu.Unlock()
	if first {
		return retryAfterErr{150 * time.Millisecond}
	}
	return r.fakeSink.Write(ctx, b)
}

func TestRetryAfterIsHonoured(t *testing.T) {
	ctx := context.Background()
	st := streamtest.OpenStore(t)
	rs := &retryAfterSink{}
	opts := streamtest.FastOptions(st, map[string]stream.Destination{"ra": {New: func(json.RawMessage) (stream.Sink, error) { return rs, nil }}})
	m, _ := stream.New(opts)
	m.Start(ctx)
	defer m.Close(ctx)
	if _, err := m.Create(ctx, stream.Spec{CompanyID: "C1", Name: "ra", Type: "ra"}); err != nil {
		t.Fatal(err)
	}
	st.Append(ctx, streamtest.Events("C1", "P1", "a", 3))
	m.Notify()
	streamtest.Eventually(t, 5*time.Second, "delivery", func() bool { return rs.count() == 3 })
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if gap := rs.attemptT[1].Sub(rs.attemptT[0]); gap < 140*time.Millisecond {
		t.Fatalf("retried %v after a Retry-After of 150ms", gap)
	}
}

func TestMaxEventsPerSecond(t *testing.T) {
	e := newEnv(t, func(o *stream.Options) { o.MaxEventsPerSecond = 1000 })
	e.create(stream.Spec{})
	start := time.Now()
	e.append(streamtest.Events("C1", "P1", "r", 300))
	e.waitCount(300)
	// 300 events at 1000/s take at least 0.3 s less the last batch's share.
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("300 events delivered in %v despite a cap of 1000/s", took)
	}
}

// sharedLease is an exclusive Lease shared by in-process "instances": one
// holder per connector. die takes every lease of an instance away, as a
// dead instance's lock session ending, and keeps it from acquiring again.
type sharedLease struct {
	mu      sync.Mutex
	holders map[string]*instanceHeld
	dead    map[string]bool
}

type instanceLease struct {
	s    *sharedLease
	name string
}

type instanceHeld struct {
	s        *sharedLease
	id, name string
	lost     chan struct{}
}

func (h *instanceHeld) Lost() <-chan struct{} { return h.lost }
func (h *instanceHeld) Release() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.s.holders[h.id] == h {
		delete(h.s.holders, h.id)
	}
}

func (l instanceLease) Acquire(ctx context.Context, id string) (stream.Held, error) {
	for {
		l.s.mu.Lock()
		if !l.s.dead[l.name] && l.s.holders[id] == nil {
			h := &instanceHeld{s: l.s, id: id, name: l.name, lost: make(chan struct{})}
			l.s.holders[id] = h
			l.s.mu.Unlock()
			return h, nil
		}
		l.s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *sharedLease) die(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead[name] = true
	for id, h := range s.holders {
		if h.name == name {
			close(h.lost)
			delete(s.holders, id)
		}
	}
}

// TestFleetSharedState runs two managers on one shared State, as two
// instances on one database: a connector created through one is delivered
// by exactly one; pause, resume and replay through the other reach the
// deliverer; when the deliverer's lease dies the other takes over from the
// durable cursor.
func TestFleetSharedState(t *testing.T) {
	ctx := context.Background()
	st := streamtest.OpenStore(t)
	state := stream.NewMemState()
	lease := &sharedLease{holders: map[string]*instanceHeld{}, dead: map[string]bool{}}
	sinks := map[string]*fakeSink{"A": {}, "B": {}}
	ms := map[string]*stream.Manager{}
	for _, name := range []string{"A", "B"} {
		o := streamtest.FastOptions(st, map[string]stream.Destination{"fake": fakeDest(sinks[name])})
		o.State, o.Lease, o.ReloadInterval = state, instanceLease{lease, name}, 20*time.Millisecond
		m, err := stream.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(context.Background()) })
		ms[name] = m
	}
	appended := 0
	appendN := func(prefix string, n int) {
		if err := st.Append(ctx, streamtest.Events("C1", "P1", prefix, n)); err != nil {
			t.Fatal(err)
		}
		appended += n
		ms["A"].Notify()
		ms["B"].Notify()
	}
	delivered := func() (distinct, dups int, by map[string]int) {
		seen := map[string]int{}
		by = map[string]int{}
		for name, s := range sinks {
			for _, id := range s.ids() {
				seen[id]++
				by[name]++
			}
		}
		for _, n := range seen {
			dups += n - 1
		}
		return len(seen), dups, by
	}
	waitDistinct := func(n int) {
		t.Helper()
		streamtest.Eventually(t, 10*time.Second, fmt.Sprintf("%d events delivered", n), func() bool { d, _, _ := delivered(); return d >= n })
	}

	v, err := ms["A"].Create(ctx, stream.Spec{CompanyID: "C1", Name: "x", Type: "fake", Config: json.RawMessage(`{"endpoint":"e"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms["B"].Get(ctx, "C1", v.ID); err != nil {
		t.Fatalf("created on A, Get on B at once: %v", err)
	}
	appendN("a", 100)
	waitDistinct(appended)
	time.Sleep(100 * time.Millisecond)
	d, dups, by := delivered()
	if dups != 0 || len(by) != 1 {
		t.Fatalf("%d events, %d duplicates, by %v: want one deliverer", d, dups, by)
	}
	holder := "A"
	if by["B"] > 0 {
		holder = "B"
	}
	other := map[string]string{"A": "B", "B": "A"}[holder]

	if _, err := ms[other].Pause(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a few reloads
	appendN("p", 30)
	time.Sleep(150 * time.Millisecond)
	if d, _, _ := delivered(); d != appended-30 {
		t.Fatalf("paused through %s, %s delivered %d more", other, holder, d-(appended-30))
	}
	if h, _ := ms[holder].Health(ctx, "C1", v.ID); h.State != stream.StatePaused {
		t.Fatalf("deliverer's view after a pause elsewhere: %s", h.State)
	}
	if _, err := ms[other].Resume(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	waitDistinct(appended)

	if _, err := ms[other].Replay(ctx, "C1", v.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 10*time.Second, "replay", func() bool { _, dups, _ := delivered(); return dups >= appended })
	if _, dups, _ := delivered(); dups != appended {
		t.Fatalf("replay through %s delivered %d again, want %d", other, dups, appended)
	}

	// The deliverer dies: its lease is lost and never regained.
	_, _, before := delivered()
	lease.die(holder)
	appendN("k", 60)
	streamtest.Eventually(t, 10*time.Second, "takeover", func() bool {
		_, _, by := delivered()
		return by[other]-before[other] >= 60
	})
	time.Sleep(100 * time.Millisecond)
	if _, _, by := delivered(); by[holder] != before[holder] {
		t.Fatalf("%s delivered %d events after losing its lease", holder, by[holder]-before[holder])
	}
	d, dups, _ = delivered()
	if d != appended || dups > appended+20 { // one batch (20) may repeat
		t.Fatalf("after takeover: %d of %d distinct, %d duplicates", d, appended, dups)
	}

	// Deleted through the dead one's peer: gone everywhere.
	if err := ms[other].Delete(ctx, "C1", v.ID); err != nil {
		t.Fatal(err)
	}
	streamtest.Eventually(t, 5*time.Second, "deletion reaches the other instance", func() bool {
		_, err := ms[holder].Get(ctx, "C1", v.ID)
		return errors.Is(err, stream.ErrNotFound)
	})
}

// TestReloadRestartsALoopThatFoundItselfPaused: an instance whose loop took
// the lease just after a pause elsewhere ends that loop by itself; a resume
// made elsewhere must start it again, or this instance could never take
// the connector over.
func TestReloadRestartsALoopThatFoundItselfPaused(t *testing.T) {
	ctx := context.Background()
	st := streamtest.OpenStore(t)
	state := stream.NewMemState()
	lease := &sharedLease{holders: map[string]*instanceHeld{}, dead: map[string]bool{}}
	if err := state.Create(ctx, stream.Record{Spec: stream.Spec{ID: "c1", CompanyID: "C1", Name: "x", Type: "fake",
		Config: json.RawMessage(`{"endpoint":"e"}`)}, Revision: 1}); err != nil {
		t.Fatal(err)
	}
	// Another instance holds the lease.
	other, err := instanceLease{lease, "X"}.Acquire(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	o := streamtest.FastOptions(st, map[string]stream.Destination{"fake": fakeDest(sink)})
	o.State, o.Lease, o.ReloadInterval = state, instanceLease{lease, "B"}, time.Hour // reloads by hand only
	m, err := stream.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	setPaused := func(p bool) {
		if _, err := state.Update(ctx, "c1", func(r *stream.Record) error { r.Paused = p; r.Revision++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setPaused(true) // through the other instance; B has not reloaded
	other.Release()
	streamtest.Eventually(t, 5*time.Second, "B claims and finds the connector paused", func() bool {
		r, _ := state.Get(ctx, "c1")
		return r.Epoch == 1
	})
	setPaused(false)
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, streamtest.Events("C1", "P1", "r", 5)); err != nil {
		t.Fatal(err)
	}
	m.Notify()
	streamtest.Eventually(t, 5*time.Second, "delivery after the resume", func() bool { return sink.count() == 5 })
}
