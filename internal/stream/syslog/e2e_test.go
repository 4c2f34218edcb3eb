package syslog_test

import (
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
	"github.com/audittrail/audittrail/internal/stream/syslog"
)

// TestEndToEnd: two syslog connectors created through the API of the real
// server, TCP with octet-counting framing and TLS, deliver every event
// ingested over HTTP to a real rsyslogd that is killed and restarted twice.
// Each output file holds every event, in ingest order, each line parsed by
// rsyslog into the RFC 5424 fields the sink meant; a repeated line is only
// ever the batch in flight when rsyslogd died.
func TestEndToEnd(t *testing.T) {
	syslog.Integration(t)
	rs := syslog.StartRsyslog(t)
	r := e2e.Start(t, servertest.Options{})
	configs := map[string]syslog.Config{
		"tcp.log": {Network: syslog.NetworkTCP, Address: rs.TCPAddr(), Hostname: "audittrail-e2e", Facility: "local3", Timeout: syslog.Duration(time.Second)},
		"tls.log": {Network: syslog.NetworkTLS, Address: rs.TLSAddr(), CAFile: rs.CAFile(), Hostname: "audittrail-e2e", Timeout: syslog.Duration(time.Second)},
	}
	var ids []string
	for file, cfg := range configs {
		ids = append(ids, r.Connector("syslog", file, cfg))
	}
	kill := e2e.Outage{Name: "rsyslogd killed", Down: rs.Kill, Up: rs.Start}
	r.Exercise(ids, kill, kill)

	sent := r.Sent()
	byID := make(map[string]*event.Event, len(sent))
	for i := range sent {
		byID[sent[i].ID] = &sent[i]
	}
	for file, cfg := range configs {
		lines := rs.Read(t, file)
		arrivals := make([]e2e.Arrival, len(lines))
		for i, l := range lines {
			arrivals[i] = e2e.Arrival{ID: l.EventID()}
		}
		dups := e2e.CheckOnceInOrder(t, sent, arrivals, true)
		sink, err := syslog.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			syslog.CheckLine(t, sink, byID[l.EventID()], l)
		}
		t.Logf("%s: %d events in %d lines (%d repeats of a batch in flight)", file, len(sent), len(lines), dups)
	}
}
