package syslog

import (
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
	r := startRsyslog(t)
	config, _ := json.Marshal(Config{Network: NetworkTLS, Address: "127.0.0.1:" + strconv.Itoa(r.tlsPort), CAFile: r.caFile,
		Hostname: "audittrail-e2e", Timeout: Duration(time.Second)})
	e := streamtest.StartEngine(t, "syslog", stream.Destination{New: Factory}, config)

	e.AppendWave("a", 60)
	e.WaitDelivered(10*time.Second, "first wave delivered")
	for _, wave := range []string{"b", "c"} {
		failed := e.Health().FailedAttempts
		r.kill()
		e.AppendWave(wave, 60)
		e.WaitFailures(10*time.Second, failed, "failures while rsyslogd is down")
		r.start()
		e.WaitDelivered(20*time.Second, "wave "+wave+" delivered")
	}
	e.AppendWave("d", 40)
	e.WaitDelivered(10*time.Second, "every wave delivered")

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
	if want := e.Want(); !slices.Equal(got, want) {
		t.Fatalf("rsyslog wrote %d distinct events, want %d once each in order;\n got %v\nwant %v", len(got), len(want), got, want)
	}
}
