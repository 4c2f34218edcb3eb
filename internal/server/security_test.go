package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// storeCount is every event the store holds, all companies together.
func storeCount(t *testing.T, inst *servertest.Instance) int {
	t.Helper()
	evs, err := inst.Components.Store.ReadFrom(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestHostileRequests sends hostile requests to the real server: each gets
// a 4xx, and the store holds as many events after as before.
func TestHostileRequests(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	auth := bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey)
	before := storeCount(t, inst)

	ev := func(extra string) string {
		return `{"action":"A","actorId":"a","tenantId":"t","type":"info"` + extra + `}`
	}
	mib10 := strings.Repeat("x", 10<<20)
	manyEvents := `{"events":[` + strings.Repeat(ev("")+",", 10_000) + ev("") + `]}` // 10,001: one over the cap
	hugeArray := `{"userIds":[` + strings.Repeat(`"u",`, 300_000) + `"u"]}`
	deepArray := strings.Repeat(`[`, 1_000_000) + strings.Repeat(`]`, 1_000_000)
	deepData := ev(`,"data":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000))

	type req struct {
		name, method, path, ctype, body string
		headers                         map[string]string
	}
	cases := []req{
		{name: "huge array in a search", path: "/v1/mgmt/audit/search", body: hugeArray},
		{name: "huge array of events", path: "/v1/mgmt/audit/events", body: manyEvents},
		{name: "huge array in data", path: "/v1/mgmt/audit/event", body: ev(`,"data":{"a":[` + strings.Repeat(`1,`, 400_000) + `1]}`)},
		{name: "deep nesting (a million arrays)", path: "/v1/mgmt/audit/search", body: deepArray},
		{name: "deep nesting in data", path: "/v1/mgmt/audit/event", body: deepData},
		{name: "deep nesting in a batch", path: "/v1/mgmt/audit/events", body: `{"events":[` + deepData + `]}`},
		{name: "invalid UTF-8 in a field", path: "/v1/mgmt/audit/event", body: ev(`,"userId":"` + "\xc3\x28" + `"`)},
		{name: "invalid UTF-8 in a key", path: "/v1/mgmt/audit/event", body: ev(`,"data":{"` + "\xff" + `":1}`)},
		{name: "invalid UTF-8 in search text", path: "/v1/mgmt/audit/search", body: `{"text":"` + "\xed\xa0\x80" + `"}`},
		{name: "NUL byte raw", path: "/v1/mgmt/audit/event", body: ev(`,"userId":"a` + "\x00" + `"`)},
		{name: "NUL escaped", path: "/v1/mgmt/audit/event", body: ev(`,"actorId":"\u0000"`)},
		{name: "NUL in a batch", path: "/v1/mgmt/audit/events", body: `{"events":[` + ev(`,"userId":"\u0000"`) + `]}`},
		{name: "NUL in search text", path: "/v1/mgmt/audit/search", body: `{"text":"a\u0000b"}`},
		{name: "10 MiB string in an event", path: "/v1/mgmt/audit/event", body: ev(`,"userId":"` + mib10 + `"`)},
		{name: "10 MiB string in a batch", path: "/v1/mgmt/audit/events", body: `{"events":[` + ev(`,"userId":"`+mib10+`"`) + `]}`},
		{name: "10 MiB search text", path: "/v1/mgmt/audit/search", body: `{"text":"` + mib10 + `"}`},
		{name: "10 MiB data string", path: "/v1/mgmt/audit/event", body: ev(`,"data":{"s":"` + mib10[:9<<20] + `"}`)},
		{name: "size out of range", path: "/v1/mgmt/audit/search", body: `{"size":1e400}`},
		{name: "page beyond int64", path: "/v1/mgmt/audit/search", body: `{"page":99999999999999999999999}`},
		{name: "negative page", path: "/v1/mgmt/audit/search", body: `{"page":-5}`},
		{name: "from beyond int64", path: "/v1/mgmt/audit/search", body: `{"from":1e30}`},
		{name: "occurred far future", path: "/v1/mgmt/audit/event", body: ev(`,"occurred":9e18`)},
		{name: "occurred negative", path: "/v1/mgmt/audit/event", body: ev(`,"occurred":-1`)},
		{name: "occurred fractional huge", path: "/v1/mgmt/audit/event", body: ev(`,"occurred":1.5e300`)},
		{name: "retention out of range", method: "PATCH", path: "/v1/mgmt/company/settings", body: `{"retentionDays":1e12}`},
		{name: "key expiry out of range", path: "/v1/mgmt/keys", body: `{"name":"k","role":"reader","projectIds":[],"expiresInSeconds":1e300}`},
		{name: "text/plain", path: "/v1/mgmt/audit/event", ctype: "text/plain", body: ev("")},
		{name: "form", path: "/v1/mgmt/audit/events", ctype: "application/x-www-form-urlencoded", body: "events=1"},
		{name: "multipart", path: "/v1/mgmt/audit/event", ctype: "multipart/form-data; boundary=x", body: "--x\r\n\r\n" + ev("") + "\r\n--x--"},
		{name: "xml", path: "/v1/mgmt/audit/search", ctype: "application/xml", body: "<search/>"},
		{name: "gzip we never offered", path: "/v1/mgmt/audit/event", body: "\x1f\x8b\x08\x00\x00\x00\x00\x00", headers: map[string]string{"Content-Encoding": "gzip"}},
		{name: "header over 64 KiB", path: "/v1/mgmt/audit/event", body: ev(""), headers: map[string]string{"X-Big": strings.Repeat("h", 100<<10)}},
		{name: "URL over 64 KiB", method: "GET", path: "/v1/mgmt/audit/event/" + strings.Repeat("i", 100<<10)},
		{name: "id with NUL", method: "GET", path: "/v1/mgmt/audit/event/a%00b"},
		{name: "id of invalid UTF-8", method: "GET", path: "/v1/mgmt/audit/event/%ff%fe"},
		{name: "wrong method", method: "PUT", path: "/v1/mgmt/audit/event", body: ev("")},
		{name: "SCIM not an object", path: "/v1/mgmt/audit/scim", body: `[1,2]`},
		{name: "SCIM path bomb", path: "/v1/mgmt/audit/scim", body: `{"method":"PATCH","path":"/Users/` + strings.Repeat("x/", 100_000) + `","request":{}}`},
		{name: "Authorization over limits", path: "/v1/mgmt/audit/event", body: ev(""), headers: map[string]string{"Authorization": "Bearer " + strings.Repeat("k", 60<<10)}},
		{name: "Authorization with two colons", path: "/v1/mgmt/audit/event", body: ev(""), headers: map[string]string{"Authorization": "Bearer P:k:k"}},
		{name: "Authorization of another scheme", path: "/v1/mgmt/audit/event", body: ev(""), headers: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = "POST"
			}
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r, err := http.NewRequest(method, inst.URL+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", auth)
			ct := c.ctype
			if ct == "" {
				ct = "application/json"
			}
			r.Header.Set("Content-Type", ct)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				// Cut off mid-upload (the server answered 413 and closed
				// before reading it all) is a refusal too.
				t.Logf("cut off: %v", err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Fatalf("got %d %.300s, want a 4xx", resp.StatusCode, b)
			}
			t.Logf("%d %.160s", resp.StatusCode, b)
		})
	}
	if after := storeCount(t, inst); after != before {
		t.Fatalf("hostile requests wrote %d events", after-before)
	}
	// The server is still serving.
	if st, body := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", auth, `{"size":1}`); st != http.StatusOK {
		t.Fatalf("after the hostile requests: %d %s", st, body)
	}
}

// shortTimeouts makes the connection timeouts short enough for a test.
func shortTimeouts(c *config.Config) {
	c.ReadHeaderTimeout = time.Second
	c.ReadTimeout = 2 * time.Second
	c.IdleTimeout = 2 * time.Second
}

// closedWithin reports whether the server closes conn within d (reading
// whatever it sends before closing).
func closedWithin(conn net.Conn, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	conn.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, conn)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return elapsed, false
	}
	return elapsed, true
}

// TestSlowClients: a client sending one byte a second, in its header or in
// its body, is cut off by the read timeouts while others are served; a
// connection left idle is closed by the idle timeout.
func TestSlowClients(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Configure: shortTimeouts})
	auth := bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey)
	addr := strings.TrimPrefix(inst.URL, "http://")
	before := storeCount(t, inst)

	trickle := func(prefix, rest string) (net.Conn, chan struct{}) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, prefix); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		go func() {
			for i := 0; i < len(rest); i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
				if _, err := conn.Write([]byte{rest[i]}); err != nil {
					return // cut off
				}
			}
		}()
		return conn, stop
	}

	t.Run("header one byte a second", func(t *testing.T) {
		conn, stop := trickle("P", "OST /v1/mgmt/audit/event HTTP/1.1\r\nHost: x\r\nAuthorization: "+auth+"\r\n\r\n")
		defer close(stop)
		defer conn.Close()
		elapsed, closed := closedWithin(conn, 10*time.Second)
		if !closed {
			t.Fatalf("a client trickling its header is still connected after %s", elapsed)
		}
		t.Logf("cut off after %s", elapsed)
	})
	t.Run("body one byte a second", func(t *testing.T) {
		body := `{"action":"Slow","actorId":"a","tenantId":"t","type":"info"}`
		conn, stop := trickle(fmt.Sprintf("POST /v1/mgmt/audit/event HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			auth, len(body)), body)
		defer close(stop)
		defer conn.Close()
		elapsed, closed := closedWithin(conn, 10*time.Second)
		if !closed {
			t.Fatalf("a client trickling its body is still connected after %s", elapsed)
		}
		t.Logf("cut off after %s", elapsed)
	})
	t.Run("idle keep-alive connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		elapsed, closed := closedWithin(conn, 10*time.Second)
		if !closed {
			t.Fatalf("an idle connection is still open after %s", elapsed)
		}
		t.Logf("idle connection closed after %s", elapsed)
	})
	if after := storeCount(t, inst); after != before {
		t.Fatalf("slow clients wrote %d events", after-before)
	}
}

// TestManyConnections: thousands of connections that send nothing, or
// half a header, do not stop the server from serving others, and are all
// cut off by the header timeout.
func TestManyConnections(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Configure: shortTimeouts})
	auth := bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey)
	addr := strings.TrimPrefix(inst.URL, "http://")
	const n = 3000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if i%2 == 1 {
			io.WriteString(c, "POST /v1/mgmt/audit/event HTTP/1.1\r\nHost: x\r\n") // half a header
		}
		conns = append(conns, c)
	}
	// Others are served meanwhile, promptly.
	var slowestSearch time.Duration
	for range 5 {
		start := time.Now()
		st, body := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", auth, `{"size":1}`)
		if st != http.StatusOK {
			t.Fatalf("search with %d idle connections open: %d %s", n, st, body)
		}
		d := time.Since(start)
		if d > 10*time.Second { // generous: the whole suite may share the machine
			t.Fatalf("search took %s with %d idle connections open", d, n)
		}
		slowestSearch = max(slowestSearch, d)
	}
	t.Logf("with %d idle connections open, the slowest of 5 searches took %s", n, slowestSearch)
	// Every one of them is cut off by the header timeout (1 s).
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	var slowest time.Duration
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, closed := closedWithin(c, 15*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if !closed {
				open++
			}
			slowest = max(slowest, d)
		}()
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d idle connections still open after 15 s", open, n)
	}
	t.Logf("%d idle connections all cut off; the last after %s", n, slowest)
	if st, _ := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", auth, `{"size":1}`); st != http.StatusOK {
		t.Fatalf("after the flood: %d", st)
	}
}

// TestCORS: no Access-Control-* header unless --cors-origins is set; then
// only for the listed origins, never with credentials.
func TestCORS(t *testing.T) {
	preflight := func(t *testing.T, url, origin string) *http.Response {
		r, _ := http.NewRequest("OPTIONS", url+"/v1/mgmt/audit/search", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	search := func(t *testing.T, inst *servertest.Instance, origin string) *http.Response {
		r, _ := http.NewRequest("POST", inst.URL+"/v1/mgmt/audit/search", strings.NewReader(`{}`))
		r.Header.Set("Origin", origin)
		r.Header.Set("Authorization", bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("search with Origin: %d", resp.StatusCode)
		}
		return resp
	}
	corsHeaders := func(h http.Header) []string {
		var out []string
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				out = append(out, k)
			}
		}
		return out
	}
	t.Run("off by default", func(t *testing.T) {
		inst := servertest.Start(t, servertest.Options{})
		for _, origin := range []string{"https://evil.example", "null", inst.URL} {
			if got := corsHeaders(preflight(t, inst.URL, origin).Header); len(got) > 0 {
				t.Fatalf("preflight from %s got %v", origin, got)
			}
			if got := corsHeaders(search(t, inst, origin).Header); len(got) > 0 {
				t.Fatalf("search from %s got %v", origin, got)
			}
		}
	})
	t.Run("configured origins only", func(t *testing.T) {
		const app = "https://app.example.com"
		inst := servertest.Start(t, servertest.Options{Configure: func(c *config.Config) { c.CORSOrigins = []string{app} }})
		resp := preflight(t, inst.URL, app)
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != app ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatal("credentials allowed")
		}
		if got := search(t, inst, app).Header.Get("Access-Control-Allow-Origin"); got != app {
			t.Fatalf("allowed origin's search: Access-Control-Allow-Origin %q", got)
		}
		resp = preflight(t, inst.URL, "https://evil.example")
		if resp.StatusCode != http.StatusForbidden || len(corsHeaders(resp.Header)) > 0 {
			t.Fatalf("other origin's preflight: %d %v", resp.StatusCode, resp.Header)
		}
		if got := corsHeaders(search(t, inst, "https://evil.example").Header); len(got) > 0 {
			t.Fatalf("other origin's search got %v", got)
		}
	})
	t.Run("wildcard refused", func(t *testing.T) {
		for _, v := range []string{"*", "app.example.com", "https://app.example.com/path", "ftp://x"} {
			_, err := config.Load(config.Sources{Args: []string{"--cors-origins", v}, Getenv: func(string) (string, bool) { return "", false }})
			if err == nil || !strings.Contains(err.Error(), "cors-origins") {
				t.Fatalf("--cors-origins %q: %v", v, err)
			}
		}
	})
}

// TestSecureHeaders: the console page forbids framing and inline scripts;
// API answers are never sniffed as HTML.
func TestSecureHeaders(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	resp, err := http.Get(inst.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("console: %d", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("console CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Fatalf("console CSP allows inline or eval: %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("console X-Frame-Options %q", resp.Header.Get("X-Frame-Options"))
	}
	st, body := rawCall(t, "POST", inst.URL+"/v1/mgmt/audit/search", "Bearer nope", `{}`)
	if st != http.StatusUnauthorized {
		t.Fatalf("bad key: %d %s", st, body)
	}
	r, _ := http.NewRequest("POST", inst.URL+"/v1/mgmt/audit/search", strings.NewReader(`{}`))
	r.Header.Set("Authorization", bearer(inst.Creds.ProjectID, inst.Creds.ManagementKey))
	resp, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("search Content-Type %q", ct)
	}
}

// TestEveryRouteNeedsAKey: every management route answers 401 to a
// request with no key, a malformed one, and a well-formed key nobody
// issued; only the public ones answer without a key.
func TestEveryRouteNeedsAKey(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	unknown, _ := tenancy.NewKeySecret(tenancy.NewKeyID())
	routes := []string{
		"POST /v1/mgmt/audit/search", "POST /v1/mgmt/audit/event", "POST /v1/mgmt/audit/events", "POST /v1/mgmt/audit/export",
		"GET /v1/mgmt/audit/event/x", "GET /v1/mgmt/audit/actions", "POST /v1/mgmt/audit/scim", "POST /v1/mgmt/audit/tail",
		"POST /v1/mgmt/audit/histogram",
		"GET /v1/mgmt/projects", "POST /v1/mgmt/projects", "DELETE /v1/mgmt/projects/x",
		"GET /v1/mgmt/keys", "POST /v1/mgmt/keys", "POST /v1/mgmt/keys/x/revoke", "POST /v1/mgmt/keys/x/rotate",
		"GET /v1/mgmt/company/settings", "PATCH /v1/mgmt/company/settings",
		"POST /v1/mgmt/connector/audit/web/set", "POST /v2/mgmt/connector/audit/web/set",
		"GET /v1/mgmt/connectors", "POST /v1/mgmt/connectors", "GET /v1/mgmt/connectors/x", "PUT /v1/mgmt/connectors/x",
		"DELETE /v1/mgmt/connectors/x", "POST /v1/mgmt/connectors/x/pause", "POST /v1/mgmt/connectors/x/resume",
		"POST /v1/mgmt/connectors/x/test", "POST /v1/mgmt/connectors/x/replay", "GET /v1/mgmt/connectors/x/health",
		"GET /v1/mgmt/ledger/checkpoint", "POST /v1/mgmt/ledger/checkpoint", "GET /v1/mgmt/ledger/checkpoints",
		"GET /v1/mgmt/ledger/proof/inclusion", "GET /v1/mgmt/ledger/proof/consistency", "POST /v1/mgmt/ledger/proofs",
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		for _, auth := range []string{"", "Bearer", "Bearer " + inst.Creds.ProjectID + ":garbage", "Bearer " + inst.Creds.ProjectID + ":" + unknown, "Basic " + inst.Creds.ManagementKey} {
			body := ""
			if method != "GET" && method != "DELETE" {
				body = `{}`
			}
			if st, b := rawCall(t, method, inst.URL+path, auth, body); st != http.StatusUnauthorized {
				t.Errorf("%s with Authorization %q: %d %.200s, want 401", rt, auth, st, b)
			}
		}
	}
	// The public ones: health, metrics, Descope's license call, the console
	// page and the ledger's public checkpoint key.
	for _, path := range []string{"/healthz", "/metrics", "/v1/mgmt/license", "/", "/.well-known/audittrail/checkpoint-key"} {
		if st, b := rawCall(t, "GET", inst.URL+path, "", ""); st != http.StatusOK {
			t.Errorf("public %s: %d %.200s", path, st, b)
		}
	}
	t.Logf("%d routes × 5 kinds of missing or bad key: all 401", len(routes))
}
