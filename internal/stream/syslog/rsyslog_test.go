package syslog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

func integration(t testing.TB) {
	t.Helper()
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("needs rsyslogd (Debian packages rsyslog, rsyslog-gnutls); set AUDITTRAIL_INTEGRATION=1")
	}
}

// rsyslogd is a real rsyslog run in the foreground as a child process,
// with test/rsyslog/rsyslog.conf.tmpl filled in for free ports.
type rsyslogd struct {
	t                         testing.TB
	bin, dir, conf, outDir    string
	tcpPort, tlsPort, udpPort int
	relpPort                  int // 0 when imrelp (rsyslog-relp) is not installed
	caFile                    string
	mu                        sync.Mutex
	cmd                       *exec.Cmd
	exited                    chan error
	stderr                    *lockedBuffer
}

func startRsyslog(t testing.TB) *rsyslogd {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatalf("rsyslogd not found: install the Debian packages rsyslog and rsyslog-gnutls: %v", err)
	}
	dir := t.TempDir()
	r := &rsyslogd{t: t, bin: bin, dir: dir, outDir: filepath.Join(dir, "out")}
	for _, d := range []string{r.outDir, filepath.Join(dir, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	r.caFile = certFile
	writeSelfSignedCert(t, certFile, keyFile)
	_, self, _, _ := runtime.Caller(0)
	tmplPath := filepath.Join(filepath.Dir(self), "..", "..", "..", "test", "rsyslog", "rsyslog.conf.tmpl")
	tmpl, err := template.ParseFiles(tmplPath)
	if err != nil {
		t.Fatal(err)
	}
	r.conf = filepath.Join(dir, "rsyslog.conf")
	// A port picked free can be taken by someone else's connection before
	// rsyslogd binds it: then try again with other ports.
	for attempt := 1; ; attempt++ {
		r.tcpPort, r.tlsPort = streamtest.FreePort(t, "tcp"), streamtest.FreePort(t, "tcp")
		r.udpPort = streamtest.FreePort(t, "udp")
		for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/rsyslog"} {
			if _, err := os.Stat(filepath.Join(dir, "imrelp.so")); err == nil {
				r.relpPort = streamtest.FreePort(t, "tcp")
			}
		}
		var conf bytes.Buffer
		if err := tmpl.Execute(&conf, map[string]any{
			"WorkDir": filepath.Join(dir, "work"), "OutDir": r.outDir,
			"CAFile": certFile, "CertFile": certFile, "KeyFile": keyFile,
			"TCPPort": r.tcpPort, "TLSPort": r.tlsPort, "UDPPort": r.udpPort, "RELPPort": r.relpPort,
		}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(r.conf, conf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		err := r.tryStart()
		if err == nil {
			break
		}
		r.kill()
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	t.Cleanup(r.kill)
	return r
}

// start brings rsyslogd back after an outage, on the same ports.
func (r *rsyslogd) start() {
	if err := r.tryStart(); err != nil {
		r.t.Error(err)
	}
}

// lockedBuffer collects rsyslogd's output while the test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (r *rsyslogd) tryStart() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stderr = &lockedBuffer{}
	cmd := exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.cmd, r.exited = cmd, exited
	deadline := time.Now().Add(20 * time.Second)
	for _, port := range []int{r.tcpPort, r.tlsPort, r.relpPort} {
		for port != 0 {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-exited:
				r.cmd = nil
				return fmt.Errorf("rsyslogd exited (%v) before listening on %d: %s", err, port, r.stderr)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rsyslogd did not listen on %d within 20s: %s", port, r.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// kill is the outage: SIGKILL, no chance to flush anything.
func (r *rsyslogd) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.cmd.Process.Kill()
		<-r.exited
		r.cmd = nil
	}
}

func writeSelfSignedCert(t testing.TB, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "audittrail test syslog"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// parsedLine is what the rsyslog template writes: the fields rsyslog's
// RFC 5424 parser found.
type parsedLine struct {
	Pri, Facility, Severity, Version string
	Timestamp, Hostname, Appname     string
	Procid, Msgid, SD, Msg           string
}

func (p *parsedLine) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*p = parsedLine{m["pri"], m["facility"], m["severity"], m["version"], m["timestamp"], m["hostname"],
		m["appname"], m["procid"], m["msgid"], m["sd"], m["msg"]}
	return nil
}

func (r *rsyslogd) read(t *testing.T, file string) []parsedLine {
	t.Helper()
	f, err := os.Open(filepath.Join(r.outDir, file))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []parsedLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var p parsedLine
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("%s: line %q: %v", file, sc.Text(), err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var sdIDParam = regexp.MustCompile(`\bid="([^"]*)"`)

// checkLines asserts that, keeping the first line of each event id, the
// sent events are there in order, parsed by rsyslog into the fields they
// should have, with at most lostRuns runs of consecutive events missing,
// none longer than maxRun. Over TCP and TLS a receiver killed after reading
// a batch and before writing it loses that batch while the sender sees the
// same clean close as a written one (see the package comment), so those
// tests allow one run per kill; RELP and a receiver left running allow
// none. It returns how many duplicate lines it dropped and how many events
// were missing.
func checkLines(t *testing.T, s *Sink, sent []event.Event, lines []parsedLine, lostRuns, maxRun int) (duplicates, lost int) {
	t.Helper()
	seen := map[string]bool{}
	next, runs := 0, 0
	missing := func(from, to int) {
		if to == from {
			return
		}
		runs++
		lost += to - from
		if runs > lostRuns || to-from > maxRun {
			t.Fatalf("events %s … %s (#%d to #%d) never reached rsyslog: %d runs missing, %d allowed, of at most %d events",
				sent[from].ID, sent[to-1].ID, from, to-1, runs, lostRuns, maxRun)
		}
	}
	for _, l := range lines {
		m := sdIDParam.FindStringSubmatch(l.SD)
		if m == nil {
			t.Fatalf("line without an id in its structured data: %+v", l)
		}
		if seen[m[1]] {
			duplicates++
			continue
		}
		seen[m[1]] = true
		at := next
		for at < len(sent) && sent[at].ID != m[1] {
			at++
		}
		if at == len(sent) {
			t.Fatalf("line for event %s is out of order or was never sent", m[1])
		}
		missing(next, at)
		checkLine(t, s, &sent[at], l)
		next = at + 1
	}
	missing(next, len(sent))
	return duplicates, lost
}

// checkLine asserts that rsyslog parsed line l as the RFC 5424 message s
// formats for e: header fields, structured data and the event JSON as MSG.
func checkLine(t *testing.T, s *Sink, e *event.Event, l parsedLine) {
	t.Helper()
	var got event.Event
	if err := json.Unmarshal([]byte(l.Msg), &got); err != nil {
		t.Fatalf("event %s: MSG %q is not the event JSON: %v", e.ID, l.Msg, err)
	}
	if got.ID != e.ID {
		t.Fatalf("line holds event %s, want %s (order broken)", got.ID, e.ID)
	}
	wantBody, _ := json.Marshal(e)
	gotBody, _ := json.Marshal(got)
	wantTime := time.UnixMilli(e.Occurred).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	if l.Version != "1" || l.Facility != strconv.Itoa(s.facility) || l.Severity != strconv.Itoa(Severity(e.Type)) ||
		l.Pri != strconv.Itoa(s.facility*8+Severity(e.Type)) || l.Timestamp != wantTime ||
		l.Hostname != s.cfg.Hostname || l.Appname != "audittrail" || l.Procid != "-" || l.Msgid != e.Action ||
		!bytes.Equal(gotBody, wantBody) {
		t.Fatalf("event %s parsed by rsyslog as %+v (body %s)", e.ID, l, gotBody)
	}
	wantSD := `[audittrail@32473 id="` + e.ID + `"`
	if e.ProjectID != "" {
		wantSD += ` project="` + e.ProjectID + `"`
	}
	// Empty parameters are left out (an event the server records itself,
	// such as ConnectorCreated, has no user).
	if e.UserID != "" {
		wantSD += ` user="` + e.UserID + `"`
	}
	wantSD += ` level="` + string(e.Level) + `" type="` + e.Type + `"]`
	if l.SD != wantSD {
		t.Fatalf("event %s structured data %s, want %s", e.ID, l.SD, wantSD)
	}
}

func TestRsyslogReceivesEveryEventThroughOutages(t *testing.T) {
	integration(t)
	r := startRsyslog(t)
	for _, network := range []string{NetworkTCP, NetworkTLS, NetworkRELP} {
		t.Run(network, func(t *testing.T) {
			cfg := Config{Network: network, Address: "127.0.0.1:" + strconv.Itoa(r.tcpPort),
				Hostname: "audittrail-test", Timeout: Duration(2 * time.Second)}
			file := "tcp.log"
			switch network {
			case NetworkTLS:
				cfg.Address, cfg.CAFile, file = "127.0.0.1:"+strconv.Itoa(r.tlsPort), r.caFile, "tls.log"
			case NetworkRELP:
				if r.relpPort == 0 {
					t.Fatal("rsyslog's imrelp module is missing: install the Debian package rsyslog-relp")
				}
				cfg.Address, file = "127.0.0.1:"+strconv.Itoa(r.relpPort), "relp.log"
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Connect(context.Background()); err != nil {
				t.Fatalf("Connect: %v\n%s", err, r.stderr)
			}
			defer s.Close(context.Background())

			const batches, perBatch = 16, 300
			var sent []event.Event
			retried := 0
			for b := range batches {
				evs := streamtest.Mixed(b*perBatch, perBatch, time.Millisecond)
				switch b {
				case 5:
					// Down between batches, back a little later.
					r.kill()
					go func() { time.Sleep(300 * time.Millisecond); r.start() }()
				case 11:
					// Killed while the batch is on the wire.
					go func() { time.Sleep(2 * time.Millisecond); r.kill(); time.Sleep(300 * time.Millisecond); r.start() }()
				}
				if n := streamtest.Deliver(t, s, stream.Batch{ConnectorID: "c1", Events: evs}, 60*time.Second); n > 1 {
					retried++
				}
				sent = append(sent, evs...)
			}
			if retried == 0 {
				t.Fatal("no batch needed a retry: the outage was not injected")
			}
			lostRuns := 2 // one per kill
			if network == NetworkRELP {
				lostRuns = 0
			}
			dups, lost := checkLines(t, s, sent, r.read(t, file), lostRuns, perBatch)
			t.Logf("%s: %d events, %d batches retried, %d duplicate lines dropped by id, %d lost at a kill", network, len(sent), retried, dups, lost)
		})
	}
}

func TestRsyslogTLSRefusesAnUntrustedReceiver(t *testing.T) {
	integration(t)
	r := startRsyslog(t)
	other := filepath.Join(t.TempDir(), "other.pem")
	writeSelfSignedCert(t, other, filepath.Join(t.TempDir(), "other.key"))
	s, err := New(Config{Network: NetworkTLS, Address: "127.0.0.1:" + strconv.Itoa(r.tlsPort), CAFile: other})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err == nil {
		s.Close(context.Background())
		t.Fatal("Connect trusted a receiver whose certificate the CA file does not hold")
	}
}

// UDP has no acknowledgement: this only checks that what a running
// receiver gets is complete and well formed at a modest rate.
func TestRsyslogUDP(t *testing.T) {
	integration(t)
	r := startRsyslog(t)
	s, err := New(Config{Network: NetworkUDP, Address: "127.0.0.1:" + strconv.Itoa(r.udpPort), Hostname: "audittrail-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	// imudp may start a moment after the TCP listeners: probe until a
	// datagram arrives.
	probe := streamtest.Mixed(1_000_000, 1, time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.read(t, "udp.log")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd never received a datagram: %s", r.stderr)
		}
		if err := s.Write(context.Background(), stream.Batch{Events: probe}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var sent []event.Event
	for b := range 5 {
		evs := streamtest.Mixed(b*40, 40, time.Millisecond)
		if err := s.Write(context.Background(), stream.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, evs...)
		time.Sleep(20 * time.Millisecond)
	}
	var lines []parsedLine
	for time.Now().Before(deadline) {
		lines = r.read(t, "udp.log")
		if len(lines) >= len(sent)+1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var real []parsedLine
	for _, l := range lines {
		if !bytes.Contains([]byte(l.SD), []byte(probe[0].ID)) {
			real = append(real, l)
		}
	}
	if dups, _ := checkLines(t, s, sent, real, 0, 0); dups != 0 {
		t.Fatalf("%d duplicates over UDP, which never retries", dups)
	}
}

// BenchmarkRsyslog measures delivery to a real rsyslogd per mode:
// AUDITTRAIL_INTEGRATION=1 go test -run '^$' -bench Rsyslog ./internal/stream/syslog/
func BenchmarkRsyslog(b *testing.B) {
	integration(b)
	r := startRsyslog(b)
	for _, mode := range []struct {
		name       string
		network    string
		persistent bool
	}{
		{"tcp-confirmed", NetworkTCP, false},
		{"tcp-persistent", NetworkTCP, true},
		{"tls-confirmed", NetworkTLS, false},
		{"tls-persistent", NetworkTLS, true},
		{"relp", NetworkRELP, false},
	} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := Config{Network: mode.network, Address: "127.0.0.1:" + strconv.Itoa(r.tcpPort), Persistent: mode.persistent}
			switch mode.network {
			case NetworkTLS:
				cfg.Address, cfg.CAFile = "127.0.0.1:"+strconv.Itoa(r.tlsPort), r.caFile
			case NetworkRELP:
				if r.relpPort == 0 {
					b.Skip("imrelp missing (rsyslog-relp)")
				}
				cfg.Address = "127.0.0.1:" + strconv.Itoa(r.relpPort)
			}
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			const perBatch = 500
			evs := streamtest.Mixed(0, perBatch, time.Millisecond)
			for b.Loop() {
				if err := s.Write(context.Background(), stream.Batch{Events: evs}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
