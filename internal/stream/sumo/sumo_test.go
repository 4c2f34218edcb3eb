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
	"github.com/audittrail/audittrail/internal/stream/sumo"
)

const token = "ZaVnC4dhaV2bzKDAHRYgZvXbMnVU5gkoAg=="

func decodeNDJSON(r *http.Request, body []byte) ([]string, error) {
	if r.URL.Path != "/receiver/v1/http/"+token {
		return nil, fmt.Errorf("path %s", r.URL.Path)
	}
	if r.Header.Get("X-Sumo-Category") != "prod/audit" || r.Header.Get("X-Sumo-Name") != "audittrail" || r.Header.Get("X-Sumo-Host") != "at-1" {
		return nil, fmt.Errorf("headers %v", r.Header)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line is not one JSON record: %q", sc.Text())
		}
		ids = append(ids, rec["id"].(string))
	}
	if !bytes.HasSuffix(body, []byte("\n")) {
		return nil, fmt.Errorf("body does not end with a newline")
	}
	return ids, nil
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
