// Package syslog streams the trail as RFC 5424 messages over TCP with
// octet-counting framing (RFC 6587), TLS (RFC 5425) or UDP (RFC 5426).
//
// Each event is one message: PRI from the facility and the event type
// (info→6, warn→4, error→3), the event time as TIMESTAMP, APP-NAME
// audittrail, MSGID the action, a structured-data element with id, project,
// user, level and type, and the event JSON as MSG (without a BOM, which
// many receivers would keep as part of the text).
//
// What "acknowledged" means. Syslog over TCP has no application-level
// acknowledgement: a write that returned only says the local kernel took
// the bytes. By default each batch therefore travels on its own
// connection: Write sends every frame, half-closes the connection (TCP FIN,
// or TLS close_notify and FIN) and waits for the receiver to close its side.
// A receiver closes only once it has read the stream to its end, so a nil
// Write means the receiver read every message of the batch; a receiver that
// died or reset the connection first makes Write fail and the batch is
// retried (receivers dedupe by the id in the structured data). What the
// receiver did with a message it read depends on its own queueing: with
// rsyslog's Direct queues (test/rsyslog) the message is in the output file
// by then, unless rsyslogd was killed after reading the batch into memory
// and before writing it: its kernel then closes the connection with a FIN
// as a clean close would, and those messages are lost (seen in the
// end-to-end test about once in fifteen runs of two SIGKILLs). Persistent mode keeps one connection for throughput and gives no
// such assurance. RELP (network "relp", rsyslog's imrelp) is the real
// thing: one persistent connection, and each message answered "200 OK" by
// the receiver once it took it. UDP has no acknowledgement at all: Write
// returns once the datagrams left, and a receiver that is down loses them.
//
// Tamper evidence. With the server's ledger on, the messages of each
// batch's events are followed by one message holding the batch's evidence
// (docs/tamper-evidence.md) as MSG, with MSGID "evidence" and a
// structured-data element [<sdId> evidence="<n>"] where n is how many of
// the events before it the evidence proves. Evidence that would make a
// message longer than maxMessageBytes (rsyslog's default maxMessageSize,
// 8192) is split, each part after the events it proves. A batch lost at a
// receiver's kill (TCP, TLS, UDP, above) loses its evidence with it: a
// receiver's verifier reports the gap as missing events when the next
// batch arrives.
package syslog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

var (
	// ErrNotConfirmed: the receiver did not close the connection after
	// reading the batch, so delivery cannot be confirmed.
	ErrNotConfirmed = errors.New("syslog: receiver did not confirm the batch")
	// ErrNotConnected: Write on a closed sink.
	ErrNotConnected = errors.New("syslog: not connected")
)

var _ stream.Sink = (*Sink)(nil)

// Sink writes batches to one syslog receiver.
type Sink struct {
	cfg      Config
	facility int
	tls      *tls.Config

	mu   sync.Mutex
	conn net.Conn // the connection the next Write uses, if dialed already
	relp *relpSession
}

// New validates cfg and returns an unconnected sink.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, facility: facilities[cfg.Facility]}
	if cfg.Network == NetworkTLS {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		s.tls = tc
	}
	return s, nil
}

// Factory builds a sink from its JSON configuration.
func Factory(raw json.RawMessage) (stream.Sink, error) {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure, ServerName: cfg.ServerName}
	if tc.ServerName == "" {
		host, _, _ := net.SplitHostPort(cfg.Address)
		tc.ServerName = host
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, &ConfigError{"caFile", err.Error()}
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{"caFile", "holds no PEM certificate"}
		}
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, &ConfigError{"certFile", err.Error()}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	// Resumed sessions keep a handshake per batch cheap.
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	return tc, nil
}

// Connect dials the receiver, so that an unreachable one or a bad
// certificate is reported before the first batch. The connection is used
// by the next Write.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	if s.cfg.Network == NetworkRELP {
		return s.openRELPLocked(ctx, c)
	}
	s.conn = c
	return nil
}

func (s *Sink) openRELPLocked(ctx context.Context, c net.Conn) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Duration(s.cfg.Timeout))
	}
	c.SetDeadline(deadline)
	r, err := openRELP(c)
	if err != nil {
		c.Close()
		return err
	}
	s.relp = r
	return nil
}

func (s *Sink) dial(ctx context.Context) (net.Conn, error) {
	timeout := time.Duration(s.cfg.Timeout)
	d := net.Dialer{Timeout: timeout}
	switch s.cfg.Network {
	case NetworkUDP:
		c, err := d.DialContext(ctx, "udp", s.cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("syslog: dial udp %s: %w", s.cfg.Address, err)
		}
		return c, nil
	case NetworkTLS:
		td := tls.Dialer{NetDialer: &d, Config: s.tls}
		c, err := td.DialContext(ctx, "tcp", s.cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("syslog: dial tls %s: %w", s.cfg.Address, err)
		}
		return c, nil
	default: // tcp, relp
		c, err := d.DialContext(ctx, "tcp", s.cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("syslog: dial tcp %s: %w", s.cfg.Address, err)
		}
		return c, nil
	}
}

// Write sends the batch; see the package comment for what a nil error
// promises on each transport.
func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b.Events) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()
	if s.cfg.Network == NetworkRELP {
		return s.writeRELPLocked(ctx, b)
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return err
		}
		s.conn = c
	}
	conn := s.conn
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		s.closeLocked()
		return fmt.Errorf("syslog: %w", err)
	}
	// An expired deadline is what interrupts a blocked write or read when
	// the caller's context ends early.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	var err error
	if s.cfg.Network == NetworkUDP {
		err = s.writeDatagrams(conn, b)
	} else {
		err = s.writeStream(conn, b)
	}
	if err != nil {
		s.closeLocked()
		return err
	}
	if s.cfg.Network == NetworkUDP || s.cfg.Persistent {
		return nil
	}
	s.conn = nil // this connection is spent: confirm consumes it
	return confirm(conn)
}

// writeRELPLocked sends the batch on the RELP session (opened if needed)
// and returns once the receiver answered every message. On failure the
// session is dropped: the unanswered tail is retried on a new one.
func (s *Sink) writeRELPLocked(ctx context.Context, b stream.Batch) error {
	if s.relp == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return err
		}
		if err := s.openRELPLocked(ctx, c); err != nil {
			return err
		}
	}
	conn := s.relp.conn
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := s.relp.writeBatch(s, b); err != nil {
		conn.Close()
		s.relp = nil
		return err
	}
	return nil
}

func (s *Sink) writeStream(conn net.Conn, b stream.Batch) error {
	var buf bytes.Buffer
	err := s.eachMessage(b, func(msg []byte) error {
		if s.cfg.Framing == FramingOctetCounting {
			buf.WriteString(strconv.Itoa(len(msg)))
			buf.WriteByte(' ')
			buf.Write(msg)
		} else {
			buf.Write(msg)
			buf.WriteByte('\n')
		}
		// Bounds memory for large batches.
		if buf.Len() >= 256<<10 {
			if _, err := conn.Write(buf.Bytes()); err != nil {
				return fmt.Errorf("syslog: send: %w", err)
			}
			buf.Reset()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("syslog: send: %w", err)
	}
	return nil
}

func (s *Sink) writeDatagrams(conn net.Conn, b stream.Batch) error {
	return s.eachMessage(b, func(msg []byte) error {
		if len(msg) > s.cfg.MaxUDPBytes {
			msg = msg[:s.cfg.MaxUDPBytes]
		}
		if _, err := conn.Write(msg); err != nil {
			return fmt.Errorf("syslog: send datagram: %w", err)
		}
		return nil
	})
}

// eachMessage formats the batch's messages in order, the evidence of each
// part after the events it proves, and hands each to send.
func (s *Sink) eachMessage(b stream.Batch, send func(msg []byte) error) error {
	var parts []stream.EvidencePart
	if len(b.Evidence) > 0 {
		limit := s.cfg.MaxMessageBytes
		if s.cfg.Network == NetworkUDP {
			limit = min(limit, s.cfg.MaxUDPBytes)
		}
		var err error
		parts, err = stream.EvidenceParts(b, limit-len(s.evidenceHeader(len(b.Events))))
		if err != nil {
			// Deliver the events all the same: the receiver sees them unproven.
			slog.Warn("syslog: batch sent without its tamper evidence", "connector", b.ConnectorID, "err", err)
		}
	}
	next := 0 // the first event of the next part
	for i := range b.Events {
		msg, err := s.Format(&b.Events[i])
		if err != nil {
			return err
		}
		if err := send(msg); err != nil {
			return err
		}
		if len(parts) > 0 && i+1 == next+parts[0].Events {
			if err := send(append(s.evidenceHeader(parts[0].Events), parts[0].JSON...)); err != nil {
				return err
			}
			next, parts = i+1, parts[1:]
		}
	}
	return nil
}

// EvidenceMsgID is the MSGID of evidence messages.
const EvidenceMsgID = "evidence"

// evidenceHeader is an evidence message up to its MSG: severity info, the
// time it is sent, and the structured data naming how many events before
// it the evidence proves.
func (s *Sink) evidenceHeader(events int) []byte {
	var b bytes.Buffer
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(s.facility*8 + 6))
	b.WriteString(">1 ")
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	b.WriteByte(' ')
	b.WriteString(s.cfg.Hostname)
	b.WriteByte(' ')
	b.WriteString(s.cfg.AppName)
	b.WriteString(" - " + EvidenceMsgID + " [")
	b.WriteString(s.cfg.SDID)
	b.WriteString(` evidence="`)
	b.WriteString(strconv.Itoa(events))
	b.WriteString(`"] `)
	return b.Bytes()
}

// confirm half-closes conn and waits for the receiver to close its side,
// which it does only after reading everything we sent. Any data, a reset
// or the deadline means the batch is not confirmed.
func confirm(conn net.Conn) error {
	defer conn.Close()
	type closeWriter interface{ CloseWrite() error }
	cw, ok := conn.(closeWriter)
	if !ok {
		return fmt.Errorf("%w: connection cannot half-close", ErrNotConfirmed)
	}
	if err := cw.CloseWrite(); err != nil {
		return fmt.Errorf("%w: half-close: %w", ErrNotConfirmed, err)
	}
	var one [1]byte
	n, err := conn.Read(one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: receiver sent data", ErrNotConfirmed)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// ErrUnexpectedEOF: a TLS receiver that closed without its own
		// close_notify, which still means it read to our close_notify.
		return nil
	default:
		return fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
}

// Close drops any open connection.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *Sink) closeLocked() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	if s.relp != nil {
		s.relp.conn.SetDeadline(time.Now().Add(time.Second))
		s.relp.close()
		s.relp = nil
	}
}

// Severity is the RFC 5424 severity of an event type.
func Severity(eventType string) int {
	switch eventType {
	case event.TypeError:
		return 3
	case event.TypeWarn:
		return 4
	default:
		return 6
	}
}

// Format renders one event as an RFC 5424 message (without framing).
func (s *Sink) Format(e *event.Event) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("syslog: encode event %s: %w", e.ID, err)
	}
	var b bytes.Buffer
	b.Grow(len(body) + 200)
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(s.facility*8 + Severity(e.Type)))
	b.WriteString(">1 ")
	if e.Occurred > 0 {
		b.WriteString(time.UnixMilli(e.Occurred).UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	} else {
		b.WriteByte('-')
	}
	b.WriteByte(' ')
	b.WriteString(s.cfg.Hostname)
	b.WriteByte(' ')
	b.WriteString(s.cfg.AppName)
	b.WriteString(" - ")
	b.WriteString(msgID(e.Action))
	b.WriteString(" [")
	b.WriteString(s.cfg.SDID)
	for _, p := range [...]struct{ name, value string }{
		{"id", e.ID}, {"project", e.ProjectID}, {"user", e.UserID},
		{"level", string(e.Level)}, {"type", e.Type},
	} {
		if p.value == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(p.name)
		b.WriteString(`="`)
		writeParamValue(&b, p.value)
		b.WriteByte('"')
	}
	b.WriteString("] ")
	b.Write(body)
	return b.Bytes(), nil
}

// msgID makes an action a valid MSGID: 1-32 printable ASCII characters.
func msgID(action string) string {
	if action == "" {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(action) && b.Len() < 32; i++ {
		c := action[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// writeParamValue escapes '"', '\' and ']' as RFC 5424 section 6.3.3 asks.
func writeParamValue(b *bytes.Buffer, v string) {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"', '\\', ']':
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
}
