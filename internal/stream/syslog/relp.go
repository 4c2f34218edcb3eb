package syslog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/audittrail/audittrail/internal/stream"
)

// RELP (the Reliable Event Logging Protocol of rsyslog/librelp) gives
// syslog the application-level acknowledgement plain TCP lacks: every
// frame carries a transaction number and the receiver answers each one
// with "200 OK" once it has taken the message (rsyslog's imrelp: once the
// message is in its ruleset queue). Frames are
//
//	TXNR SP COMMAND SP DATALEN [SP DATA] LF
//
// and a session starts with an "open" offering the "syslog" command.

var (
	// ErrRELP: the receiver broke the protocol or refused a message.
	ErrRELP = errors.New("syslog: relp")
)

// relpMaxTxnr is where transaction numbers wrap back to 1.
const relpMaxTxnr = 999_999_999

// relpWindow is how many messages may await their answer at once; librelp
// refuses more than its window (128 by default) from one client.
const relpWindow = 100

type relpSession struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	next int // transaction number of the next frame
}

func openRELP(conn net.Conn) (*relpSession, error) {
	s := &relpSession{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn), next: 1}
	offers := "relp_version=0\nrelp_software=audittrail\ncommands=syslog"
	txnr := s.send("open", []byte(offers))
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("%w: open: %w", ErrRELP, err)
	}
	data, err := s.awaitRsp(txnr)
	if err != nil {
		return nil, fmt.Errorf("%w: open: %w", ErrRELP, err)
	}
	if !strings.Contains(string(data), "commands=") || !strings.Contains(string(data), "syslog") {
		return nil, fmt.Errorf("%w: open: receiver does not offer the syslog command: %q", ErrRELP, data)
	}
	return s, nil
}

// send buffers one frame and returns its transaction number.
func (s *relpSession) send(command string, data []byte) int {
	txnr := s.next
	s.next++
	if s.next > relpMaxTxnr {
		s.next = 1
	}
	s.w.WriteString(strconv.Itoa(txnr))
	s.w.WriteByte(' ')
	s.w.WriteString(command)
	s.w.WriteByte(' ')
	s.w.WriteString(strconv.Itoa(len(data)))
	if len(data) > 0 {
		s.w.WriteByte(' ')
		s.w.Write(data)
	}
	s.w.WriteByte('\n')
	return txnr
}

// awaitRsp reads the answer to txnr; it must be "200" (anything else is a
// refusal). A "serverclose" from the receiver ends the session.
func (s *relpSession) awaitRsp(txnr int) ([]byte, error) {
	got, command, data, err := s.readFrame()
	if err != nil {
		return nil, err
	}
	if command == "serverclose" {
		return nil, errors.New("receiver closed the session")
	}
	if command != "rsp" || got != txnr {
		return nil, fmt.Errorf("expected the answer to %d, got %d %s", txnr, got, command)
	}
	status, _, _ := strings.Cut(string(data), "\n")
	if !strings.HasPrefix(status, "200") {
		return nil, fmt.Errorf("message %d refused: %q", txnr, status)
	}
	return data, nil
}

func (s *relpSession) readFrame() (txnr int, command string, data []byte, err error) {
	field := func(max int) (string, byte, error) {
		var b strings.Builder
		for {
			c, err := s.r.ReadByte()
			if err != nil {
				return "", 0, err
			}
			if c == ' ' || c == '\n' {
				return b.String(), c, nil
			}
			if b.Len() >= max {
				return "", 0, errors.New("malformed frame header")
			}
			b.WriteByte(c)
		}
	}
	tx, _, err := field(9)
	if err != nil {
		return 0, "", nil, err
	}
	if txnr, err = strconv.Atoi(tx); err != nil {
		return 0, "", nil, fmt.Errorf("malformed transaction number %q", tx)
	}
	command, _, err = field(32)
	if err != nil {
		return 0, "", nil, err
	}
	ln, term, err := field(9)
	if err != nil {
		return 0, "", nil, err
	}
	n, err := strconv.Atoi(ln)
	if err != nil || n < 0 || n > 128<<10 {
		return 0, "", nil, fmt.Errorf("malformed data length %q", ln)
	}
	if n == 0 {
		if term != '\n' {
			if c, err := s.r.ReadByte(); err != nil || c != '\n' {
				return 0, "", nil, errors.New("missing frame trailer")
			}
		}
		return txnr, command, nil, nil
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(s.r, data); err != nil {
		return 0, "", nil, err
	}
	if c, err := s.r.ReadByte(); err != nil || c != '\n' {
		return 0, "", nil, errors.New("missing frame trailer")
	}
	return txnr, command, data, nil
}

// writeBatch sends every event as a syslog command, keeping at most
// relpWindow unanswered, and returns once each one was answered 200.
func (s *relpSession) writeBatch(sink *Sink, b stream.Batch) error {
	pending := make([]int, 0, relpWindow)
	awaitOldest := func() error {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("%w: send: %w", ErrRELP, err)
		}
		if _, err := s.awaitRsp(pending[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrRELP, err)
		}
		pending = pending[1:]
		return nil
	}
	err := sink.eachMessage(b, func(msg []byte) error {
		if len(pending) == relpWindow {
			if err := awaitOldest(); err != nil {
				return err
			}
		}
		pending = append(pending, s.send("syslog", msg))
		return nil
	})
	if err != nil {
		return err
	}
	for len(pending) > 0 {
		if err := awaitOldest(); err != nil {
			return err
		}
	}
	return nil
}

// close ends the session politely; errors are irrelevant by then.
func (s *relpSession) close() {
	txnr := s.send("close", nil)
	if s.w.Flush() == nil {
		s.awaitRsp(txnr)
	}
	s.conn.Close()
}
