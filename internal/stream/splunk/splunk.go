// Package splunk delivers batches to a Splunk HTTP Event Collector.
//
// Each batch is one POST to <url>/services/collector/event with
// "Authorization: Splunk <token>" and a body of concatenated event
// envelopes, one per audit event, in ingest order:
//
//	{"time":1732540000.123,"host":"…","source":"audittrail","sourcetype":"audittrail:audit","index":"…","event":{<record>}}
//
// time is the event's occurred time in epoch seconds with millisecond
// fraction; the record carries the stable "id" receivers dedupe by. The
// collector acknowledges with {"text":"Success","code":0}.
//
// With the server's ledger on, the events of each batch are followed by
// an envelope of sourcetype "audittrail:evidence" (evidenceSourcetype)
// whose event is the batch's tamper evidence (docs/tamper-evidence.md),
// time the moment it was sent. Splunk cuts an event at TRUNCATE bytes
// (10,000 by default), so evidence larger than evidenceMaxBytes (default
// 10,000) is split: each part follows the events it proves.
package splunk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
)

// Path is the HEC endpoint for JSON event envelopes.
const Path = "/services/collector/event"

// Config of a "splunk" connector.
type Config struct {
	// URL is the collector's base URL (https://splunk.example.com:8088) or
	// the full endpoint URL.
	URL        string `json:"url"`
	Token      string `json:"token"`
	Index      string `json:"index,omitempty"`
	Source     string `json:"source,omitempty"`     // default "audittrail"
	SourceType string `json:"sourcetype,omitempty"` // default "audittrail:audit"
	Host       string `json:"host,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
	// EvidenceSourceType names the envelopes of tamper evidence; default
	// "audittrail:evidence".
	EvidenceSourceType string `json:"evidenceSourcetype,omitempty"`
	// EvidenceMaxBytes bounds one evidence event; raise it with the
	// sourcetype's TRUNCATE. Default 10000.
	EvidenceMaxBytes int `json:"evidenceMaxBytes,omitempty"`
}

// Defaults of the evidence envelopes.
const (
	DefaultEvidenceSourceType = "audittrail:evidence"
	DefaultEvidenceMaxBytes   = 10000
)

type Sink struct {
	cfg      Config
	endpoint string
	client   *http.Client
	header   http.Header
}

var _ stream.Sink = (*Sink)(nil)

// New is the stream.Factory of "splunk".
func New(config json.RawMessage) (stream.Sink, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, stream.Invalid("config", "must be a Splunk HEC config object: "+err.Error())
	}
	u, err := httpsink.CheckURL("url", cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, stream.Invalid("token", "is required")
	}
	if cfg.Source == "" {
		cfg.Source = "audittrail"
	}
	if cfg.SourceType == "" {
		cfg.SourceType = "audittrail:audit"
	}
	if cfg.EvidenceSourceType == "" {
		cfg.EvidenceSourceType = DefaultEvidenceSourceType
	}
	if cfg.EvidenceMaxBytes == 0 {
		cfg.EvidenceMaxBytes = DefaultEvidenceMaxBytes
	}
	if cfg.EvidenceMaxBytes < 1000 {
		return nil, stream.Invalid("evidenceMaxBytes", "must be at least 1000")
	}
	if p := strings.TrimSuffix(u.Path, "/"); p == "" {
		u.Path = Path
	}
	h := http.Header{}
	h.Set("Authorization", "Splunk "+cfg.Token)
	h.Set("Content-Type", "application/json")
	return &Sink{cfg: cfg, endpoint: u.String(), client: httpsink.NewClient(cfg.Insecure), header: h}, nil
}

// Redact hides the HEC token.
func Redact(config json.RawMessage) json.RawMessage { return stream.RedactKeys(config, "token") }

func Destination() stream.Destination { return stream.Destination{New: New, Redact: Redact} }

func (s *Sink) Connect(context.Context) error { return nil }

type envelope struct {
	Time       json.Number `json:"time"`
	Host       string      `json:"host,omitempty"`
	Source     string      `json:"source"`
	SourceType string      `json:"sourcetype"`
	Index      string      `json:"index,omitempty"`
	Event      event.Event `json:"event"`
}

type evidenceEnvelope struct {
	Time       json.Number     `json:"time"`
	Host       string          `json:"host,omitempty"`
	Source     string          `json:"source"`
	SourceType string          `json:"sourcetype"`
	Index      string          `json:"index,omitempty"`
	Event      json.RawMessage `json:"event"`
}

// Seconds formats epoch milliseconds as seconds with a millisecond fraction.
func Seconds(ms int64) json.Number {
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return json.Number(fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000))
}

func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	var body bytes.Buffer
	parts, err := stream.EvidenceParts(b, s.cfg.EvidenceMaxBytes)
	if err != nil {
		// Deliver the events all the same: the receiver sees them unproven.
		slog.Warn("splunk: batch sent without its tamper evidence", "connector", b.ConnectorID, "err", err)
	}
	next := 0 // the first event of the next part
	for i := range b.Events {
		env, err := httpsink.Marshal(envelope{
			Time: Seconds(b.Events[i].Occurred), Host: s.cfg.Host, Source: s.cfg.Source,
			SourceType: s.cfg.SourceType, Index: s.cfg.Index, Event: b.Events[i],
		})
		if err != nil {
			return err
		}
		body.Write(env)
		body.WriteByte('\n')
		if len(parts) > 0 && i+1 == next+parts[0].Events {
			env, err := httpsink.Marshal(evidenceEnvelope{
				Time: Seconds(time.Now().UnixMilli()), Host: s.cfg.Host, Source: s.cfg.Source,
				SourceType: s.cfg.EvidenceSourceType, Index: s.cfg.Index, Event: parts[0].JSON,
			})
			if err != nil {
				return err
			}
			body.Write(env)
			body.WriteByte('\n')
			next, parts = i+1, parts[1:]
		}
	}
	reply, err := httpsink.Post(ctx, s.client, s.endpoint, s.header, body.Bytes())
	if err != nil {
		return err
	}
	var ack struct {
		Code *int   `json:"code"`
		Text string `json:"text"`
	}
	if json.Unmarshal(reply, &ack) == nil && ack.Code != nil && *ack.Code != 0 {
		return fmt.Errorf("%w: HEC code %d: %s", httpsink.ErrRefused, *ack.Code, ack.Text)
	}
	return nil
}

func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
