// Package kafka streams the trail to a Kafka topic with franz-go: one record
// per event, keyed by project id ("company" for company-level events) so
// that each project's events land on one partition in order, valued with
// the event JSON, with the id and action in headers for consumers that
// dedupe or route without decoding.
//
// The producer is idempotent with acks=all, so the client's own retries
// never duplicate or reorder a record. Across Writes Kafka cannot dedupe:
// when a batch fails after some of its records were stored, the engine's
// retry stores them again. franz-go fails every later record of a partition
// once one record of it fails, so what a failed batch leaves behind is a
// prefix per partition, and a consumer that keeps the first copy of each id
// sees every project's events exactly once and in order.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

var (
	// ErrNotConnected: Write was called before Connect, or after a timed
	// out Write closed the client.
	ErrNotConnected = errors.New("kafka: not connected")
	// ErrNotAcknowledged: the brokers did not acknowledge every record of
	// the batch.
	ErrNotAcknowledged = errors.New("kafka: batch not acknowledged")
	// ErrUnknownTopic: the topic does not exist on the cluster.
	ErrUnknownTopic = errors.New("kafka: unknown topic")
)

// Record header names.
const (
	HeaderID     = "audit-id"
	HeaderAction = "audit-action"
	HeaderType   = "audit-type"
	HeaderLevel  = "audit-level"
	// HeaderEvidence, with the ledger on, is on the first record of each
	// group: the batch's records of one key (one tree), cut so that the
	// group's evidence stays under maxEvidenceBytes. Its value is the
	// group's proofs in the webhook's wire form (client.StreamEvidence);
	// client.ChannelVerifier pairs the records of the key with it.
	HeaderEvidence = "audit-evidence"
)

// maxEvidenceBytes bounds one evidence header. A record, headers included,
// must fit in the producer's batch (1 MB by default, as the brokers'
// message.max.bytes): a 500-event group of one project needs ~150 KB, so
// groups are cut only when batches are configured larger.
var maxEvidenceBytes = 256 << 10

var _ stream.Sink = (*Sink)(nil)

// Sink produces batches to one topic.
type Sink struct {
	cfg Config

	mu sync.Mutex
	cl *kgo.Client
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

// Key is the record key of an event.
func Key(e *event.Event) string {
	if e.Level == event.LevelCompany || e.ProjectID == "" {
		return companyKey
	}
	return e.ProjectID
}

func (s *Sink) options() ([]kgo.Opt, error) {
	timeout := time.Duration(s.cfg.Timeout)
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.DefaultProduceTopic(s.cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Idempotent writes are franz-go's default; they need acks=all and
		// are what keeps the client's internal retries from reordering.
		kgo.RecordDeliveryTimeout(timeout),
		kgo.ProduceRequestTimeout(timeout),
		kgo.DialTimeout(min(timeout, 10*time.Second)),
		kgo.RetryTimeout(timeout),
		// Write waits for its records anyway; lingering only adds latency.
		kgo.ProducerLinger(0),
		kgo.WithLogger(kgo.BasicLogger(slogWriter{}, kgo.LogLevelWarn, nil)),
	}
	if s.cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(s.cfg.ClientID))
	} else {
		opts = append(opts, kgo.ClientID("audittrail"))
	}
	switch s.cfg.Compression {
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	if s.cfg.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.cfg.Insecure}
		if s.cfg.CAFile != "" {
			pem, err := os.ReadFile(s.cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka: read caFile: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: caFile %s holds no PEM certificate", s.cfg.CAFile)
			}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if a := s.cfg.SASL; a != nil {
		switch strings.ToUpper(a.Mechanism) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: a.Username, Pass: a.Password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: a.Username, Pass: a.Password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: a.Username, Pass: a.Password}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}

// Connect builds the producer and checks that the topic exists, so that a
// wrong topic fails here rather than as a timeout on every batch.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	opts, err := s.options()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: new client: %w", err)
	}
	if err := checkTopic(ctx, cl, s.cfg.Topic); err != nil {
		cl.Close()
		return err
	}
	s.cl = cl
	return nil
}

func checkTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
			}
			return fmt.Errorf("kafka: topic %s: %w", topic, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
}

// Write produces every event and returns nil once each record was
// acknowledged by all in-sync replicas.
func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl == nil {
		return ErrNotConnected
	}
	records := make([]*kgo.Record, len(b.Events))
	for i := range b.Events {
		e := &b.Events[i]
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("kafka: encode event %s: %w", e.ID, err)
		}
		// The record timestamp stays the produce time: set to the event's
		// time, a replayed old event would fall under the topic's retention
		// at once (and franz-go measures delivery timeouts from it).
		records[i] = &kgo.Record{
			Key:   []byte(Key(e)),
			Value: body,
			Headers: []kgo.RecordHeader{
				{Key: HeaderID, Value: []byte(e.ID)},
				{Key: HeaderAction, Value: []byte(e.Action)},
				{Key: HeaderType, Value: []byte(e.Type)},
				{Key: HeaderLevel, Value: []byte(e.Level)},
			},
		}
	}
	s.attachEvidence(b, records)
	// Past the deadline franz-go fails the records it never sent, but it
	// keeps a record it already sent until it knows the record's fate
	// (failing it would break the idempotent sequence). A broker that is
	// gone could keep Write waiting for its whole outage, so at the
	// deadline the client is closed, which fails every record still
	// buffered; the retry runs on a fresh client and producer id. The
	// records in doubt may then be stored twice, which consumers dedupe by
	// id. ProduceSync returns only once every record is settled, so no
	// record of this batch is still in flight when a retry starts.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()
	done := make(chan error, 1)
	cl := s.cl
	go func() { done <- cl.ProduceSync(ctx, records...).FirstErr() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cl.Close()
		s.cl = nil
		err = <-done
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%w (client closed to abandon records in doubt)", err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotAcknowledged, err)
	}
	return nil
}

// attachEvidence puts each group's evidence on the group's first record.
// A batch whose evidence cannot be cut goes without (logged), as a batch
// the ledger could not prove does: delivery is never held up by it.
func (s *Sink) attachEvidence(b stream.Batch, records []*kgo.Record) {
	byKey := map[string][]int{}
	var keys []string
	for i, r := range records {
		k := string(r.Key)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	groups := make([][]int, len(keys))
	for i, k := range keys {
		groups[i] = byKey[k]
	}
	runs, evs, err := stream.EvidenceRuns(b, groups, maxEvidenceBytes)
	if err != nil {
		slog.Warn("kafka: batch sent without tamper evidence", "connector", b.ConnectorID, "err", err)
		return
	}
	for j, run := range runs {
		r := records[run[0]]
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderEvidence, Value: evs[j]})
	}
}

// Close flushes nothing (Write already waited) and releases the client.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	return nil
}

// slogWriter routes franz-go's log lines to slog.
type slogWriter struct{}

func (slogWriter) Write(p []byte) (int, error) {
	slog.Warn("kafka: client", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
