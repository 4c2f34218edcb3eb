package syslog

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

// TestThroughTheEngine drives the sink from the delivery engine over the
// real embedded store while rsyslogd is killed and restarted twice; the
// output file must hold every event once (after dropping repeated ids, as
// TCP syslog can repeat the batch in flight), in order.
func TestThroughTheEngine(t *testing.T) {
	integration(t)
	ctx := context.Background()
	r := startRsyslog(t)
	st := streamtest.OpenStore(t)
	m, err := stream.New(streamtest.FastOptions(st, map[string]stream.Destination{"syslog": {New: Factory}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	config, _ := json.Marshal(Config{Network: NetworkTLS, Address: "127.0.0.1:" + strconv.Itoa(r.tlsPort), CAFile: r.caFile,
		Hostname: "audittrail-e2e", Timeout: Duration(time.Second)})
	v, err := m.Create(ctx, stream.Spec{CompanyID: "C1", ProjectID: "P1", Name: "e2e", Type: "syslog", Config: config})
	if err != nil {
		t.Fatalf("create connector: %v", err)
	}

	var want []string
	appendWave := func(prefix string, n int) {
		t.Helper()
		evs := streamtest.Events("C1", "P1", prefix, n)
		for i := 0; i < n; i += 7 {
			if err := st.Append(ctx, evs[i:min(i+7, n)]); err != nil {
				t.Fatal(err)
			}
			m.Notify()
		}
		want = append(want, streamtest.IDs(evs)...)
	}
	health := func() stream.Health {
		h, err := m.Health(ctx, "C1", v.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	caughtUp := func() bool { return health().Delivered == uint64(len(want)) }

	appendWave("a", 60)
	streamtest.Eventually(t, 10*time.Second, "first wave delivered", caughtUp)
	for _, wave := range []string{"b", "c"} {
		failed := health().FailedAttempts
		r.kill()
		appendWave(wave, 60)
		streamtest.Eventually(t, 10*time.Second, "failures while rsyslogd is down", func() bool { return health().FailedAttempts > failed })
		r.start()
		streamtest.Eventually(t, 20*time.Second, "wave "+wave+" delivered", caughtUp)
	}
	appendWave("d", 40)
	streamtest.Eventually(t, 10*time.Second, "every wave delivered", caughtUp)

	var got []string
	seen := map[string]bool{}
	for _, l := range r.read(t, "tls.log") {
		m := sdIDParam.FindStringSubmatch(l.SD)
		if m == nil || l.Hostname != "audittrail-e2e" || l.Msgid != "LoginSucceed" {
			t.Fatalf("unexpected line %+v", l)
		}
		if !seen[m[1]] {
			seen[m[1]] = true
			got = append(got, m[1])
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rsyslog wrote %d distinct events, want %d once each in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
