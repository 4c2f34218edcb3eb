package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorded is one request as the fake server saw it.
type recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

// fakeServer answers with respond and records every request.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFake(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		f.mu.Unlock()
		respond(w, r, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeServer) client(t *testing.T, projectID string) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: f.URL, ProjectID: projectID, ManagementKey: "K123.secret"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// sameJSON fails unless got and want are the same JSON value (key order and
// spacing aside).
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("sent body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		base string
		err  bool
	}{
		{Config{}, "http://127.0.0.1:8080", false},
		{Config{BaseURL: "https://audit.example.com/prefix/"}, "https://audit.example.com/prefix", false},
		{Config{BaseURL: "ftp://x"}, "", true},
		{Config{BaseURL: "127.0.0.1:8080"}, "", true},
		{Config{BaseURL: "http://h", ProjectID: "P:1"}, "", true},
		{Config{BaseURL: "http://h", ManagementKey: "K1 .s"}, "", true},
	} {
		c, err := New(tc.cfg)
		if tc.err {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("New(%+v) = %v, want ErrConfig", tc.cfg, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(%+v): %v", tc.cfg, err)
		}
		if c.base.String() != tc.base {
			t.Errorf("base %q, want %q", c.base, tc.base)
		}
	}
}

func TestAuthorizationHeader(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, `{"audits":[],"total":0}`)
	})
	ctx := context.Background()
	if _, err := f.client(t, "P1").Audit().Search(ctx, SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client(t, "").Audit().Search(ctx, SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer P1:K123.secret" {
		t.Errorf("with project: Authorization %q", got)
	}
	if got := reqs[0].Header.Get("x-descope-project-id"); got != "P1" {
		t.Errorf("x-descope-project-id %q", got)
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer K123.secret" {
		t.Errorf("without project: Authorization %q", got)
	}
	if got := reqs[0].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if !strings.HasPrefix(reqs[0].Header.Get("User-Agent"), "audittrail-go/") {
		t.Errorf("User-Agent %q", reqs[0].Header.Get("User-Agent"))
	}
}

func TestBaseURLPrefixKept(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, `{"actions":[]}`)
	})
	c, err := New(Config{BaseURL: f.URL + "/audit/", ManagementKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Audit().Actions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := f.requests()[0].Path; p != "/audit/v1/mgmt/audit/actions" {
		t.Fatalf("path %q", p)
	}
}

func TestSearchWireFormat(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, `{"audits":[
		  {"id":"e1","projectId":"P1","level":"project","userId":"u1","action":"LoginSucceed","type":"info",
		   "actorId":"a1","occurred":"1732540000123","device":"Desktop","method":"otp","geo":"US",
		   "remoteAddress":"203.0.113.7","externalIds":["a@b.com"],"tenants":["t1"],"data":{"k":"v","n":2}},
		  {"projectId":"P1","action":"X","occurred":1732540000000,"externalIds":null,"tenants":null}
		 ],"total":1234}`)
	})
	c := f.client(t, "P1")
	from := time.UnixMilli(1732000000000)
	to := time.UnixMilli(1732500000999)
	recs, total, err := c.Audit().SearchAll(context.Background(), SearchOptions{
		UserIDs: []string{"u1"}, Actions: []string{"A", "B"}, ExcludedActions: []string{"C"},
		ActorIDs: []string{"a1"}, Devices: []string{"Bot"}, Methods: []string{"otp"}, Geos: []string{"US"},
		RemoteAddresses: []string{"1.2.3.4"}, LoginIDs: []string{"x@y.z"}, Tenants: []string{"t1"},
		NoTenants: true, Text: "john doe", From: from, To: to, Levels: []Level{LevelCompany},
		ChangedFields: []string{"phone"}, OldestFirst: true, Size: 50, Page: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if r.Method != "POST" || r.Path != "/v1/mgmt/audit/search" {
		t.Fatalf("%s %s", r.Method, r.Path)
	}
	sameJSON(t, r.Body, `{"userIds":["u1"],"actions":["A","B"],"excludedActions":["C"],"actorIds":["a1"],
	  "devices":["Bot"],"methods":["otp"],"geos":["US"],"remoteAddresses":["1.2.3.4"],"externalIds":["x@y.z"],
	  "tenants":["t1"],"noTenants":true,"text":"john doe","from":1732000000000,"to":1732500000999,
	  "levels":["company"],"changedFields":["phone"],"oldestFirst":true,"size":50,"page":2}`)
	if total != 1234 {
		t.Errorf("total %d", total)
	}
	want := Record{
		ID: "e1", ProjectID: "P1", Level: LevelProject, UserID: "u1", Action: "LoginSucceed", Type: "info",
		ActorID: "a1", Occurred: time.UnixMilli(1732540000123).UTC(), Device: "Desktop", Method: "otp",
		Geo: "US", RemoteAddress: "203.0.113.7", LoginIDs: []string{"a@b.com"}, Tenants: []string{"t1"},
		Data: map[string]any{"k": "v", "n": 2.0},
	}
	if !reflect.DeepEqual(recs[0], want) {
		t.Errorf("record\n got %+v\nwant %+v", recs[0], want)
	}
	if recs[1].OccurredMillis() != 1732540000000 || recs[1].LoginIDs != nil || recs[1].Tenants != nil {
		t.Errorf("numeric occurred / null lists: %+v", recs[1])
	}
}

func TestSearchEmptyOptionsSendEmptyObject(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, `{"audits":null,"total":0}`)
	})
	recs, err := f.client(t, "P").Audit().Search(context.Background(), SearchOptions{
		From: time.Unix(-5, 0), // before 1970: unset, never a negative bound
	})
	if err != nil {
		t.Fatal(err)
	}
	if recs == nil || len(recs) != 0 {
		t.Errorf("records %#v, want empty non-nil", recs)
	}
	sameJSON(t, f.requests()[0].Body, `{}`)
}

func TestErrorDecoding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		want     Error
		sentinel error
	}{
		{"descope body", 400, nil,
			`{"errorCode":"E011004","errorDescription":"Invalid argument","errorMessage":"from is beyond the 30 day search window"}`,
			Error{StatusCode: 400, ErrorCode: "E011004", Description: "Invalid argument", Message: "from is beyond the 30 day search window"},
			ErrBadRequest},
		{"rate limited", 429, map[string]string{"Retry-After": "7"},
			`{"errorCode":"E130429","errorDescription":"Rate limit exceeded","errorMessage":"10 searches a minute"}`,
			Error{StatusCode: 429, ErrorCode: "E130429", Description: "Rate limit exceeded", Message: "10 searches a minute", RetryAfter: 7 * time.Second},
			ErrRateLimited},
		{"unauthorized", 401, nil, `{"errorCode":"E011401","errorDescription":"Unauthorized","errorMessage":""}`,
			Error{StatusCode: 401, ErrorCode: "E011401", Description: "Unauthorized"}, ErrUnauthorized},
		{"proxy page", 502, nil, "<html>bad gateway</html>",
			Error{StatusCode: 502, Message: "<html>bad gateway</html>"}, nil},
		{"empty body", 503, map[string]string{"Retry-After": "soon"}, "",
			Error{StatusCode: 503, Message: "Service Unavailable"}, ErrUnavailable},
		{"no errorCode", 404, nil, `{"errorMessage":"x"}`,
			Error{StatusCode: 404, Message: `{"errorMessage":"x"}`}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				writeJSON(w, tc.status, tc.body)
			})
			_, err := f.client(t, "P").Audit().Search(context.Background(), SearchOptions{})
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v is not *Error", err)
			}
			if *apiErr != tc.want {
				t.Errorf("error\n got %+v\nwant %+v", *apiErr, tc.want)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.sentinel)
			}
			if errors.Is(err, ErrForbidden) {
				t.Errorf("%v matched ErrForbidden", err)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{StatusCode: 429, ErrorCode: "E130429", Description: "Rate limit exceeded", Message: "try later", RetryAfter: 3 * time.Second}
	if got, want := e.Error(), "audittrail: HTTP 429 E130429: Rate limit exceeded: try later (retry after 3s)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"1.5", 0},
		{"Wed, 25 Nov 2026 20:00:30 GMT", 30 * time.Second},
		{"Wed, 25 Nov 2026 19:59:00 GMT", 0},
		{"garbage", 0},
		{"99999999999999999999", 0}, // overflows int64: unparseable, not negative
		{"9999999999999", time.Duration(1<<63 - 1)},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// pagedServer serves n records newest first (ids r<n-1> … r0), honouring
// size and page, optionally answering the first search with 429.
func pagedServer(t *testing.T, n int, first429 bool) *fakeServer {
	var mu sync.Mutex
	limited := first429
	return newFake(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		mu.Lock()
		if limited {
			limited = false
			mu.Unlock()
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, `{"errorCode":"E130429","errorDescription":"Rate limit exceeded","errorMessage":"slow down"}`)
			return
		}
		mu.Unlock()
		var req struct{ Size, Page int }
		json.Unmarshal(body, &req)
		if req.Size == 0 {
			req.Size = 1000
		}
		var recs []string
		for i := req.Page * req.Size; i < (req.Page+1)*req.Size && i < n; i++ {
			recs = append(recs, fmt.Sprintf(`{"id":"r%d","action":"A","occurred":"%d"}`, n-1-i, 1_700_000_000_000+int64(n-1-i)))
		}
		writeJSON(w, 200, fmt.Sprintf(`{"audits":[%s],"total":%d}`, strings.Join(recs, ","), n))
	})
}

func TestAllPagesThroughEverything(t *testing.T) {
	f := pagedServer(t, 2500, false)
	var ids []string
	for r, err := range f.client(t, "P").Audit().All(context.Background(), SearchOptions{Actions: []string{"A"}}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if len(ids) != 2500 || ids[0] != "r2499" || ids[2499] != "r0" {
		t.Fatalf("got %d records, first %v last %v", len(ids), ids[0], ids[len(ids)-1])
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		want := fmt.Sprintf(`{"actions":["A"],"size":1000,"page":%d}`, i)
		if i == 0 {
			want = `{"actions":["A"],"size":1000}`
		}
		sameJSON(t, r.Body, want)
	}
}

func TestAllStopsWhenConsumerStops(t *testing.T) {
	f := pagedServer(t, 2500, false)
	n := 0
	for _, err := range f.client(t, "P").Audit().All(context.Background(), SearchOptions{Size: 10}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 15 {
			break
		}
	}
	if got := len(f.requests()); got != 2 {
		t.Fatalf("%d requests for 15 records of pages of 10", got)
	}
}

func TestAllWaitsOutRateLimit(t *testing.T) {
	f := pagedServer(t, 5, true)
	start := time.Now()
	n := 0
	for _, err := range f.client(t, "P").Audit().All(context.Background(), SearchOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("%d records", n)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %v, before Retry-After", waited)
	}
	if len(f.requests()) != 2 {
		t.Fatalf("%d requests", len(f.requests()))
	}
}

func TestAllYieldsErrorAndHonoursContext(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Retry-After", "60")
		writeJSON(w, 429, `{"errorCode":"E130429","errorMessage":"slow down"}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var errs []error
	for _, err := range f.client(t, "P").Audit().All(ctx, SearchOptions{}) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Fatalf("errors %v", errs)
	}

	f400 := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 400, `{"errorCode":"E011004","errorMessage":"bad from"}`)
	})
	errs = nil
	for _, err := range f400.client(t, "P").Audit().All(context.Background(), SearchOptions{}) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrBadRequest) {
		t.Fatalf("errors %v", errs)
	}
}

func TestAllSkipsRecordsShiftedByNewEvents(t *testing.T) {
	// Page 0 sees r9…r8; then two events arrive, so page 1 starts again with
	// r9, r8 pushed down by n10, n11.
	pages := []string{
		`{"audits":[{"id":"r9"},{"id":"r8"}],"total":10}`,
		`{"audits":[{"id":"r9"},{"id":"r8"}],"total":12}`,
		`{"audits":[{"id":"r7"}],"total":12}`,
	}
	var mu sync.Mutex
	i := 0
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, 200, pages[i])
		i++
	})
	var ids []string
	for r, err := range f.client(t, "P").Audit().All(context.Background(), SearchOptions{Size: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if !reflect.DeepEqual(ids, []string{"r9", "r8", "r7"}) {
		t.Fatalf("ids %v", ids)
	}
}

func TestExportNDJSONWithProgress(t *testing.T) {
	var lines []string
	for i := range 5000 {
		lines = append(lines, fmt.Sprintf(`{"id":"e%d","action":"A","occurred":"%d"}`, i, 1_700_000_000_000+i))
	}
	stream := strings.Join(lines, "\n") + "\n"
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("X-Total-Count", "5000")
		io.WriteString(w, stream)
	})
	var out bytes.Buffer
	var progress []ExportProgress
	n, err := f.client(t, "P").Audit().Export(context.Background(), ExportOptions{
		SearchOptions: SearchOptions{Actions: []string{"A"}, OldestFirst: true, Size: 5, Page: 3},
		Progress:      func(p ExportProgress) { progress = append(progress, p) },
	}, FormatNDJSON, &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5000 || out.String() != stream {
		t.Fatalf("n=%d, %d bytes written of %d", n, out.Len(), len(stream))
	}
	r := f.requests()[0]
	if r.Method != "POST" || r.Path != "/v1/mgmt/audit/export" || r.Query != "format=ndjson" {
		t.Fatalf("%s %s?%s", r.Method, r.Path, r.Query)
	}
	sameJSON(t, r.Body, `{"actions":["A"],"oldestFirst":true}`) // size and page are not sent
	if len(progress) < 3 {
		t.Fatalf("only %d progress reports", len(progress))
	}
	last := progress[len(progress)-1]
	if !last.Done || last.Records != 5000 || last.Total != 5000 || last.Bytes != int64(len(stream)) {
		t.Fatalf("last progress %+v", last)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Records < progress[i-1].Records || progress[i-1].Done {
			t.Fatalf("progress not monotone or Done early: %+v then %+v", progress[i-1], progress[i])
		}
	}
}

func TestExportCSVCountsRowsNotLines(t *testing.T) {
	stream := "id,action,data\r\n" +
		"e1,A,\"{\"\"note\"\":\"\"two\nlines\"\"}\"\r\n" +
		"e2,B,\"plain\"\r\n"
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Total-Count", "2")
		io.WriteString(w, stream)
	})
	var out bytes.Buffer
	n, err := f.client(t, "P").Audit().Export(context.Background(), ExportOptions{}, FormatCSV, &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || out.String() != stream {
		t.Fatalf("n=%d out=%q", n, out.String())
	}
	if q := f.requests()[0].Query; q != "format=csv" {
		t.Fatalf("query %q", q)
	}
}

func TestExportIncomplete(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("X-Total-Count", "3")
		io.WriteString(w, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":")
	})
	n, err := f.client(t, "P").Audit().Export(context.Background(), ExportOptions{}, "", io.Discard)
	if !errors.Is(err, ErrIncompleteExport) || n != 2 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if q := f.requests()[0].Query; q != "format=ndjson" {
		t.Fatalf("default format: query %q", q)
	}
}

func TestExportRejectsUnknownFormatAndRetries429(t *testing.T) {
	c, _ := New(Config{BaseURL: "http://127.0.0.1:1", ManagementKey: "k"})
	if _, err := c.Audit().Export(context.Background(), ExportOptions{}, "xml", io.Discard); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("format xml: %v", err)
	}
	var mu sync.Mutex
	calls := 0
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, `{"errorCode":"E130429","errorMessage":"slow down"}`)
			return
		}
		io.WriteString(w, "{}\n")
	})
	n, err := f.client(t, "P").Audit().Export(context.Background(), ExportOptions{}, FormatNDJSON, io.Discard)
	if err != nil || n != 1 || calls != 2 {
		t.Fatalf("n=%d err=%v calls=%d", n, err, calls)
	}
}

func TestCreateEvent(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if strings.Contains(r.Header.Get("Authorization"), "descope") {
			w.WriteHeader(200) // Descope answers with an empty body
			return
		}
		writeJSON(w, 200, `{"id":"ev1"}`)
	})
	ctx := context.Background()
	id, err := f.client(t, "P").Audit().CreateEvent(ctx, CreateEventOptions{
		UserID: "u1", Action: "Exported", Type: TypeWarn, ActorID: "a1", TenantID: "t1",
		Data: map[string]any{"rows": 3}, Occurred: time.UnixMilli(1732540000123), Geo: "IL",
		LoginIDs: []string{"a@b.c"},
	})
	if err != nil || id != "ev1" {
		t.Fatalf("id=%q err=%v", id, err)
	}
	r := f.requests()[0]
	if r.Method != "POST" || r.Path != "/v1/mgmt/audit/event" {
		t.Fatalf("%s %s", r.Method, r.Path)
	}
	sameJSON(t, r.Body, `{"userId":"u1","action":"Exported","type":"warn","actorId":"a1","tenantId":"t1",
	  "data":{"rows":3},"occurred":"1732540000123","geo":"IL","externalIds":["a@b.c"]}`)

	// Only Descope's keys when no extension is set, and an empty 2xx body is fine.
	c, _ := New(Config{BaseURL: f.URL, ProjectID: "P", ManagementKey: "descope"})
	id, err = c.Audit().CreateEvent(ctx, CreateEventOptions{Action: "A", Type: "info", ActorID: "a", TenantID: "t"})
	if err != nil || id != "" {
		t.Fatalf("id=%q err=%v", id, err)
	}
	sameJSON(t, f.requests()[1].Body, `{"userId":"","action":"A","type":"info","actorId":"a","tenantId":"t"}`)
}

func TestIngest(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if bytes.Contains(body, []byte(`"bad"`)) {
			writeJSON(w, 400, `{"errorCode":"E011003","errorDescription":"Validation failure","errorMessage":"events[1].type: must be \"info\", \"warn\" or \"error\""}`)
			return
		}
		writeJSON(w, 200, `{"ids":["given","gen1"]}`)
	})
	c := f.client(t, "P")
	ids, err := c.Audit().Ingest(context.Background(), []Record{
		{ID: "given", Action: "A", ActorID: "x", Occurred: time.UnixMilli(1732540000123), Tenants: []string{"t"}},
		{Action: "B", Level: LevelCompany, Type: "warn", Data: map[string]any{"Change": map[string]any{"phone": true}}},
	})
	if err != nil || !reflect.DeepEqual(ids, []string{"given", "gen1"}) {
		t.Fatalf("ids=%v err=%v", ids, err)
	}
	r := f.requests()[0]
	if r.Path != "/v1/mgmt/audit/events" {
		t.Fatalf("path %s", r.Path)
	}
	sameJSON(t, r.Body, `{"events":[
	  {"id":"given","userId":"","action":"A","actorId":"x","occurred":"1732540000123","device":"","method":"",
	   "geo":"","remoteAddress":"","externalIds":[],"tenants":["t"]},
	  {"level":"company","userId":"","action":"B","type":"warn","actorId":"","device":"","method":"","geo":"",
	   "remoteAddress":"","externalIds":[],"tenants":[],"data":{"Change":{"phone":true}}}]}`)

	_, err = c.Audit().Ingest(context.Background(), []Record{{Action: "A"}, {Action: "A", Type: "bad"}})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != "E011003" || !strings.Contains(apiErr.Message, "events[1].type") {
		t.Fatalf("err %v", err)
	}

	// A reply with the wrong number of ids is not trusted silently.
	_, err = c.Audit().Ingest(context.Background(), []Record{{Action: "A"}})
	if !errors.Is(err, ErrInvalidResponse) {
		t.Fatalf("err %v", err)
	}
}

func TestGetAndActions(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		switch r.URL.Path {
		case "/v1/mgmt/audit/event/bare":
			writeJSON(w, 200, `{"id":"bare","action":"A","occurred":"5"}`)
		case "/v1/mgmt/audit/event/wrapped":
			writeJSON(w, 200, `{"audit":{"id":"wrapped","action":"B","occurred":"6"}}`)
		case "/v1/mgmt/audit/actions":
			writeJSON(w, 200, `{"actions":[{"action":"LoginFailed","type":"warn","level":"project","description":"d","dataKeys":["error_message"]}]}`)
		default:
			writeJSON(w, 404, `{"errorCode":"E011404","errorDescription":"Not found","errorMessage":"no such event"}`)
		}
	})
	c := f.client(t, "P")
	ctx := context.Background()
	for _, id := range []string{"bare", "wrapped"} {
		r, err := c.Audit().Get(ctx, id)
		if err != nil || r.ID != id || r.Occurred.IsZero() {
			t.Fatalf("Get(%s) = %+v, %v", id, r, err)
		}
	}
	if _, err := c.Audit().Get(ctx, "a/b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if p := f.requests()[2].Path; p != "/v1/mgmt/audit/event/a/b" {
		// url.PathEscape keeps the slash escaped on the wire; Go's server
		// decodes it back in URL.Path.
		t.Fatalf("path %q", p)
	}
	acts, err := c.Audit().Actions(ctx)
	if err != nil || len(acts) != 1 || acts[0].Action != "LoginFailed" || acts[0].DataKeys[0] != "error_message" {
		t.Fatalf("actions %+v, %v", acts, err)
	}
}

func TestAdminCalls(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		key := `{"id":"K1","name":"ci","role":"writer","projectIds":["P1"],"created":"2026-11-25T20:00:00Z","expires":"2026-12-25T20:00:00Z"}`
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/mgmt/projects":
			writeJSON(w, 200, `{"projects":[{"id":"P1","name":"default","created":"2026-11-25T20:00:00Z"}]}`)
		case "POST /v1/mgmt/projects":
			writeJSON(w, 200, `{"project":{"id":"P2","name":"new","created":"2026-11-25T20:00:00Z"}}`)
		case "DELETE /v1/mgmt/projects/P2":
			writeJSON(w, 200, `{}`)
		case "GET /v1/mgmt/keys":
			writeJSON(w, 200, `{"keys":[`+key+`]}`)
		case "POST /v1/mgmt/keys", "POST /v1/mgmt/keys/K1/rotate":
			writeJSON(w, 200, `{"key":`+key+`,"secret":"K1.s3cret"}`)
		case "POST /v1/mgmt/keys/K1/revoke":
			writeJSON(w, 200, `{"key":{"id":"K1","revoked":"2026-11-25T21:00:00Z"}}`)
		case "GET /v1/mgmt/company/settings":
			writeJSON(w, 200, `{"settings":{"searchWindowDays":30,"retentionDays":90,"searchRateLimit":null}}`)
		case "PATCH /v1/mgmt/company/settings":
			writeJSON(w, 200, `{"settings":{"searchWindowDays":30,"retentionDays":90,"searchRateLimit":0}}`)
		default:
			writeJSON(w, 404, `{"errorCode":"E011404","errorMessage":"no route"}`)
		}
	})
	c := f.client(t, "")
	ctx := context.Background()
	created := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

	ps, err := c.Projects().List(ctx)
	if err != nil || len(ps) != 1 || ps[0] != (Project{ID: "P1", Name: "default", Created: created}) {
		t.Fatalf("projects %+v %v", ps, err)
	}
	p, err := c.Projects().Create(ctx, "new")
	if err != nil || p.ID != "P2" {
		t.Fatalf("create %+v %v", p, err)
	}
	if err := c.Projects().Delete(ctx, "P2"); err != nil {
		t.Fatal(err)
	}
	ks, err := c.Keys().List(ctx)
	if err != nil || len(ks) != 1 || ks[0].Role != RoleWriter || !ks[0].Active(created) || ks[0].Active(created.AddDate(0, 2, 0)) {
		t.Fatalf("keys %+v %v", ks, err)
	}
	k, secret, err := c.Keys().Create(ctx, CreateKeyOptions{Name: "ci", Role: RoleWriter, ProjectIDs: []string{"P1"}, ExpiresIn: 30 * 24 * time.Hour})
	if err != nil || k.ID != "K1" || secret != "K1.s3cret" {
		t.Fatalf("create key %+v %q %v", k, secret, err)
	}
	if _, _, err := c.Keys().Create(ctx, CreateKeyOptions{Name: "all", Role: RoleReader}); err != nil {
		t.Fatal(err)
	}
	k, err = c.Keys().Revoke(ctx, "K1")
	if err != nil || k.Revoked.IsZero() || k.Active(created) {
		t.Fatalf("revoke %+v %v", k, err)
	}
	if _, secret, err = c.Keys().Rotate(ctx, "K1"); err != nil || secret != "K1.s3cret" {
		t.Fatalf("rotate %q %v", secret, err)
	}
	s, err := c.Settings().Get(ctx)
	if err != nil || s.SearchWindowDays != 30 || s.SearchRateLimit != nil {
		t.Fatalf("settings %+v %v", s, err)
	}
	s, err = c.Settings().Update(ctx, SettingsUpdate{SearchRateLimit: Int(0)})
	if err != nil || s.SearchRateLimit == nil || *s.SearchRateLimit != 0 {
		t.Fatalf("update %+v %v", s, err)
	}
	if _, err := c.Settings().Update(ctx, SettingsUpdate{SearchWindowDays: Int(14), SearchRateLimit: Int(5), DefaultSearchRateLimit: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Projects().Delete(ctx, ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("empty id: %v", err)
	}

	reqs := f.requests()
	bodies := map[string]string{}
	for _, r := range reqs {
		if r.Body != "" {
			bodies[r.Method+" "+r.Path] += r.Body + "\n"
		}
		if r.Header.Get("Authorization") != "Bearer K123.secret" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
		}
	}
	sameJSON(t, bodies["POST /v1/mgmt/projects"], `{"name":"new"}`)
	keyBodies := strings.Split(strings.TrimSpace(bodies["POST /v1/mgmt/keys"]), "\n")
	sameJSON(t, keyBodies[0], `{"name":"ci","role":"writer","projectIds":["P1"],"expiresInSeconds":2592000}`)
	sameJSON(t, keyBodies[1], `{"name":"all","role":"reader","projectIds":[],"expiresInSeconds":0}`)
	patches := strings.Split(strings.TrimSpace(bodies["PATCH /v1/mgmt/company/settings"]), "\n")
	sameJSON(t, patches[0], `{"searchRateLimit":0}`)
	sameJSON(t, patches[1], `{"searchWindowDays":14,"searchRateLimit":null}`)
	if _, ok := bodies["DELETE /v1/mgmt/projects/P2"]; ok {
		t.Error("DELETE sent a body")
	}
}

func TestRecordJSONRoundTrip(t *testing.T) {
	in := Record{ID: "x", Action: "A", Occurred: time.UnixMilli(1732540000123).UTC(), LoginIDs: []string{"l"}, Tenants: []string{"t"}, Data: map[string]any{"a": "b"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"occurred":"1732540000123"`)) {
		t.Fatalf("occurred not a string of ms: %s", b)
	}
	var out Record
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip\n got %+v\nwant %+v", out, in)
	}
	for _, bad := range []string{`{"occurred":"soon"}`, `{"occurred":true}`, `{"occurred":"1e400"}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzRecordUnmarshal(f *testing.F) {
	f.Add([]byte(`{"id":"x","occurred":"1732540000123","externalIds":["a"],"data":{"k":[1,2]}}`))
	f.Add([]byte(`{"occurred":1.5e12}`))
	f.Add([]byte(`{"occurred":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if json.Unmarshal(b, &r) != nil {
			return
		}
		// Whatever decodes must encode and decode to the same record.
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal %+v: %v", r, err)
		}
		var again Record
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if again.OccurredMillis() != r.OccurredMillis() || again.ID != r.ID || again.Action != r.Action {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "120", "-1", "Wed, 25 Nov 2026 20:00:30 GMT", "9999999999999", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v", s, d)
		}
	})
}
