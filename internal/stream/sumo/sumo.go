// Package sumo delivers batches to a Sumo Logic HTTP source.
//
// Each batch is one POST (or more, to keep each under 1 MB as Sumo Logic
// recommends) to the source URL, whose body is NDJSON: one record per line,
// in ingest order, each with its stable "id". The optional headers
// X-Sumo-Category, X-Sumo-Name and X-Sumo-Host override the source's
// metadata. The source URL embeds the collector's secret token, so it is
// redacted entirely after creation and never appears in errors.
//
// With the server's ledger on, the lines of each batch's events are
// followed by one line {"evidence":{…}} holding the batch's tamper
// evidence (docs/tamper-evidence.md). Sumo Logic splits a message over
// 64 KB, so evidence over MaxEvidenceBytes is split into parts, each line
// after the events it proves.
package sumo

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
)

// MaxRequestBytes keeps one request within Sumo Logic's recommended size.
const MaxRequestBytes = 1 << 20

// MaxEvidenceBytes keeps an evidence line under Sumo Logic's 64 KB message
// size, past which it would be split into several messages.
const MaxEvidenceBytes = 60000

// Config of a "sumo" connector.
type Config struct {
	URL      string `json:"url"`
	Category string `json:"category,omitempty"`
	Name     string `json:"name,omitempty"`
	Host     string `json:"host,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

type Sink struct {
	cfg    Config
	client *http.Client
	header http.Header
}

var _ stream.Sink = (*Sink)(nil)

// New is the stream.Factory of "sumo".
func New(config json.RawMessage) (stream.Sink, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, stream.Invalid("config", "must be a Sumo Logic config object: "+err.Error())
	}
	if _, err := httpsink.CheckURL("url", cfg.URL); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-ndjson")
	for k, v := range map[string]string{"X-Sumo-Category": cfg.Category, "X-Sumo-Name": cfg.Name, "X-Sumo-Host": cfg.Host} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return &Sink{cfg: cfg, client: httpsink.NewClient(cfg.Insecure), header: h}, nil
}

// Redact keeps only the scheme and host of the source URL.
func Redact(config json.RawMessage) json.RawMessage {
	var m map[string]any
	if err := json.Unmarshal(config, &m); err != nil {
		return json.RawMessage(`"` + stream.Redacted + `"`)
	}
	if s, ok := m["url"].(string); ok {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			m["url"] = u.Scheme + "://" + u.Host + "/" + stream.Redacted
		} else {
			m["url"] = stream.Redacted
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(`"` + stream.Redacted + `"`)
	}
	return out
}

func Destination() stream.Destination { return stream.Destination{New: New, Redact: Redact} }

func (s *Sink) Connect(context.Context) error { return nil }

func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	var body bytes.Buffer
	add := func(line []byte) error {
		if body.Len() > 0 && body.Len()+len(line)+1 > MaxRequestBytes {
			if _, err := httpsink.Post(ctx, s.client, s.cfg.URL, s.header, body.Bytes()); err != nil {
				return err
			}
			body.Reset()
		}
		body.Write(line)
		body.WriteByte('\n')
		return nil
	}
	parts, err := stream.EvidenceParts(b, MaxEvidenceBytes-len(`{"evidence":}`))
	if err != nil {
		// Deliver the events all the same: the receiver sees them unproven.
		slog.Warn("sumo: batch sent without its tamper evidence", "connector", b.ConnectorID, "err", err)
	}
	next := 0 // the first event of the next part
	for i := range b.Events {
		line, err := httpsink.Marshal(b.Events[i])
		if err != nil {
			return err
		}
		if err := add(line); err != nil {
			return err
		}
		if len(parts) > 0 && i+1 == next+parts[0].Events {
			line, err := httpsink.Marshal(struct {
				Evidence json.RawMessage `json:"evidence"`
			}{parts[0].JSON})
			if err != nil {
				return err
			}
			if err := add(line); err != nil {
				return err
			}
			next, parts = i+1, parts[1:]
		}
	}
	if body.Len() == 0 {
		return nil
	}
	_, err = httpsink.Post(ctx, s.client, s.cfg.URL, s.header, body.Bytes())
	return err
}

func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
