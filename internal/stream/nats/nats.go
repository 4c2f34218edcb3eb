// Package nats streams the trail to NATS JetStream: one message per event on
// the subject <prefix>.<projectId> (<prefix>.company for company-level
// events), with the event id as Nats-Msg-Id so that JetStream's duplicate
// window drops the copies a retried batch publishes again.
//
// Ordering. Publishes are pipelined (async, up to MaxPending awaiting their
// ack) on a connection that never reconnects by itself: on one TCP
// connection the server stores messages in the order they were sent, so a
// batch that fails half-way leaves a stored prefix, never a gap followed by
// later events; the engine's retry then fills in after that prefix and the
// dedupe window drops the repeats. That is why the client's own reconnect
// (which could lose a message in the dead socket and deliver the next ones
// on the new connection) and its publish retries on "no responders" are
// both switched off: a failed Write closes the connection and the engine's
// next Connect dials afresh.
package nats

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

var (
	// ErrNotConnected: Write was called before Connect, or after a failure
	// closed the connection.
	ErrNotConnected = errors.New("nats: not connected")
	// ErrNotAcknowledged: JetStream did not acknowledge every event of the
	// batch in time.
	ErrNotAcknowledged = errors.New("nats: batch not acknowledged")
)

// Header names set on every message besides Nats-Msg-Id, so consumers can
// route without decoding the body.
const (
	HeaderAction  = "Audit-Action"
	HeaderType    = "Audit-Type"
	HeaderProject = "Audit-Project"
	HeaderLevel   = "Audit-Level"
	// HeaderEvidence, with the ledger on, is on the first message of each
	// group: the batch's messages of one subject (one tree), cut so that
	// the group's evidence stays under maxEvidenceBytes. Its value is the
	// group's proofs in the webhook's wire form (client.StreamEvidence);
	// client.ChannelVerifier pairs the messages of the subject with it.
	HeaderEvidence = "Audit-Evidence"
)

// maxEvidenceBytes bounds one evidence header. Headers count towards the
// server's max_payload (1 MB by default, often set lower), so a group's
// evidence is kept well under it: ~200 events of one project a group.
var maxEvidenceBytes = 64 << 10

var _ stream.Sink = (*Sink)(nil)

// Sink publishes batches to JetStream.
type Sink struct {
	cfg Config
	// syncPublish publishes one message at a time, waiting for each ack;
	// kept for the benchmark that compares it with the pipelined default.
	syncPublish bool

	mu sync.Mutex
	nc *natsgo.Conn
	js jetstream.JetStream
}

// New validates cfg and returns an unconnected sink.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg}, nil
}

// Factory builds a sink from its JSON configuration.
func Factory(raw json.RawMessage) (stream.Sink, error) {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// Subject is where an event is published.
func (s *Sink) Subject(e *event.Event) string {
	return subject(s.cfg.SubjectPrefix, e)
}

func subject(prefix string, e *event.Event) string {
	if e.Level == event.LevelCompany || e.ProjectID == "" {
		return prefix + "." + companySubjectToken
	}
	return prefix + "." + subjectToken(e.ProjectID)
}

// subjectToken makes a project id safe as one subject token: dots would
// split it, wildcards and whitespace would make the subject invalid.
func subjectToken(id string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, id)
}

// Connect dials the servers and, when a stream is configured, checks that
// it exists. Any previous connection is closed first.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()

	opts := []natsgo.Option{
		natsgo.Name("audittrail"),
		natsgo.Timeout(time.Duration(s.cfg.Timeout)),
		natsgo.NoReconnect(),
		// Without a handler nats.go prints asynchronous errors to stderr.
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			slog.Warn("nats: asynchronous error", "url", s.cfg.URL, "err", err)
		}),
	}
	switch {
	case s.cfg.Token != "":
		opts = append(opts, natsgo.Token(s.cfg.Token))
	case s.cfg.Username != "":
		opts = append(opts, natsgo.UserInfo(s.cfg.Username, s.cfg.Password))
	}
	if s.cfg.CredentialsFile != "" {
		opts = append(opts, natsgo.UserCredentials(s.cfg.CredentialsFile))
	}
	if s.cfg.CAFile != "" {
		opts = append(opts, natsgo.RootCAs(s.cfg.CAFile))
	}
	if s.cfg.Insecure {
		opts = append(opts, natsgo.Secure(&tls.Config{InsecureSkipVerify: true}))
	}
	nc, err := natsgo.Connect(s.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("nats: connect: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(s.cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(time.Duration(s.cfg.Timeout)),
		jetstream.WithDefaultTimeout(time.Duration(s.cfg.Timeout)),
	)
	if err != nil {
		nc.Close()
		return fmt.Errorf("nats: jetstream: %w", err)
	}
	if s.cfg.Stream != "" {
		if _, err := js.Stream(ctx, s.cfg.Stream); err != nil {
			nc.Close()
			return fmt.Errorf("nats: stream %q: %w", s.cfg.Stream, err)
		}
	}
	s.nc, s.js = nc, js
	return nil
}

// Write publishes every event and returns nil once JetStream acknowledged
// each one (a duplicate ack counts: the event was stored before).
func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.js == nil {
		return ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()
	msgs := make([]*natsgo.Msg, len(b.Events))
	for i := range b.Events {
		m, err := s.message(&b.Events[i])
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	attachEvidence(b, msgs)
	var err error
	if s.syncPublish {
		err = s.publishSync(ctx, b.Events, msgs)
	} else {
		err = s.publishAsync(ctx, b.Events, msgs)
	}
	if err != nil {
		// A fresh connection for the retry: see the package comment.
		s.closeLocked()
	}
	return err
}

func (s *Sink) message(e *event.Event) (*natsgo.Msg, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("nats: encode event %s: %w", e.ID, err)
	}
	m := natsgo.NewMsg(s.Subject(e))
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, e.ID)
	m.Header.Set(HeaderAction, e.Action)
	m.Header.Set(HeaderType, e.Type)
	m.Header.Set(HeaderLevel, string(e.Level))
	if e.ProjectID != "" {
		m.Header.Set(HeaderProject, e.ProjectID)
	}
	return m, nil
}

// attachEvidence puts each group's evidence on the group's first message.
// A batch whose evidence cannot be cut goes without (logged), as a batch
// the ledger could not prove does.
//
// JetStream drops a message whose Nats-Msg-Id it stored within its
// duplicate window, headers and all: a batch cut differently after a
// restart (events 1-100 stored, then 1-150 sent) loses the evidence of a
// group that starts on a stored event, and the receiver reports that
// group's new events as unproven (docs/tamper-evidence.md).
func attachEvidence(b stream.Batch, msgs []*natsgo.Msg) {
	bySubject := map[string][]int{}
	var subjects []string
	for i, m := range msgs {
		if _, ok := bySubject[m.Subject]; !ok {
			subjects = append(subjects, m.Subject)
		}
		bySubject[m.Subject] = append(bySubject[m.Subject], i)
	}
	groups := make([][]int, len(subjects))
	for i, subj := range subjects {
		groups[i] = bySubject[subj]
	}
	runs, evs, err := stream.EvidenceRuns(b, groups, maxEvidenceBytes)
	if err != nil {
		slog.Warn("nats: batch sent without tamper evidence", "connector", b.ConnectorID, "err", err)
		return
	}
	for j, run := range runs {
		msgs[run[0]].Header.Set(HeaderEvidence, string(evs[j]))
	}
}

func (s *Sink) publishAsync(ctx context.Context, events []event.Event, msgs []*natsgo.Msg) error {
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for i, m := range msgs {
		f, err := s.js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
		if err != nil {
			return fmt.Errorf("nats: publish event %s: %w", events[i].ID, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("%w: event %s: %w", ErrNotAcknowledged, events[i].ID, err)
		case <-ctx.Done():
			return fmt.Errorf("%w: event %s: %w", ErrNotAcknowledged, events[i].ID, ctx.Err())
		}
	}
	return nil
}

func (s *Sink) publishSync(ctx context.Context, events []event.Event, msgs []*natsgo.Msg) error {
	for i, m := range msgs {
		if _, err := s.js.PublishMsg(ctx, m, jetstream.WithRetryAttempts(0)); err != nil {
			return fmt.Errorf("%w: event %s: %w", ErrNotAcknowledged, events[i].ID, err)
		}
	}
	return nil
}

// Close drops the connection; pending acks are abandoned, which is safe
// because a batch whose Write did not return nil is retried.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *Sink) closeLocked() {
	if s.nc != nil {
		s.nc.Close()
	}
	s.nc, s.js = nil, nil
}
