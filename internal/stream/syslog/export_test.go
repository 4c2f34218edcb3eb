package syslog

import (
	"strconv"
	"testing"
)

// What the end-to-end test (package syslog_test) reuses of this package's
// test receiver and checks.

type (
	Rsyslogd   = rsyslogd
	ParsedLine = parsedLine
)

var (
	Integration  = integration
	StartRsyslog = startRsyslog
	CheckLine    = checkLine
)

func (r *rsyslogd) Kill()           { r.kill() }
func (r *rsyslogd) Start()          { r.start() }
func (r *rsyslogd) TCPAddr() string { return "127.0.0.1:" + strconv.Itoa(r.tcpPort) }
func (r *rsyslogd) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(r.tlsPort) }
func (r *rsyslogd) UDPAddr() string { return "127.0.0.1:" + strconv.Itoa(r.udpPort) }

// RELPAddr is "" when rsyslog's imrelp (Debian rsyslog-relp) is missing.
func (r *rsyslogd) RELPAddr() string {
	if r.relpPort == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(r.relpPort)
}
func (r *rsyslogd) CAFile() string { return r.caFile }
func (r *rsyslogd) Stderr() string { return r.stderr.String() }

// Read returns the lines rsyslogd wrote to file (tcp.log, tls.log,
// udp.log, relp.log), in the order it received them.
func (r *rsyslogd) Read(t *testing.T, file string) []ParsedLine { return r.read(t, file) }

// EventID is the id parameter of the line's structured data, "" if none.
func (p parsedLine) EventID() string {
	if m := sdIDParam.FindStringSubmatch(p.SD); m != nil {
		return m[1]
	}
	return ""
}
