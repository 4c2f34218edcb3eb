// Package datadog delivers batches to the Datadog Logs intake (HTTP API v2).
//
// Each batch is one or more POSTs to https://http-intake.logs.<site>/api/v2/logs
// with the headers DD-API-KEY, Content-Type: application/json and
// Content-Encoding: gzip, and a gzipped JSON array of log entries:
//
//	[{"ddsource":"audittrail","service":"audittrail","ddtags":"…","hostname":"…",
//	  "status":"info","date":1732540000123,"id":"<event id>","message":"<record JSON>"}]
//
// message is the record as JSON text, which Datadog parses into attributes.
// A payload holds at most 1000 entries and 5 MB before compression, the
// intake's limits; a bigger batch is split and sent in order. Datadog
// answers 202 once it has accepted the payload.
//
// With the server's ledger on, each batch's entries are followed by one
// entry whose message is the batch's tamper evidence
// (docs/tamper-evidence.md), marked "evidence":true, without an id, its
// date the moment it was sent. Datadog truncates a log over 1 MB, so
// evidence over MaxEvidenceBytes is split: each part follows the entries
// it proves.
package datadog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
)

// Sites are the Datadog sites an "site" may name.
var Sites = []string{"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com"}

// Intake limits of one payload.
const (
	MaxEntries      = 1000
	MaxPayloadBytes = 5 << 20
	// MaxEvidenceBytes keeps an evidence entry, its message escaped as a
	// JSON string, well under the intake's 1 MB per log.
	MaxEvidenceBytes = 512 << 10
)

// Config of a "datadog" connector.
type Config struct {
	APIKey string `json:"apiKey"`
	// Site selects the intake host; default "datadoghq.com".
	Site string `json:"site,omitempty"`
	// URL overrides the intake URL (a proxy, or a test receiver).
	URL      string `json:"url,omitempty"`
	Service  string `json:"service,omitempty"`  // default "audittrail"
	Source   string `json:"ddsource,omitempty"` // default "audittrail"
	Tags     string `json:"ddtags,omitempty"`   // "env:prod,team:sec"
	Hostname string `json:"hostname,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

type Sink struct {
	cfg      Config
	endpoint string
	client   *http.Client
	header   http.Header
}

var _ stream.Sink = (*Sink)(nil)

// IntakeURL returns the logs intake endpoint of a site.
func IntakeURL(site string) string { return "https://http-intake.logs." + site + "/api/v2/logs" }

// New is the stream.Factory of "datadog".
func New(config json.RawMessage) (stream.Sink, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, stream.Invalid("config", "must be a Datadog config object: "+err.Error())
	}
	if cfg.APIKey == "" {
		return nil, stream.Invalid("apiKey", "is required")
	}
	if cfg.Site == "" {
		cfg.Site = "datadoghq.com"
	}
	if !slices.Contains(Sites, cfg.Site) {
		return nil, stream.Invalid("site", "must be one of "+strings.Join(Sites, ", "))
	}
	endpoint := IntakeURL(cfg.Site)
	if cfg.URL != "" {
		u, err := httpsink.CheckURL("url", cfg.URL)
		if err != nil {
			return nil, err
		}
		if strings.TrimSuffix(u.Path, "/") == "" {
			u.Path = "/api/v2/logs"
		}
		endpoint = u.String()
	}
	if cfg.Service == "" {
		cfg.Service = "audittrail"
	}
	if cfg.Source == "" {
		cfg.Source = "audittrail"
	}
	h := http.Header{}
	h.Set("DD-API-KEY", cfg.APIKey)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", "gzip")
	return &Sink{cfg: cfg, endpoint: endpoint, client: httpsink.NewClient(cfg.Insecure), header: h}, nil
}

// Redact hides the API key.
func Redact(config json.RawMessage) json.RawMessage { return stream.RedactKeys(config, "apikey") }

func Destination() stream.Destination { return stream.Destination{New: New, Redact: Redact} }

func (s *Sink) Connect(context.Context) error { return nil }

type entry struct {
	Source   string `json:"ddsource"`
	Tags     string `json:"ddtags,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Service  string `json:"service"`
	Status   string `json:"status"`
	Date     int64  `json:"date"`
	ID       string `json:"id,omitempty"`
	Message  string `json:"message"`
	Evidence bool   `json:"evidence,omitempty"`
}

// status maps an event type to a Datadog log status.
func status(typ string) string {
	switch typ {
	case event.TypeWarn:
		return "warn"
	case event.TypeError:
		return "error"
	}
	return "info"
}

func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	var chunk []json.RawMessage
	size := 2
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := s.post(ctx, chunk)
		chunk, size = chunk[:0], 2
		return err
	}
	add := func(e entry) error {
		line, err := httpsink.Marshal(e)
		if err != nil {
			return err
		}
		if len(chunk) == MaxEntries || (len(chunk) > 0 && size+len(line)+1 > MaxPayloadBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		chunk = append(chunk, line)
		size += len(line) + 1
		return nil
	}
	parts, err := stream.EvidenceParts(b, MaxEvidenceBytes)
	if err != nil {
		// Deliver the events all the same: the receiver sees them unproven.
		slog.Warn("datadog: batch sent without its tamper evidence", "connector", b.ConnectorID, "err", err)
	}
	next := 0 // the first event of the next part
	for i := range b.Events {
		rec, err := httpsink.Marshal(b.Events[i])
		if err != nil {
			return err
		}
		e := &b.Events[i]
		if err := add(entry{Source: s.cfg.Source, Tags: s.cfg.Tags, Hostname: s.cfg.Hostname, Service: s.cfg.Service,
			Status: status(e.Type), Date: e.Occurred, ID: e.ID, Message: string(rec)}); err != nil {
			return err
		}
		if len(parts) > 0 && i+1 == next+parts[0].Events {
			if err := add(entry{Source: s.cfg.Source, Tags: s.cfg.Tags, Hostname: s.cfg.Hostname, Service: s.cfg.Service,
				Status: "info", Date: time.Now().UnixMilli(), Message: string(parts[0].JSON), Evidence: true}); err != nil {
				return err
			}
			next, parts = i+1, parts[1:]
		}
	}
	return flush()
}

func (s *Sink) post(ctx context.Context, entries []json.RawMessage) error {
	var raw bytes.Buffer
	raw.WriteByte('[')
	for i, e := range entries {
		if i > 0 {
			raw.WriteByte(',')
		}
		raw.Write(e)
	}
	raw.WriteByte(']')
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	_, err := httpsink.Post(ctx, s.client, s.endpoint, s.header, gz.Bytes())
	return err
}

func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
