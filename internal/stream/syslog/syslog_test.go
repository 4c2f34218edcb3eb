package syslog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
)

func TestParseConfigNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		raw, field string
	}{
		{`1`, "(root)"},
		{`{"address":"h:514"}`, "network"},
		{`{"network":"syslog-ng","address":"h:514"}`, "network"},
		{`{"network":"relp","address":"h:514","persistent":true}`, "persistent"},
		{`{"network":"tcp"}`, "address"},
		{`{"network":"tcp","address":"h"}`, "address"},
		{`{"network":"tcp","address":"h:514","facility":"local9"}`, "facility"},
		{`{"network":"tcp","address":"h:514","hostname":"a b"}`, "hostname"},
		{`{"network":"tcp","address":"h:514","appName":"this-application-name-is-far-too-long-for-rfc-5424"}`, "appName"},
		{`{"network":"tcp","address":"h:514","sdId":"audit"}`, "sdId"},
		{`{"network":"tcp","address":"h:514","sdId":"a=b@123"}`, "sdId"},
		{`{"network":"tcp","address":"h:514","framing":"nul"}`, "framing"},
		{`{"network":"tcp","address":"h:514","caFile":"/ca.pem"}`, "caFile"},
		{`{"network":"tls","address":"h:514","certFile":"/c.pem"}`, "keyFile"},
		{`{"network":"udp","address":"h:514","persistent":true}`, "persistent"},
		{`{"network":"udp","address":"h:514","maxUdpBytes":100}`, "maxUdpBytes"},
		{`{"network":"tcp","address":"h:514","timeout":"x"}`, "timeout"},
		{`{"network":"tcp","address":"h:514","port":514}`, "port"},
		{`{"network":"tls","address":"h:514","caFile":"/does/not/exist"}`, "caFile"},
	} {
		_, err := Factory(json.RawMessage(tc.raw))
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want a ConfigError", tc.raw, err)
			continue
		}
		if ce.Field != tc.field {
			t.Errorf("%s: error names %q (%v), want %q", tc.raw, ce.Field, err, tc.field)
		}
		var fe *stream.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: the engine sees %v, want a stream.FieldError for %q", tc.raw, fe, tc.field)
		}
	}
}

func TestFormat(t *testing.T) {
	s, err := New(Config{Network: NetworkTCP, Address: "127.0.0.1:514", Facility: "local4", Hostname: "at1"})
	if err != nil {
		t.Fatal(err)
	}
	e := event.Event{
		ID: "ev1", ProjectID: "P2x", Level: event.LevelProject, UserID: `U"1]\`, Action: "User Created",
		Type: event.TypeWarn, Occurred: 1_760_000_000_123, Data: json.RawMessage(`{"a":1}`),
	}
	got, err := s.Format(&e)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(e)
	want := `<164>1 2025-10-09T08:53:20.123Z at1 audittrail - User_Created ` +
		`[audittrail@32473 id="ev1" project="P2x" user="U\"1\]\\" level="project" type="warn"] ` + string(body)
	if string(got) != want {
		t.Fatalf("Format:\n got %s\nwant %s", got, want)
	}
	company := event.Event{ID: "ev2", Level: event.LevelCompany, Action: "ProjectCreated", Type: event.TypeError, Occurred: 1}
	got, _ = s.Format(&company)
	if want := `<163>1 1970-01-01T00:00:00.001Z at1 audittrail - ProjectCreated [audittrail@32473 id="ev2" level="company" type="error"] `; string(got[:len(want)]) != want {
		t.Fatalf("Format company event: %s", got)
	}
	for typ, sev := range map[string]int{event.TypeInfo: 6, event.TypeWarn: 4, event.TypeError: 3} {
		if Severity(typ) != sev {
			t.Errorf("Severity(%s) = %d, want %d", typ, Severity(typ), sev)
		}
	}
}

// TestWriteFailsWhenTheReceiverDoesNotReadToTheEnd checks that the
// confirmation is real: a receiver that takes the connection but resets
// it, or that never closes it, does not make Write return nil.
func TestWriteFailsWhenTheReceiverDoesNotReadToTheEnd(t *testing.T) {
	for _, behaviour := range []string{"reset", "silent"} {
		t.Run(behaviour, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					if behaviour == "reset" {
						c.(*net.TCPConn).SetLinger(0)
						c.Close()
					} else {
						defer c.Close() // reads nothing and never closes
					}
				}
			}()
			s, err := New(Config{Network: NetworkTCP, Address: l.Addr().String(), Timeout: Duration(500 * time.Millisecond)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			err = s.Write(context.Background(), stream.Batch{Events: streamtest.Mixed(0, 2000, time.Millisecond)})
			if err == nil {
				t.Fatal("Write returned nil though the receiver did not read the batch")
			}
		})
	}
}

func TestWriteSucceedsWhenTheReceiverReadsEverything(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n := 0
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			n += k
			if err != nil {
				break
			}
		}
		c.Close()
		got <- n
	}()
	s, err := New(Config{Network: NetworkTCP, Address: l.Addr().String(), Timeout: Duration(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	evs := streamtest.Mixed(0, 100, time.Millisecond)
	if err := s.Write(context.Background(), stream.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := range evs {
		m, _ := s.Format(&evs[i])
		want += len(strconv.Itoa(len(m))) + 1 + len(m)
	}
	if n := <-got; n != want {
		t.Fatalf("receiver read %d bytes, want %d", n, want)
	}
}

// fakeRELP answers the open, then every syslog frame with status.
func fakeRELP(t *testing.T, status string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := &relpSession{conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
				for {
					txnr, command, _, err := s.readFrame()
					if err != nil {
						return
					}
					answer := status
					if command == "open" {
						answer = "200 OK\nrelp_version=0\ncommands=syslog"
					}
					fmt.Fprintf(s.w, "%d rsp %d %s\n", txnr, len(answer), answer)
					s.w.Flush()
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestRELPAnswers(t *testing.T) {
	for status, wantOK := range map[string]bool{"200 OK": true, "500 queue full": false} {
		s, err := New(Config{Network: NetworkRELP, Address: fakeRELP(t, status), Timeout: Duration(2 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Write(context.Background(), stream.Batch{Events: streamtest.Mixed(0, 250, time.Millisecond)})
		if (err == nil) != wantOK {
			t.Errorf("receiver answering %q: Write returned %v", status, err)
		}
		s.Close(context.Background())
	}
}
