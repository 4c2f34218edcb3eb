package sumo_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/stream/streamtest"
	"github.com/audittrail/audittrail/internal/stream/streamtest/e2e"
	"github.com/audittrail/audittrail/internal/stream/sumo"
)

const token = "ZaVnC4dhaV2bzKDAHRYgZvXbMnVU5gkoAg=="

func decodeNDJSON(r *http.Request, body []byte) ([]string, error) {
	ids, _, err := decodeRecords(r, body)
	return ids, err
}

// sumoStore keeps the lines the source took.
type sumoStore struct{ e2e.LogStore }

func (s *sumoStore) decode(r *http.Request, body []byte) ([]string, error) {
	ids, recs, err := decodeRecords(r, body)
	if err == nil {
		s.Add(recs...)
	}
	return ids, err
}

// decodeRecords is decodeNDJSON that also returns each line: a record, or
// {"evidence":…} proving the lines before it.
func decodeRecords(r *http.Request, body []byte) ([]string, []e2e.LogRecord, error) {
	var recs []e2e.LogRecord
	if r.URL.Path != "/receiver/v1/http/"+token {
		return nil, nil, fmt.Errorf("path %s", r.URL.Path)
	}
	if r.Header.Get("X-Sumo-Category") != "prod/audit" || r.Header.Get("X-Sumo-Name") != "audittrail" || r.Header.Get("X-Sumo-Host") != "at-1" {
		return nil, nil, fmt.Errorf("headers %v", r.Header)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, nil, fmt.Errorf("line is not one JSON record: %q", sc.Text())
		}
		if ev, ok := rec["evidence"]; ok && len(rec) == 1 {
			if len(sc.Bytes()) > sumo.MaxEvidenceBytes {
				return nil, nil, fmt.Errorf("evidence line of %d bytes", len(sc.Bytes()))
			}
			recs = append(recs, e2e.LogRecord{Evidence: ev})
			continue
		}
		var id string
		if err := json.Unmarshal(rec["id"], &id); err != nil || id == "" {
			return nil, nil, fmt.Errorf("line without an id: %q", sc.Text())
		}
		ids = append(ids, id)
		recs = append(recs, e2e.LogRecord{Event: bytes.Clone(sc.Bytes())})
	}
	if !bytes.HasSuffix(body, []byte("\n")) {
		return nil, nil, fmt.Errorf("body does not end with a newline")
	}
	return ids, recs, nil
}

func TestSumoEndToEnd(t *testing.T) {
	rv := &streamtest.Receiver{Decode: decodeNDJSON}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	cfg := fmt.Sprintf(`{"url":%q,"category":"prod/audit","name":"audittrail","host":"at-1"}`, srv.URL+"/receiver/v1/http/"+token)
	streamtest.Exercise(t, "sumo", sumo.Destination(), json.RawMessage(cfg), rv)
}

func TestSumoRedactsSourceURL(t *testing.T) {
	out := string(sumo.Redact(json.RawMessage(`{"url":"https://endpoint4.collection.sumologic.com/receiver/v1/http/` + token + `","category":"c"}`)))
	if strings.Contains(out, token) || !strings.Contains(out, "endpoint4.collection.sumologic.com") || !strings.Contains(out, `"category":"c"`) {
		t.Fatal(out)
	}
}
