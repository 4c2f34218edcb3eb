package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/stream/webhook"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// receiver is the webhook's destination in the test: it checks every
// request's HMAC signature and bearer token and counts each event id it is
// given.
type receiver struct {
	secret, token string

	mu        sync.Mutex
	down      bool           // answer 503, as a destination in an outage
	got       map[string]int // event id → deliveries
	actions   map[string]string
	loginIDs  map[string][]string
	refused   []string // requests with a wrong signature or token
	testCalls int
}

func newReceiver(secret, token string) *receiver {
	return &receiver{secret: secret, token: token, got: map[string]int{}, actions: map[string]string{}, loginIDs: map[string][]string{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil || rc.down {
		http.Error(w, "receiver down for the test", http.StatusServiceUnavailable)
		return
	}
	if sig := r.Header.Get(webhook.SignatureHeader); sig != webhook.Sign(rc.secret, body) {
		rc.refused = append(rc.refused, "signature "+sig)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if a := r.Header.Get("Authorization"); a != "Bearer "+rc.token {
		rc.refused = append(rc.refused, "authorization "+a)
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	var batch struct {
		Audits []struct {
			ID          string   `json:"id"`
			Action      string   `json:"action"`
			ExternalIDs []string `json:"externalIds"`
		} `json:"audits"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	for _, a := range batch.Audits {
		if a.Action == "AuditStreamTest" {
			rc.testCalls++
			continue
		}
		rc.got[a.ID]++
		rc.actions[a.ID] = a.Action
		rc.loginIDs[a.ID] = a.ExternalIDs
	}
}

func (rc *receiver) setDown(down bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.down = down
}

func (rc *receiver) deliveries(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got[id]
}

func (rc *receiver) tests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.testCalls
}

// waitDelivered waits until every id was delivered at least n times.
func (rc *receiver) waitDelivered(t *testing.T, n int, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, id := range ids {
			if rc.deliveries(id) < n {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	t.Fatalf("not every one of %v delivered %d times within 30 s: got %v (refused %v)", ids, n, rc.got, rc.refused)
}

// connectorAPI calls the connector routes as the console's user does.
func connectorAPI(t *testing.T, inst *servertest.Instance, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, inst.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+inst.Creds.ProjectID+":"+inst.Creds.ManagementKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestConsoleConnectorsInBrowser drives the Connectors page of a real
// server (servertest: the same wiring as `audittrail serve`, streams
// included) and checks with a local receiver that what the page creates
// really delivers, and that pause, resume, send test and replay do what
// they say.
func TestConsoleConnectorsInBrowser(t *testing.T) {
	skipUnlessIntegration(t)
	inst := servertest.Start(t, servertest.Options{})
	if status, _ := connectorAPI(t, inst, "GET", "/v1/mgmt/connectors", nil); status == http.StatusNotFound {
		t.Fatal("the server has no connector routes (GET /v1/mgmt/connectors answered 404)")
	}
	const hmacSecret, bearer = "hmac-secret-for-the-console-test", "bearer-token-for-the-console-test"
	rc := newReceiver(hmacSecret, bearer)
	dest := httptest.NewServer(rc)
	t.Cleanup(dest.Close)
	b := startBrowser(t, inst.URL)
	ingest := func(recs ...client.Record) {
		t.Helper()
		if _, err := inst.Client(t).Audit().Ingest(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	rowSel := func(id string) string { return fmt.Sprintf(`tr[data-id=%q]`, id) }
	var id string

	t.Run("create a webhook", func(t *testing.T) {
		b.signIn(inst.Creds.ProjectID, inst.Creds.ManagementKey)
		waitFor[bool](b, `!!document.querySelector('#total-count')`)
		b.do(chromedp.Click(chromedp.CSS(`nav a[href="/connectors"]`)))
		waitFor[bool](b, `!!document.querySelector('.connectors-table') && !document.querySelector('.connectors-table').hasAttribute('aria-busy')`)
		if empty := eval[string](b, `document.querySelector('.connectors-table tbody').textContent`); !strings.Contains(empty, "No connectors yet") {
			t.Errorf("empty list says %q", empty)
		}
		checkAccessible(t, b, "connectors, empty")

		// A URL the server refuses: the form says why and keeps the input.
		b.do(chromedp.SendKeys(chromedp.ID("w-name"), "siem"),
			chromedp.SendKeys(chromedp.ID("w-url"), "ftp://siem.example.com/audit"),
			chromedp.Click(chromedp.CSS(`.webhook-form button[type=submit]`)))
		msg := waitFor[string](b, `document.querySelector('#w-error').textContent`)
		if !strings.Contains(msg, "Not created") || !strings.Contains(msg, "url") {
			t.Errorf("refused URL: %q", msg)
		}
		if f := eval[string](b, `document.activeElement.id`); f != "w-url" {
			t.Errorf("focus on %q after the refusal, want the URL field", f)
		}

		b.do(chromedp.Evaluate[chromedp.Void](`(() => {
				const set = (id, v) => { const el = document.getElementById(id); el.value = v; el.dispatchEvent(new Event('change', {bubbles: true})); };
				set('w-url', ''); set('w-auth', 'bearer'); set('w-level', 'project');
			})()`),
			chromedp.SendKeys(chromedp.ID("w-url"), dest.URL+"/audit"),
			chromedp.SendKeys(chromedp.ID("w-desc"), "every failed login"),
			chromedp.SendKeys(chromedp.ID("w-token"), bearer),
			chromedp.SendKeys(chromedp.ID("w-hmac"), hmacSecret),
			chromedp.SendKeys(chromedp.CSS(`[data-filter="w-actions"] input`), "LoginFailed"))
		b.pressEnter() // adds the chip, and does not submit the form
		if chips := eval[string](b, `document.querySelector('[data-filter="w-actions"] .chips').textContent`); !strings.Contains(chips, "LoginFailed") {
			t.Errorf("action chips %q after Enter", chips)
		}
		if n := eval[int](b, `document.querySelectorAll('.connectors-table tbody tr[data-id]').length`); n != 0 {
			t.Fatalf("Enter in the action field submitted the form (%d connectors)", n)
		}
		b.do(chromedp.Click(chromedp.ID("w-mask")))
		if !eval[bool](b, `document.getElementById('w-mask').checked`) {
			t.Fatal("the mask box is not ticked after a click")
		}
		b.do(chromedp.Click(chromedp.CSS(`.webhook-form button[type=submit]`)))
		waitFor[bool](b, `document.querySelector('#conn-ok')?.textContent.includes('created')`)
		id = waitFor[string](b, `document.querySelector('.connectors-table tbody tr[data-id]')?.dataset.id`)

		status, v := connectorAPI(t, inst, "GET", "/v1/mgmt/connectors/"+id, nil)
		if status != http.StatusOK {
			t.Fatalf("GET the created connector: %d %v", status, v)
		}
		cfg, _ := v["config"].(map[string]any)
		filters, _ := json.Marshal(v["filters"])
		if v["name"] != "siem" || v["type"] != "webhook" || v["level"] != "project" || v["maskPII"] != true ||
			v["description"] != "every failed login" || cfg["url"] != dest.URL+"/audit" ||
			string(filters) != `[{"filterType":"actions","operator":"includes","values":["LoginFailed"]}]` {
			t.Errorf("created %v", v)
		}
		// Secrets are stored, never shown again: not by the API, not on the page.
		raw, _ := json.Marshal(v)
		page := eval[string](b, `document.body.innerText + document.body.innerHTML`)
		for _, secret := range []string{hmacSecret, bearer} {
			if strings.Contains(string(raw), secret) || strings.Contains(page, secret) {
				t.Errorf("the secret %q is shown after creation", secret)
			}
		}
		if v := eval[string](b, `document.getElementById('w-hmac').value + document.getElementById('w-token').value`); v != "" {
			t.Errorf("the form kept the secrets after creation: %q", v)
		}
	})
	if id == "" {
		t.FailNow()
	}

	t.Run("it delivers what matches", func(t *testing.T) {
		now := time.Now().UTC()
		var recs []client.Record
		for i := range 3 {
			recs = append(recs, client.Record{ID: fmt.Sprintf("fail-%d", i), Action: "LoginFailed", Type: "warn", UserID: "u-ada",
				LoginIDs: []string{"ada@example.com"}, Occurred: now.Add(time.Duration(i) * time.Millisecond)})
		}
		recs = append(recs, client.Record{ID: "ok-0", Action: "LoginSucceed", Type: "info", UserID: "u-ada", Occurred: now})
		ingest(recs...)
		rc.waitDelivered(t, 1, "fail-0", "fail-1", "fail-2")
		rc.mu.Lock()
		if rc.got["ok-0"] != 0 {
			t.Error("the action filter let LoginSucceed through")
		}
		if ids := rc.loginIDs["fail-0"]; len(ids) != 1 || ids[0] == "ada@example.com" {
			t.Errorf("login IDs delivered as %v with maskPII on", ids)
		}
		if len(rc.refused) > 0 {
			t.Errorf("requests without the right signature or token: %v", rc.refused)
		}
		rc.mu.Unlock()
		// The list catches up by itself (it refreshes every few seconds).
		waitFor[bool](b, `document.querySelector('`+rowSel(id)+` td:nth-child(4)')?.textContent.startsWith('3')`)
		waitFor[bool](b, `document.querySelector('`+rowSel(id)+` [data-lag-events]').dataset.lagEvents === '0'`)
	})

	t.Run("pause by keyboard, lag, resume", func(t *testing.T) {
		b.do(chromedp.Focus(chromedp.CSS(`button[aria-label="Pause siem"]`)), chromedp.KeyEvent("\r"))
		waitFor[bool](b, `document.querySelector('`+rowSel(id)+`').dataset.state === 'paused'`)
		if _, h := connectorAPI(t, inst, "GET", "/v1/mgmt/connectors/"+id+"/health", nil); h["state"] != "paused" {
			t.Errorf("health after pause: %v", h)
		}
		// The focus stays on the row's (now Resume) button for the next key.
		if label := eval[string](b, `document.activeElement.getAttribute('aria-label')`); label != "Resume siem" {
			t.Errorf("focus after pausing on %q", label)
		}
		now := time.Now().UTC()
		ingest(client.Record{ID: "paused-0", Action: "LoginFailed", Type: "warn", UserID: "u-bob", Occurred: now},
			client.Record{ID: "paused-1", Action: "LoginFailed", Type: "warn", UserID: "u-bob", Occurred: now})
		// The lag shows the waiting events, in events and seconds, and is
		// what the API reports.
		waitFor[bool](b, `Number(document.querySelector('`+rowSel(id)+` [data-lag-events]').dataset.lagEvents) >= 2`)
		b.do(chromedp.Click(chromedp.CSS(`.card-head button`)))
		time.Sleep(500 * time.Millisecond)
		_, h := connectorAPI(t, inst, "GET", "/v1/mgmt/connectors/"+id+"/health", nil)
		lag := eval[map[string]string](b, `({...document.querySelector('`+rowSel(id)+` [data-lag-events]').dataset})`)
		if lag["lagEvents"] != fmt.Sprint(h["lagEvents"]) {
			t.Errorf("page lag %v, API health %v", lag, h)
		}
		if secs, _ := strconv.ParseFloat(lag["lagSeconds"], 64); secs <= 0 {
			t.Errorf("lag of %s seconds while two events wait", lag["lagSeconds"])
		}
		if text := eval[string](b, `document.querySelector('`+rowSel(id)+` td:nth-child(3)').textContent`); !strings.Contains(text, "events") || !strings.Contains(text, "behind") {
			t.Errorf("lag cell %q", text)
		}
		if rc.deliveries("paused-0") != 0 {
			t.Error("a paused connector delivered")
		}
		b.shot("connectors")
		checkAccessible(t, b, "connectors, one paused")

		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Resume siem"]`)))
		rc.waitDelivered(t, 1, "paused-0", "paused-1")
		waitFor[bool](b, `document.querySelector('`+rowSel(id)+`').dataset.state === 'active'`)
	})

	t.Run("send test", func(t *testing.T) {
		before := rc.tests()
		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Send a test event to siem"]`)))
		waitFor[bool](b, `document.querySelector('#conn-ok')?.textContent.includes('Test event delivered')`)
		if rc.tests() != before+1 {
			t.Errorf("the receiver saw %d test events, want %d", rc.tests(), before+1)
		}
	})

	t.Run("replay from a time", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Replay siem"]`)))
		waitFor[bool](b, `!document.querySelector('tr.replay-row').hidden && document.activeElement.type === 'datetime-local'`)
		checkAccessible(t, b, "connectors, replay form open")
		// Escape closes it and gives the focus back to its button.
		b.press("Escape", "Escape", "", 27)
		waitFor[bool](b, `document.querySelector('tr.replay-row').hidden && document.activeElement.getAttribute('aria-label') === 'Replay siem'`)
		b.pressEnter()
		waitFor[bool](b, `!document.querySelector('tr.replay-row').hidden && document.activeElement.type === 'datetime-local'`)
		b.shot("connectors-replay")
		// Ten minutes ago, as the user would pick it (local time).
		from := time.Now().Add(-10 * time.Minute)
		b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.activeElement.value = %q`, from.Local().Format("2006-01-02T15:04:05"))),
			chromedp.Click(chromedp.CSS(`.replay-form button[type=submit]`)))
		waitFor[bool](b, `document.querySelector('#conn-ok')?.textContent.includes('replays every event')`)
		rc.waitDelivered(t, 2, "fail-0", "fail-1", "fail-2", "paused-0", "paused-1")
		if rc.deliveries("ok-0") != 0 {
			t.Error("the replay ignored the action filter")
		}
		if eval[bool](b, `!document.querySelector('tr.replay-row').hidden`) {
			t.Error("the replay form stayed open")
		}
	})

	t.Run("a failing destination", func(t *testing.T) {
		rc.setDown(true)
		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Send a test event to siem"]`)))
		msg := waitFor[string](b, `document.querySelector('#conn-error')?.textContent`)
		if !strings.Contains(msg, "503") {
			t.Errorf("a failed test says %q: it should give the destination's answer", msg)
		}
		ingest(client.Record{ID: "down-0", Action: "LoginFailed", Type: "warn", UserID: "u-cyd", Occurred: time.Now().UTC()})
		lastErr := waitFor[string](b, `document.querySelector('`+rowSel(id)+` .error-text')?.textContent`)
		if !strings.Contains(lastErr, "503") {
			t.Errorf("last error %q does not give the destination's answer", lastErr)
		}
		state := waitFor[string](b, `document.querySelector('`+rowSel(id)+`').dataset.state !== 'active' && document.querySelector('`+rowSel(id)+`').dataset.state`)
		if state != "failing" {
			t.Errorf("state %q while the destination fails", state)
		}
		b.shot("connectors-failing")
		rc.setDown(false)
	})

	t.Run("phone width", func(t *testing.T) {
		b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		defer b.do(chromedp.EmulateViewport(1440, 900))
		b.do(chromedp.Reload())
		waitFor[bool](b, `!!document.querySelector('`+rowSel(id)+`')`)
		if overflow := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); overflow {
			t.Error("the connectors page scrolls sideways at 390 px (only the table may)")
		}
		b.shot("phone-connectors")
	})

	t.Run("a reader key is told what it needs", func(t *testing.T) {
		reader := inst.NewKey(t, tenancy.RoleReader, inst.Creds.ProjectID)
		b.signIn(inst.Creds.ProjectID, reader)
		waitFor[bool](b, `!!document.querySelector('#total-count')`)
		b.do(chromedp.Click(chromedp.CSS(`nav a[href="/connectors"]`)))
		msg := waitFor[string](b, `document.querySelector('#conn-error')?.textContent`)
		if !strings.Contains(msg, "writer or admin") {
			t.Errorf("a reader key sees %q", msg)
		}
		if eval[bool](b, `!document.querySelector('#create-title').closest('section').hidden`) {
			t.Error("the create form is offered to a key that may not create")
		}
		b.signIn(inst.Creds.ProjectID, inst.Creds.ManagementKey)
		waitFor[bool](b, `!!document.querySelector('#total-count')`)
		b.do(chromedp.Click(chromedp.CSS(`nav a[href="/connectors"]`)))
		waitFor[bool](b, `!!document.querySelector('`+rowSel(id)+`')`)
	})

	t.Run("delete", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Delete siem"]`)))
		waitFor[bool](b, `!document.querySelector('`+rowSel(id)+`') && document.querySelector('#conn-ok')?.textContent.includes('deleted')`)
		if status, _ := connectorAPI(t, inst, "GET", "/v1/mgmt/connectors/"+id, nil); status != http.StatusNotFound {
			t.Errorf("GET after delete: %d", status)
		}
	})
	b.checkNoProblems()
}
