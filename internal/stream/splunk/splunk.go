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
package splunk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

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
}

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
