package httpapi

import (
	"log/slog"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// The fuzz targets check that no request body makes a decoder panic, and
// that whatever a decoder accepts is something the store may be given.
// Seeds live in testdata/fuzz/<target>; run one with
// go test ./internal/httpapi -run '^$' -fuzz FuzzDecodeSearch -fuzztime 1m

var fuzzNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fuzzEnricher runs enrichment inside the decoders too (no GeoIP database).
var fuzzEnricher, _ = enrich.New(enrich.Options{CountryHeader: "cf-ipcountry", Logger: slog.New(slog.DiscardHandler)})

func FuzzDecodeSearch(f *testing.F) {
	f.Add([]byte(`{"userIds":null,"actions":["LoginFailed"],"from":-62135596800000,"to":0,"size":10,"page":2,"text":"john.doe chrome"}`))
	f.Add([]byte(`{"from":"1764000000000","to":"1764072000000","noTenants":true,"tenants":["t1"],"levels":["company"]}`))
	f.Add([]byte(`{"limit":1000,"batchSize":5,"externalIds":["a@b.c"],"loginIds":["x"],"oldestFirst":true}`))
	p := Principal{Key: tenancy.Key{ID: "K1", CompanyID: "C1"}, CompanyID: "C1", ProjectID: "P1"}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeSearchRequest(body)
		if err != nil {
			requireClientError(t, err)
			return
		}
		q, err := req.Resolve(p, tenancy.DefaultSettings(), fuzzNow)
		if err != nil {
			requireClientError(t, err)
			return
		}
		if q.Size < 1 || q.Size > 1000 || q.Page < 0 || q.Offset() > 1_000_000 || q.CompanyID != "C1" ||
			(!q.IncludeProject && !q.IncludeCompany) || q.From <= 0 || (q.To > 0 && q.From > q.To) {
			t.Fatalf("accepted an unusable query: %+v", q)
		}
		if q.From < fuzzNow.Add(-30*24*time.Hour-searchWindowGrace).UnixMilli() {
			t.Fatalf("from %d is beyond the window", q.From)
		}
	})
}

func FuzzDecodeCreateEvent(f *testing.F) {
	f.Add([]byte(`{"userId":"u","action":"LoginSucceed","type":"info","actorId":"a","tenantId":"t","data":{"k":[1,"v"]}}`))
	f.Add([]byte(`{"action":"A","type":"warn","actorId":"a","tenantId":"t","level":"company","occurred":1764000000000,"id":"abc"}`))
	f.Add([]byte(`{"action":"A","type":"info","actorId":"a","tenantId":"t","requestContext":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (iPhone)","headers":{"cf-ipcountry":"IL","referer":"https://x"},"method":"POST","url":"https://app/login?token=s"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := DecodeCreateEvent(body, "P1", fuzzNow, fuzzEnricher)
		if err != nil {
			requireClientError(t, err)
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		if e.Action == "" || e.ActorID == "" || len(e.Tenants) == 0 {
			t.Fatalf("accepted an event without a required field: %+v", e)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"events":[{"action":"A"},{"id":"x","action":"B","type":"error","occurred":"1764000000000","externalIds":["l"],"tenants":["t"],"data":{}}]}`))
	f.Add([]byte(`{"events":[{"action":"A","level":"company"}]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":[{"action":"A","requestContext":{"ip":"::ffff:10.0.0.1","headers":{"user-agent":"Googlebot/2.1"}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := DecodeBatch(body, "P1", fuzzNow, fuzzEnricher)
		if err != nil {
			requireClientError(t, err)
			return
		}
		if len(events) > MaxBatchEvents {
			t.Fatalf("accepted %d events", len(events))
		}
		for i := range events {
			if err := events[i].Validate(); err != nil {
				t.Fatalf("accepted invalid event %d: %v", i, err)
			}
		}
	})
}

func FuzzDecodeAdmin(f *testing.F) {
	f.Add(uint8(0), []byte(`{"name":"billing"}`))
	f.Add(uint8(1), []byte(`{"name":"ci","role":"writer","projectIds":["P1"],"expiresInSeconds":3600}`))
	f.Add(uint8(2), []byte(`{"searchWindowDays":7,"retentionDays":90,"searchRateLimit":null}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		var err error
		switch which % 3 {
		case 0:
			var req CreateProjectRequest
			req, err = DecodeCreateProject(body)
			if err == nil && (req.Name == "" || len(req.Name) > maxNameLen) {
				t.Fatalf("accepted name %q", req.Name)
			}
		case 1:
			var req CreateKeyRequest
			req, err = DecodeCreateKey(body)
			if err == nil && !req.Role.Valid() {
				t.Fatalf("accepted role %q", req.Role)
			}
		case 2:
			var s tenancy.Settings
			s, _, err = DecodeSettingsPatch(body, tenancy.DefaultSettings())
			if err == nil {
				if verr := s.Validate(); verr != nil {
					t.Fatalf("accepted settings the directory refuses: %v", verr)
				}
			}
		}
		if err != nil {
			requireClientError(t, err)
		}
	})
}

// requireClientError fails unless err maps to a 4xx: a decoder must never
// report bad input as a server fault.
func requireClientError(t *testing.T, err error) {
	t.Helper()
	e := classify(err)
	if status := codeStatus[e.Code]; status < 400 || status >= 500 {
		t.Fatalf("bad input mapped to %s (%v)", e.Code, err)
	}
}
