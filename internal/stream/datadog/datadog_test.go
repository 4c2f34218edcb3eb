package datadog_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/datadog"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

func decodeLogs(r *http.Request, body []byte) ([]string, error) {
	ids, _, err := decodeRecords(r, body)
	return ids, err
}

// intake keeps the entries the fake intake took.
type intake struct{ e2e.LogStore }

func (s *intake) decode(r *http.Request, body []byte) ([]string, error) {
	ids, recs, err := decodeRecords(r, body)
	if err == nil {
		s.Add(recs...)
	}
	return ids, err
}

// decodeRecords is decodeLogs that also returns each entry's message: a
// record, or (an entry marked "evidence":true) the evidence of the entries
// before it.
func decodeRecords(r *http.Request, body []byte) ([]string, []e2e.LogRecord, error) {
	var recs []e2e.LogRecord
	if r.URL.Path != "/api/v2/logs" {
		return nil, nil, fmt.Errorf("path %s", r.URL.Path)
	}
	if r.Header.Get("DD-API-KEY") != "dd-key" || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/json" {
		return nil, nil, fmt.Errorf("headers %v", r.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("body is not gzip: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, nil, err
	}
	var entries []map[string]any
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, nil, fmt.Errorf("body is not a JSON array: %w", err)
	}
	if len(entries) > datadog.MaxEntries {
		return nil, nil, errors.New("more than 1000 entries")
	}
	var ids []string
	// Datadog's log statuses for the event types.
	statusOf := map[any]string{"info": "info", "warn": "warn", "error": "error"}
	for _, e := range entries {
		if e["ddsource"] != "audittrail" || e["service"] != "audit-svc" || e["ddtags"] != "env:test" || e["hostname"] != "h1" {
			return nil, nil, fmt.Errorf("entry attributes: %v", e)
		}
		if e["evidence"] == true {
			msg, _ := e["message"].(string)
			if _, hasID := e["id"]; hasID || e["status"] != "info" || len(msg) > datadog.MaxEvidenceBytes || !json.Valid([]byte(msg)) {
				return nil, nil, fmt.Errorf("evidence entry: %.200v", e)
			}
			recs = append(recs, e2e.LogRecord{Evidence: json.RawMessage(msg)})
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(e["message"].(string)), &rec); err != nil {
			return nil, nil, fmt.Errorf("message is not the JSON record: %w", err)
		}
		if e["status"] != statusOf[rec["type"]] {
			return nil, nil, fmt.Errorf("status %v for an event of type %v", e["status"], rec["type"])
		}
		if rec["id"] != e["id"] || rec["occurred"] != strconv.FormatInt(int64(e["date"].(float64)), 10) {
			return nil, nil, fmt.Errorf("entry %v does not match its record %v", e, rec)
		}
		ids = append(ids, rec["id"].(string))
		recs = append(recs, e2e.LogRecord{Event: json.RawMessage(e["message"].(string))})
	}
	return ids, recs, nil
}

func TestDatadogEndToEnd(t *testing.T) {
	rv := &streamtest.Receiver{Decode: decodeLogs, Status: http.StatusAccepted}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	cfg := fmt.Sprintf(`{"apiKey":"dd-key","url":%q,"service":"audit-svc","ddtags":"env:test","hostname":"h1"}`, srv.URL)
	streamtest.Exercise(t, "datadog", datadog.Destination(), json.RawMessage(cfg), rv)
}

func TestDatadogSplitsAtEntryLimit(t *testing.T) {
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, _ := gzip.NewReader(r.Body)
		var entries []json.RawMessage
		json.NewDecoder(zr).Decode(&entries)
		sizes = append(sizes, len(entries))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	s, err := datadog.New(json.RawMessage(fmt.Sprintf(`{"apiKey":"k","url":%q}`, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), stream.Batch{Events: streamtest.Events("C1", "P1", "x", 2500)}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("payload sizes %v", sizes)
	}
}

func TestDatadogSites(t *testing.T) {
	if _, err := datadog.New(json.RawMessage(`{"apiKey":"k","site":"example.com"}`)); err == nil {
		t.Fatal("unknown site accepted")
	}
	if got := datadog.IntakeURL("datadoghq.eu"); got != "https://http-intake.logs.datadoghq.eu/api/v2/logs" {
		t.Fatal(got)
	}
	var fe *stream.FieldError
	if _, err := datadog.New(json.RawMessage(`{"site":"datadoghq.eu"}`)); !errors.As(err, &fe) || fe.Field != "apiKey" {
		t.Fatalf("missing key: %v", err)
	}
}
