package splunk_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/audittrail/audittrail/internal/stream/splunk"
	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
)

// decodeHEC checks a request the way a HEC endpoint reads it: a stream of
// JSON envelopes with the documented keys.
func decodeHEC(r *http.Request, body []byte) ([]string, error) {
	ids, _, err := decodeHECRecords(r, body)
	return ids, err
}

// hecStore keeps what the collector indexed, in arrival order.
type hecStore struct {
	mu   sync.Mutex
	recs []e2e.LogRecord
}

func (h *hecStore) decode(r *http.Request, body []byte) ([]string, error) {
	ids, recs, err := decodeHECRecords(r, body)
	if err == nil {
		h.mu.Lock()
		h.recs = append(h.recs, recs...)
		h.mu.Unlock()
	}
	return ids, err
}

func (h *hecStore) records() []e2e.LogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]e2e.LogRecord(nil), h.recs...)
}

// decodeHECRecords is decodeHEC that also returns each envelope's event:
// an audit record, or the evidence of the events before it.
func decodeHECRecords(r *http.Request, body []byte) ([]string, []e2e.LogRecord, error) {
	var recs []e2e.LogRecord
	if r.URL.Path != "/services/collector/event" {
		return nil, nil, fmt.Errorf("path %s", r.URL.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Splunk hec-token" {
		return nil, nil, fmt.Errorf("Authorization = %q", got)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var ids []string
	for {
		var env map[string]any
		if err := dec.Decode(&env); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("envelope: %w", err)
		}
		for k := range env {
			switch k {
			case "time", "host", "source", "sourcetype", "index", "event", "fields":
			default:
				return nil, nil, fmt.Errorf("unknown envelope key %q", k)
			}
		}
		if env["sourcetype"] == splunk.DefaultEvidenceSourceType {
			if env["source"] != "audittrail" || env["index"] != "security" || env["host"] != "at-1" {
				return nil, nil, fmt.Errorf("evidence envelope metadata: %v", env)
			}
			ev, err := json.Marshal(env["event"])
			if err != nil || !bytes.HasPrefix(ev, []byte(`{"checkpoints":`)) {
				return nil, nil, fmt.Errorf("evidence envelope's event is not the evidence: %.100s", ev)
			}
			recs = append(recs, e2e.LogRecord{Evidence: ev})
			continue
		}
		if env["source"] != "audittrail" || env["sourcetype"] != "audittrail:audit" || env["index"] != "security" || env["host"] != "at-1" {
			return nil, nil, fmt.Errorf("envelope metadata: %v", env)
		}
		ev, ok := env["event"].(map[string]any)
		if !ok {
			return nil, nil, errors.New("event is not an object")
		}
		tn, ok := env["time"].(json.Number)
		if !ok {
			return nil, nil, errors.New("time is not a number")
		}
		secs, _ := tn.Float64()
		occ, _ := strconv.ParseInt(ev["occurred"].(string), 10, 64)
		if int64(secs*1000+0.5) != occ {
			return nil, nil, fmt.Errorf("time %s does not match occurred %d", tn, occ)
		}
		ids = append(ids, ev["id"].(string))
		raw, _ := json.Marshal(ev)
		recs = append(recs, e2e.LogRecord{Event: raw})
	}
	return ids, recs, nil
}

func TestSplunkEndToEnd(t *testing.T) {
	rv := &streamtest.Receiver{Decode: decodeHEC, Reply: `{"text":"Success","code":0}`}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	cfg := fmt.Sprintf(`{"url":%q,"token":"hec-token","index":"security","host":"at-1"}`, srv.URL)
	streamtest.Exercise(t, "splunk", splunk.Destination(), json.RawMessage(cfg), rv)
}

func TestSplunkSeconds(t *testing.T) {
	for ms, want := range map[int64]string{1732540000123: "1732540000.123", 5: "0.005", 1000: "1.000", -1500: "-1.500"} {
		if got := splunk.Seconds(ms); string(got) != want {
			t.Errorf("Seconds(%d) = %s, want %s", ms, got, want)
		}
	}
}

func TestSplunkNonZeroCodeIsFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"text":"Incorrect index","code":7}`)
	}))
	defer srv.Close()
	s, err := splunk.New(json.RawMessage(fmt.Sprintf(`{"url":%q,"token":"t"}`, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), batchOf(1)); err == nil {
		t.Fatal("HEC code 7 taken as success")
	}
	if _, err := splunk.New(json.RawMessage(`{"url":"https://x"}`)); err == nil {
		t.Fatal("config without token accepted")
	}
}
