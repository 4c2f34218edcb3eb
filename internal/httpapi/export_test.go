package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
)

// TestExportWalksEveryRecord ingests more than two pages of records, most
// of them in one millisecond, so the keyset walk must read that millisecond
// by offset; every record must come out exactly once, in order.
func TestExportWalksEveryRecord(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.admin()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	const spread, sameMs = 900, 1600
	var recs []client.Record
	for i := range spread {
		recs = append(recs, client.Record{ID: fmt.Sprintf("s%04d", i), Action: "X", ActorID: "a", Occurred: base.Add(time.Duration(i) * time.Millisecond)})
	}
	for i := range sameMs {
		recs = append(recs, client.Record{ID: fmt.Sprintf("m%04d", i), Action: "X", ActorID: "a", Occurred: base.Add(500 * time.Millisecond)})
	}
	if _, err := c.Audit().Ingest(ctx, recs); err != nil {
		t.Fatal(err)
	}
	total := spread + sameMs

	for _, oldestFirst := range []bool{false, true} {
		body := fmt.Sprintf(`{"actions":["X"],"oldestFirst":%v,"size":5,"page":3}`, oldestFirst)
		r := e.do("POST", "/v1/mgmt/audit/export?format=ndjson", e.auth(), "application/json", []byte(body))
		if r.status != 200 || r.header.Get("X-Total-Count") != strconv.Itoa(total) {
			t.Fatalf("export: %d total %q %.300s", r.status, r.header.Get("X-Total-Count"), r.body)
		}
		seen := map[string]bool{}
		var last int64
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct {
				ID       string `json:"id"`
				Occurred string `json:"occurred"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			if seen[rec.ID] {
				t.Fatalf("oldestFirst=%v: %s exported twice", oldestFirst, rec.ID)
			}
			seen[rec.ID] = true
			occ, _ := strconv.ParseInt(rec.Occurred, 10, 64)
			if n > 0 && ((!oldestFirst && occ > last) || (oldestFirst && occ < last)) {
				t.Fatalf("oldestFirst=%v: out of order at line %d", oldestFirst, n)
			}
			last = occ
			n++
		}
		if n != total {
			t.Fatalf("oldestFirst=%v: exported %d of %d", oldestFirst, n, total)
		}
	}

	r := e.do("POST", "/v1/mgmt/audit/export?format=csv", e.auth(), "application/json", []byte(`{"actions":["X"],"from":`+strconv.FormatInt(base.Add(800*time.Millisecond).UnixMilli(), 10)+`}`))
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || r.status != 200 {
		t.Fatalf("csv: %d %v", r.status, err)
	}
	if rows[0][0] != "id" || len(rows) != 1+100 || r.header.Get("X-Total-Count") != "100" {
		t.Fatalf("csv: %d rows, header %v, total %s", len(rows), rows[0], r.header.Get("X-Total-Count"))
	}

	// The client's export reads the same stream.
	var buf bytes.Buffer
	n, err := c.Audit().Export(ctx, client.ExportOptions{SearchOptions: client.SearchOptions{Actions: []string{"X"}}}, client.FormatNDJSON, &buf)
	if err != nil || n != int64(total) {
		t.Fatalf("client export: %d %v", n, err)
	}

	if r := e.do("POST", "/v1/mgmt/audit/export?format=xml", e.auth(), "application/json", []byte(`{}`)); r.status != 400 {
		t.Fatalf("bad format: %d", r.status)
	}
}

func TestExportCSVDefusesFormulas(t *testing.T) {
	e := newEnv(t)
	if r := e.post("/v1/mgmt/audit/event", `{"action":"=HYPERLINK(\"http://x\")","actorId":"a","tenantId":"t","type":"info"}`); r.status != 200 {
		t.Fatal(r.status)
	}
	r := e.do("POST", "/v1/mgmt/audit/export?format=csv", e.auth(), "application/json", []byte(`{}`))
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][5] != `'=HYPERLINK("http://x")` {
		t.Fatalf("%v %q", err, rows)
	}
}
