package syslog_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
	"github.com/audittrail/audittrail/internal/stream/syslog"
)

// TestEndToEnd: three syslog connectors created through the API of the
// real server, TCP with octet-counting framing, TLS and RELP, deliver every
// event ingested over HTTP to a real rsyslogd that is killed (SIGKILL) and
// restarted twice. Each output file holds the events in ingest order, each
// line parsed by rsyslog into the RFC 5424 fields the sink meant; a
// repeated line is only ever the batch in flight when rsyslogd died.
//
// RELP must hold every event: rsyslog answers each message once it is in
// the file. TCP and TLS may lose, at each kill, a run of events rsyslogd
// had read but not yet written: the sink's only acknowledgement is the
// receiver closing the connection after reading it to its end, and a
// killed process closes it too (its kernel sends FIN, not RST, once the
// receive queue is empty). Seen here about once in fifteen runs.
//
// With the ledger on, each batch's messages are followed by evidence
// messages (MSGID evidence, split under the default maxMessageBytes of
// 8192): reading the files back, the receiver proves every event against
// the published key; over TCP and TLS it reports each loss at a kill as
// missing events (every lost event counted); and it finds an event
// altered, dropped, two swapped, or an old batch replayed in the file,
// naming the event.
func TestEndToEnd(t *testing.T) {
	syslog.Integration(t)
	rs := syslog.StartRsyslog(t)
	if rs.RELPAddr() == "" {
		t.Fatal("rsyslog's imrelp module is missing: install the Debian package rsyslog-relp")
	}
	r := e2e.Start(t, servertest.Options{})
	receivers := []struct {
		file   string
		cfg    syslog.Config
		expect e2e.Expect
	}{
		{"tcp.log", syslog.Config{Network: syslog.NetworkTCP, Address: rs.TCPAddr(), Hostname: "audittrail-e2e", Facility: "local3",
			Timeout: syslog.Duration(time.Second)}, e2e.Expect{Repeats: true, LostRuns: 2}},
		{"tls.log", syslog.Config{Network: syslog.NetworkTLS, Address: rs.TLSAddr(), CAFile: rs.CAFile(), Hostname: "audittrail-e2e",
			Timeout: syslog.Duration(time.Second)}, e2e.Expect{Repeats: true, LostRuns: 2}},
		{"relp.log", syslog.Config{Network: syslog.NetworkRELP, Address: rs.RELPAddr(), Hostname: "audittrail-e2e",
			Timeout: syslog.Duration(time.Second)}, e2e.Expect{Repeats: true}},
	}
	var ids []string
	for _, rc := range receivers {
		ids = append(ids, r.Connector("syslog", rc.file, rc.cfg))
	}
	kill := e2e.Outage{Name: "rsyslogd killed", Down: rs.Kill, Up: rs.Start}
	r.Exercise(ids, kill, kill)

	all := r.Sent()
	byID := make(map[string]*event.Event, len(all))
	for i := range all {
		byID[all[i].ID] = &all[i]
	}
	for i, rc := range receivers {
		// Each connector starts at its own creation (later ones after
		// the earlier ones' ConnectorCreated events).
		sent := r.SentTo(ids[i])
		t.Run(rc.file, func(t *testing.T) {
			all := rs.Read(t, rc.file)
			lines, recs := splitEvidence(t, all)
			arrivals := make([]e2e.Arrival, len(lines))
			for i, l := range lines {
				arrivals[i] = e2e.Arrival{ID: l.EventID()}
			}
			dups, lost := e2e.CheckDelivered(t, sent, arrivals, rc.expect)
			sink, err := syslog.New(rc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				syslog.CheckLine(t, sink, byID[l.EventID()], l)
			}
			t.Logf("%d events in %d lines (%d repeats of a batch in flight, %d lost at a kill)", len(sent), len(lines), dups, lost)
			key := r.VerifierKey()
			if rc.expect.LostRuns > 0 {
				missing := e2e.CheckLossyLogEvidence(t, key, recs, lost)
				t.Logf("%d evidence messages; the verifier reported %d missing leaves", len(all)-len(lines), missing)
				// Whether or not a kill lost anything this run, what it
				// can lose is reported.
				e2e.LoseLogBatch(t, key, recs)
			} else {
				n, largest := e2e.CheckLogEvidence(t, key, recs)
				t.Logf("%d evidence messages (the largest MSG %d bytes) prove every event", n, largest)
			}
			e2e.TamperLogRecords(t, key, recs)
		})
	}
}

// TestEndToEndUDP: a UDP syslog connector created through the API
// delivers events ingested over HTTP to rsyslogd, each once, in order, as
// RFC 5424. UDP has no acknowledgement, so there is no outage here: a
// receiver that is down loses datagrams by design.
func TestEndToEndUDP(t *testing.T) {
	syslog.Integration(t)
	rs := syslog.StartRsyslog(t)
	r := e2e.Start(t, servertest.Options{})
	cfg := syslog.Config{Network: syslog.NetworkUDP, Address: rs.UDPAddr(), Hostname: "audittrail-e2e"}
	id := r.Connector("syslog", "udp", cfg)
	// imudp may listen a moment after the TCP listeners StartRsyslog waits
	// for: send probes until one arrives.
	deadline := time.Now().Add(20 * time.Second)
	for len(rs.Read(t, "udp.log")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd never received a datagram: %s", rs.Stderr())
		}
		r.Ingest("probe", 1)
		time.Sleep(50 * time.Millisecond)
	}
	r.WaitDelivered(30*time.Second, id)
	probed := r.Health(id).Head
	r.Ingest("udp", 150)
	r.WaitDelivered(30*time.Second, id)

	sent := r.SentAfter(probed)
	byID := make(map[string]*event.Event, len(sent))
	for i := range sent {
		byID[sent[i].ID] = &sent[i]
	}
	var lines []syslog.ParsedLine
	var recs []e2e.LogRecord
	streamtest.Eventually(t, 30*time.Second, "every datagram written out", func() bool {
		// From the first event sent after the probes: its evidence and
		// every later one's.
		all := rs.Read(t, "udp.log")
		for i, l := range all {
			if _, ok := byID[l.EventID()]; ok {
				all = all[i:]
				break
			}
		}
		lines, recs = splitEvidence(t, all)
		return len(lines) >= len(sent) && len(recs) > len(lines) && recs[len(recs)-1].Evidence != nil
	})
	arrivals := make([]e2e.Arrival, len(lines))
	for i, l := range lines {
		arrivals[i] = e2e.Arrival{ID: l.EventID()}
	}
	e2e.CheckOnceInOrder(t, sent, arrivals, false)
	sink, err := syslog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		syslog.CheckLine(t, sink, byID[l.EventID()], l)
	}
	n, largest := e2e.CheckLogEvidence(t, r.VerifierKey(), recs)
	t.Logf("%d evidence datagrams (the largest MSG %d bytes) prove every event", n, largest)
}

// splitEvidence separates the evidence messages rsyslog wrote from the
// events' and returns the events' lines and every line as a receiver's
// record: an event's JSON (MSG), or the evidence (the MSG of a message
// with MSGID evidence and an SD parameter evidence="<n>").
func splitEvidence(t *testing.T, all []syslog.ParsedLine) ([]syslog.ParsedLine, []e2e.LogRecord) {
	t.Helper()
	var lines []syslog.ParsedLine
	var recs []e2e.LogRecord
	for _, l := range all {
		if l.Msgid == syslog.EvidenceMsgID && strings.Contains(l.SD, ` evidence="`) {
			if l.EventID() != "" || len(l.Msg) > syslog.DefaultMaxMessageBytes || !json.Valid([]byte(l.Msg)) {
				t.Fatalf("evidence line: %+v", l)
			}
			recs = append(recs, e2e.LogRecord{Evidence: json.RawMessage(l.Msg)})
			continue
		}
		lines = append(lines, l)
		recs = append(recs, e2e.LogRecord{Event: json.RawMessage(l.Msg)})
	}
	return lines, recs
}
