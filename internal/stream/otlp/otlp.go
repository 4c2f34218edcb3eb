// Package otlp streams the trail to an OpenTelemetry collector (or any
// OTLP/HTTP logs endpoint) as log records: one ExportLogsServiceRequest
// per batch, POSTed to /v1/logs in the OTLP/JSON encoding, gzip-compressed
// by default.
//
// Each event becomes a LogRecord with the event time as timeUnixNano, the
// severity from its type (info→INFO 9, warn→WARN 13, error→ERROR 17), the
// event JSON as body (a string, or a map with body "structured") and
// audit.* attributes for the fields backends filter on. The batch is in
// ingest order within one resource and scope.
//
// The encoding is written with the standard library: OTLP/JSON is part of
// the OTLP specification (every OTLP/HTTP server must accept it), and the
// tests check it against the OpenTelemetry Collector's own OTLP receiver,
// so production code carries no protobuf or gRPC dependency.
//
// With the server's ledger on, each batch's records are followed by one
// record whose body is the batch's tamper evidence as a JSON string
// (docs/tamper-evidence.md), with the attribute audit.evidence = true,
// severity INFO and the time it was sent. Evidence over MaxEvidenceBytes
// is split into parts, each after the records it proves, to stay within
// what log backends keep of one record.
//
// A 2xx answer is the collector's acknowledgement. One that reports a
// partial success (rejectedLogRecords > 0) is not: Write fails, since
// nothing says which records were dropped.
package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
)

// ErrPartialSuccess: the collector answered 2xx but rejected some records.
var ErrPartialSuccess = errors.New("otlp: collector rejected part of the batch")

// Scope names the instrumentation scope of every record.
const Scope = "audittrail.stream"

// Attribute keys set on each record.
const (
	AttrID        = "audit.id"
	AttrAction    = "audit.action"
	AttrType      = "audit.type"
	AttrLevel     = "audit.level"
	AttrProjectID = "audit.project_id"
	AttrUserID    = "audit.user_id"
	AttrActorID   = "audit.actor_id"
	AttrMethod    = "audit.method"
	AttrDevice    = "audit.device"
	AttrGeo       = "audit.geo"
	AttrTenants   = "audit.tenants"
	AttrLoginIDs  = "audit.login_ids"
	// AttrClientAddress follows the OpenTelemetry semantic conventions.
	AttrClientAddress = "client.address"
	// AttrEvidence marks a record whose body is tamper evidence.
	AttrEvidence = "audit.evidence"
)

// MaxEvidenceBytes bounds the body of one evidence record.
const MaxEvidenceBytes = 64 << 10

var _ stream.Sink = (*Sink)(nil)

// Sink posts batches to one OTLP/HTTP logs endpoint.
type Sink struct {
	cfg    Config
	url    string
	header http.Header
	// resource is encoded once: it is the same for every batch.
	resource resource
	now      func() time.Time

	mu     sync.Mutex
	client *http.Client
}

// New validates cfg and returns a sink; Connect is not needed before the
// first Write.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, url: cfg.url(), header: http.Header{}, now: time.Now}
	for k, v := range cfg.Headers {
		s.header.Set(k, v)
	}
	s.header.Set("Content-Type", "application/json")
	if cfg.Compression == "gzip" {
		s.header.Set("Content-Encoding", "gzip")
	}
	s.resource.Attributes = append(s.resource.Attributes, stringAttr("service.name", cfg.ServiceName))
	for _, k := range slices.Sorted(maps.Keys(cfg.ResourceAttributes)) {
		s.resource.Attributes = append(s.resource.Attributes, stringAttr(k, cfg.ResourceAttributes[k]))
	}
	s.client = httpsink.NewClient(cfg.Insecure)
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

// Connect drops idle connections so the next Write dials afresh; OTLP/HTTP
// has no handshake worth checking beforehand (an empty export would be a
// request the collector counts).
func (s *Sink) Connect(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client.CloseIdleConnections()
	return nil
}

// Write posts the batch and returns nil once the collector accepted every
// record.
func (s *Sink) Write(ctx context.Context, b stream.Batch) error {
	if len(b.Events) == 0 {
		return nil
	}
	parts, err := stream.EvidenceParts(b, MaxEvidenceBytes)
	if err != nil {
		// Deliver the events all the same: the receiver sees them unproven.
		slog.Warn("otlp: batch sent without its tamper evidence", "connector", b.ConnectorID, "err", err)
	}
	body, err := s.encode(b.Events, parts)
	if err != nil {
		return err
	}
	if s.cfg.Compression == "gzip" {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("otlp: gzip: %w", err)
		}
		body = buf.Bytes()
	}
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	reply, err := httpsink.Post(ctx, client, s.url, s.header, body)
	if err != nil {
		return fmt.Errorf("otlp: export: %w", err)
	}
	return checkPartialSuccess(reply)
}

// checkPartialSuccess reads an ExportLogsServiceResponse; an empty or
// non-JSON reply (some gateways answer nothing) counts as full success.
func checkPartialSuccess(reply []byte) error {
	var resp struct {
		PartialSuccess struct {
			RejectedLogRecords json.RawMessage `json:"rejectedLogRecords"`
			ErrorMessage       string          `json:"errorMessage"`
		} `json:"partialSuccess"`
	}
	if len(bytes.TrimSpace(reply)) == 0 || json.Unmarshal(reply, &resp) != nil {
		return nil
	}
	rejected, _ := strconv.ParseInt(strings.Trim(string(resp.PartialSuccess.RejectedLogRecords), `"`), 10, 64)
	if rejected > 0 {
		return fmt.Errorf("%w: %d records: %s", ErrPartialSuccess, rejected, resp.PartialSuccess.ErrorMessage)
	}
	return nil
}

// Close drops idle connections.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client.CloseIdleConnections()
	return nil
}

// Severity numbers and texts of the OTLP logs data model.
func Severity(eventType string) (number int, text string) {
	switch eventType {
	case event.TypeError:
		return 17, "ERROR"
	case event.TypeWarn:
		return 13, "WARN"
	default:
		return 9, "INFO"
	}
}

// Encode renders events as an OTLP/JSON ExportLogsServiceRequest.
func (s *Sink) Encode(events []event.Event) ([]byte, error) { return s.encode(events, nil) }

// encode renders events, each evidence part after the events it proves.
func (s *Sink) encode(events []event.Event, parts []stream.EvidencePart) ([]byte, error) {
	now := s.now().UnixNano()
	observed := strconv.FormatInt(now, 10)
	records := make([]logRecord, 0, len(events)+len(parts))
	next := 0 // the first event of the next part
	for i := range events {
		e := &events[i]
		raw, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("otlp: encode event %s: %w", e.ID, err)
		}
		num, text := Severity(e.Type)
		r := logRecord{
			TimeUnixNano:         strconv.FormatInt(e.Occurred*int64(time.Millisecond), 10),
			ObservedTimeUnixNano: observed,
			SeverityNumber:       num,
			SeverityText:         text,
			Attributes:           attributes(e),
		}
		if s.cfg.Body == BodyStructured {
			r.Body, err = structured(raw)
			if err != nil {
				return nil, fmt.Errorf("otlp: event %s: %w", e.ID, err)
			}
		} else {
			str := string(raw)
			r.Body = anyValue{StringValue: &str}
		}
		records = append(records, r)
		if len(parts) > 0 && i+1 == next+parts[0].Events {
			body, yes := string(parts[0].JSON), true
			records = append(records, logRecord{TimeUnixNano: observed, ObservedTimeUnixNano: observed, SeverityNumber: 9, SeverityText: "INFO",
				Body: anyValue{StringValue: &body}, Attributes: []keyValue{{Key: AttrEvidence, Value: anyValue{BoolValue: &yes}}}})
			next, parts = i+1, parts[1:]
		}
	}
	req := exportRequest{ResourceLogs: []resourceLogs{{
		Resource:  s.resource,
		ScopeLogs: []scopeLogs{{Scope: scope{Name: Scope}, LogRecords: records}},
	}}}
	return json.Marshal(req)
}

func attributes(e *event.Event) []keyValue {
	attrs := []keyValue{
		stringAttr(AttrID, e.ID),
		stringAttr(AttrAction, e.Action),
		stringAttr(AttrType, e.Type),
		stringAttr(AttrLevel, string(e.Level)),
	}
	for _, a := range [...]struct{ key, value string }{
		{AttrProjectID, e.ProjectID}, {AttrUserID, e.UserID}, {AttrActorID, e.ActorID},
		{AttrMethod, e.Method}, {AttrDevice, e.Device}, {AttrGeo, e.Geo}, {AttrClientAddress, e.RemoteAddress},
	} {
		if a.value != "" {
			attrs = append(attrs, stringAttr(a.key, a.value))
		}
	}
	for _, a := range [...]struct {
		key    string
		values []string
	}{{AttrTenants, e.Tenants}, {AttrLoginIDs, e.LoginIDs}} {
		if len(a.values) == 0 {
			continue
		}
		arr := &arrayValue{Values: make([]anyValue, len(a.values))}
		for i := range a.values {
			arr.Values[i] = anyValue{StringValue: &a.values[i]}
		}
		attrs = append(attrs, keyValue{Key: a.key, Value: anyValue{ArrayValue: arr}})
	}
	return attrs
}

// OTLP/JSON: the protobuf JSON mapping with lowerCamelCase names, enums as
// numbers and 64-bit integers as decimal strings.
type (
	exportRequest struct {
		ResourceLogs []resourceLogs `json:"resourceLogs"`
	}
	resourceLogs struct {
		Resource  resource    `json:"resource"`
		ScopeLogs []scopeLogs `json:"scopeLogs"`
	}
	resource struct {
		Attributes []keyValue `json:"attributes"`
	}
	scopeLogs struct {
		Scope      scope       `json:"scope"`
		LogRecords []logRecord `json:"logRecords"`
	}
	scope struct {
		Name string `json:"name"`
	}
	logRecord struct {
		TimeUnixNano         string     `json:"timeUnixNano"`
		ObservedTimeUnixNano string     `json:"observedTimeUnixNano"`
		SeverityNumber       int        `json:"severityNumber"`
		SeverityText         string     `json:"severityText"`
		Body                 anyValue   `json:"body"`
		Attributes           []keyValue `json:"attributes"`
	}
	keyValue struct {
		Key   string   `json:"key"`
		Value anyValue `json:"value"`
	}
	// anyValue sets exactly one field; none set is the empty value (null).
	anyValue struct {
		StringValue *string      `json:"stringValue,omitempty"`
		BoolValue   *bool        `json:"boolValue,omitempty"`
		IntValue    *string      `json:"intValue,omitempty"`
		DoubleValue *float64     `json:"doubleValue,omitempty"`
		ArrayValue  *arrayValue  `json:"arrayValue,omitempty"`
		KvlistValue *kvlistValue `json:"kvlistValue,omitempty"`
	}
	arrayValue struct {
		Values []anyValue `json:"values"`
	}
	kvlistValue struct {
		Values []keyValue `json:"values"`
	}
)

func stringAttr(key, value string) keyValue {
	return keyValue{Key: key, Value: anyValue{StringValue: &value}}
}

// structured converts a JSON document to an OTLP value, keeping the order
// of object keys.
func structured(doc []byte) (anyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	return decodeValue(dec)
}

func decodeValue(dec *json.Decoder) (anyValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return anyValue{}, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			kv := &kvlistValue{Values: []keyValue{}}
			for dec.More() {
				keyTok, err := dec.Token()
				if err != nil {
					return anyValue{}, err
				}
				val, err := decodeValue(dec)
				if err != nil {
					return anyValue{}, err
				}
				kv.Values = append(kv.Values, keyValue{Key: keyTok.(string), Value: val})
			}
			_, err := dec.Token() // '}'
			return anyValue{KvlistValue: kv}, err
		case '[':
			arr := &arrayValue{Values: []anyValue{}}
			for dec.More() {
				val, err := decodeValue(dec)
				if err != nil {
					return anyValue{}, err
				}
				arr.Values = append(arr.Values, val)
			}
			_, err := dec.Token() // ']'
			return anyValue{ArrayValue: arr}, err
		}
		return anyValue{}, fmt.Errorf("unexpected %v", v)
	case string:
		return anyValue{StringValue: &v}, nil
	case bool:
		return anyValue{BoolValue: &v}, nil
	case json.Number:
		if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			s := string(v)
			return anyValue{IntValue: &s}, nil
		}
		f, err := v.Float64()
		if err != nil {
			return anyValue{}, err
		}
		return anyValue{DoubleValue: &f}, nil
	default: // null
		return anyValue{}, nil
	}
}
