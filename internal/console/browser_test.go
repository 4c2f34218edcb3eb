package console_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/audittrail/audittrail/client"
)

// The browser tests drive the real console in a headless Chromium against
// a real server (embedded store) filled with events, and compare what the
// page shows with what the API answers.

// browser is one headless Chromium driving the console at base.
type browser struct {
	t        *testing.T
	ctx      context.Context
	base     string // the server's root URL
	download string
	shots    string
	mu       sync.Mutex
	problems []string  // uncaught exceptions and CSP violations in the page
	renders  []float64 // API answer → results painted, per search
	searched []string  // the console URL of each search in renders
	doms     []float64 // API answer → DOM updated, per search
}

// page is what eval and waitFor drive: a *browser or a value embedding one.
type page interface{ br() *browser }

func (b *browser) br() *browser { return b }

// browserEnv is a browser on the console test server (env), filled with
// events by the test.
type browserEnv struct {
	*browser
	*env
	t *testing.T
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("AUDITTRAIL_INTEGRATION=1 but no Chromium: install it (apt-get install -y chromium)")
	return ""
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	skipUnlessIntegration(t)
	e := newEnv(t, envConfig{tailPoll: 100 * time.Millisecond, heartbeat: 2 * time.Second})
	b := &browserEnv{browser: startBrowser(t, e.srv.URL), env: e, t: t}
	// A tail's connection the test leaves open must not outlive it.
	t.Cleanup(func() { e.con.Close() })
	return b
}

func skipUnlessIntegration(t *testing.T) {
	t.Helper()
	if os.Getenv("AUDITTRAIL_INTEGRATION") != "1" {
		t.Skip("browser test: set AUDITTRAIL_INTEGRATION=1 to run it in headless Chromium")
	}
}

// startBrowser starts a headless Chromium for the console at base; it
// records the page's exceptions and errors, accepts its confirm() dialogs
// and saves downloads to a temporary directory.
func startBrowser(t *testing.T, base string) *browser {
	t.Helper()
	b := &browser{t: t, base: base}
	b.download = t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	b.shots = filepath.Join(filepath.Dir(file), "..", "..", "artifacts", "console")
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	b.ctx = ctx
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.download,
	}); err != nil {
		t.Fatal(err)
	}
	exceptions := chromedp.Events(ctx, cdpruntime.ExceptionThrown)
	// Log entries carry console.error calls and CSP violations.
	logEntries := chromedp.Events(ctx, cdplog.EntryAdded)
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.problem("exception: " + ev.ExceptionDetails.Text + " " + exceptionDescription(ev.ExceptionDetails))
		}
	}()
	go func() {
		for ev, err := range logEntries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.problem(fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}()
	// The settings and connectors pages confirm before a rotation or a
	// deletion: accept it.
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

func exceptionDescription(d *cdpruntime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

func (b *browser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

func (b *browser) checkNoProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		// A refused request logs "Failed to load resource" for 401/429
		// answers the test provokes on purpose.
		if strings.Contains(p, "Failed to load resource") {
			continue
		}
		b.t.Errorf("page problem: %s", p)
	}
	b.problems = nil
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func eval[T any](p page, js string) T {
	b := p.br()
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy and returns it.
func waitFor[T any](p page, js string) T {
	b := p.br()
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 25*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](js, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v", js, err)
	}
	return v
}

func (b *browser) shot(name string) { b.capture(name, chromedp.FullScreenshot(100)) }

// shotViewport shows what the user sees, for fixed panels a full-page
// capture would cut.
func (b *browser) shotViewport(name string) { b.capture(name, chromedp.CaptureScreenshot()) }

func (b *browser) capture(name string, action chromedp.Action[[]byte]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, action)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// press sends one real key press to the focused element: keydown with its
// text, then keyup. (chromedp.KeyEvent sends the character as an event of
// its own, which a page's preventDefault on keydown cannot cancel, unlike
// a real keyboard's.)
func (b *browser) press(key, code, text string, virtualKeyCode int64) {
	b.t.Helper()
	for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
		p := input.DispatchKeyEventParams{Type: typ, Key: key, Code: code, WindowsVirtualKeyCode: virtualKeyCode, NativeVirtualKeyCode: virtualKeyCode}
		if typ == input.DispatchKeyEventTypeKeyDown {
			p.Text = text
		}
		if _, err := chromedp.Call(b.ctx, input.DispatchKeyEvent, p); err != nil {
			b.t.Fatalf("press %s: %v", key, err)
		}
	}
}

// pressEnter is press for Enter.
func (b *browser) pressEnter() { b.press("Enter", "Enter", "\r", 13) }

func (b *browser) signIn(projectID, key string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+"/"), chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`), chromedp.Reload())
	b.do(chromedp.WaitVisible(chromedp.ID("signin-project")),
		chromedp.SendKeys(chromedp.ID("signin-project"), projectID),
		chromedp.SendKeys(chromedp.ID("signin-key"), key),
		chromedp.Click(chromedp.CSS(".signin-card button[type=submit]")))
}

// results waits for the search to finish and returns the total the page
// shows and the ids of its rows, in order.
func (b *browser) results() (int, []string) {
	b.t.Helper()
	raw := waitFor[string](b, `(() => {
		const t = document.querySelector('#total-count');
		const table = document.querySelector('table.results');
		if (!t || !table || table.hasAttribute('aria-busy')) return '';
		return JSON.stringify({total: Number(t.dataset.total), ids: [...document.querySelectorAll('table.results tbody tr[data-id]')].map(r => r.dataset.id)});
	})()`)
	var r struct {
		Total int
		IDs   []string
	}
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		b.t.Fatal(err)
	}
	if d := eval[float64](b, `(performance.getEntriesByName('audit-render').at(-1) || {duration: -1}).duration`); d >= 0 {
		b.renders = append(b.renders, d)
		b.searched = append(b.searched, eval[string](b, `location.pathname + location.search`))
		b.doms = append(b.doms, eval[float64](b, `(performance.getEntriesByName('audit-dom').at(-1) || {duration: -1}).duration`))
	}
	return r.Total, r.IDs
}

// open loads a console URL (a bookmark) and returns its results.
func (b *browser) open(pathAndQuery string) (int, []string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + pathAndQuery))
	return b.results()
}

// apiSearch is what the API answers for the same search.
func (b *browserEnv) apiSearch(o client.SearchOptions) (int, []string) {
	b.t.Helper()
	recs, total, err := b.client().Audit().SearchAll(context.Background(), o)
	if err != nil {
		b.t.Fatal(err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return total, ids
}

// seed fills the store with a day of varied events and returns them.
func seed(t *testing.T, e *env) []client.Record {
	t.Helper()
	now := time.Now().UTC()
	users := []string{"u-ada", "u-bob", "u-cyd", "u-dee"}
	logins := map[string]string{"u-ada": "ada@example.com", "u-bob": "bob@example.com", "u-cyd": "cyd@example.org", "u-dee": "dee@example.net"}
	devices := []string{"Desktop", "Mobile", "Bot", "Tablet"}
	methods := []string{"otp", "password", "oauth", "magiclink"}
	geos := []string{"US", "IL", "DE", "FR"}
	agents := []string{"Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0", "Mozilla/5.0 (iPhone) Safari/604.1", "curl/8.5"}
	var recs []client.Record
	for i := range 240 {
		u := users[i%len(users)]
		r := client.Record{
			ID:            fmt.Sprintf("e%03d", i),
			UserID:        u,
			ActorID:       "actor-" + u,
			Action:        "LoginSucceed",
			Type:          "info",
			Occurred:      now.Add(-23*time.Hour + time.Duration(i)*5*time.Minute + time.Duration(i%7)*time.Second),
			Device:        devices[i%len(devices)],
			Method:        methods[(i/2)%len(methods)],
			Geo:           geos[(i/3)%len(geos)],
			RemoteAddress: fmt.Sprintf("203.0.113.%d", i%6),
			LoginIDs:      []string{logins[u]},
			Data: map[string]any{"request_details": map[string]any{
				"method": "POST", "host": "auth.example.com", "url": "https://auth.example.com/v1/auth/otp/verify",
				"headers": map[string]any{"http": map[string]any{"origin": "https://app.example.com", "user-agent": agents[i%len(agents)]}},
			}},
		}
		switch i % 5 {
		case 0:
			r.Tenants = []string{"t-acme"}
		case 1:
			r.Tenants = []string{"t-globex"}
		case 2:
			r.Tenants = []string{"t-acme", "t-globex"}
		}
		switch i % 8 {
		case 1, 5:
			r.Action, r.Type = "LoginFailed", "warn"
			r.Data["error_message"] = "wrong code"
		case 3:
			r.Action = "UserModified"
			r.Data["Change"] = map[string]any{"added_roles": []any{"admin"}, "display_name": map[string]any{"old": "Ada", "new": "Ada L."}, "custom_attribute_plan": "pro"}
		case 6:
			r.Action, r.Type = "SCIMEvent", "error"
			r.Data["scim_action"] = "UserPatched"
			r.Data["Change"] = map[string]any{"removed_roles": []any{"viewer"}}
		}
		recs = append(recs, r)
	}
	for i := range 3 {
		recs = append(recs, client.Record{ID: fmt.Sprintf("c%d", i), Level: "company", Action: "ManagementKeyCreated", Type: "info",
			ActorID: "K-admin", Occurred: now.Add(-time.Duration(i+1) * time.Hour)})
	}
	e.ingest(recs...)
	return recs
}

func TestConsoleInBrowser(t *testing.T) {
	b := newBrowserEnv(t)
	seed(t, b.env)
	day := func(o client.SearchOptions) client.SearchOptions {
		if o.From.IsZero() {
			o.From = time.Now().Add(-24 * time.Hour)
		}
		if o.Size == 0 {
			o.Size = 50
		}
		return o
	}

	t.Run("wrong key and unknown project", func(t *testing.T) {
		b.signIn(b.creds.ProjectID, "K00000000000000000000000000.wrong")
		msg := waitFor[string](b, `document.querySelector('#signin-error')?.textContent`)
		if !strings.Contains(msg, "not accepted") {
			t.Errorf("wrong key: %q", msg)
		}
		b.shot("signin-wrong-key")
		b.signIn("Pnope", b.creds.ManagementKey)
		msg = waitFor[string](b, `document.querySelector('#signin-error')?.textContent`)
		if !strings.Contains(msg, "Unknown project") {
			t.Errorf("unknown project: %q", msg)
		}
	})

	t.Run("sign in by keyboard alone and read the total", func(t *testing.T) {
		b.do(chromedp.Navigate(b.base+"/"), chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`), chromedp.Reload())
		waitFor[bool](b, `document.activeElement && document.activeElement.id === 'signin-project'`)
		checkAccessible(t, b, "sign-in")
		// The project field has the focus: type, Tab, type, Enter.
		b.do(chromedp.KeyEvent(b.creds.ProjectID), chromedp.KeyEvent("\t"), chromedp.KeyEvent(b.creds.ManagementKey), chromedp.KeyEvent("\r"))
		total, ids := b.results()
		wantTotal, wantIDs := b.apiSearch(day(client.SearchOptions{}))
		if total != wantTotal || !slices.Equal(ids, wantIDs) {
			t.Fatalf("page: %d %v\napi:  %d %v", total, ids, wantTotal, wantIDs)
		}
		if stored := eval[string](b, `sessionStorage.getItem('audittrail.session')`); !strings.Contains(stored, b.creds.ProjectID) {
			t.Errorf("session storage holds %q", stored)
		}
		if local := eval[int](b, `localStorage.length`); local != 0 {
			t.Errorf("localStorage has %d entries: credentials must stay in sessionStorage", local)
		}
		waitFor[bool](b, `!!document.querySelector('.hist-svg')`)
		b.shot("audit")
		checkAccessible(t, b, "audit")
		// Times show in local time, with UTC on hover.
		utc := eval[string](b, `document.querySelector('table.results tbody tr time').title`)
		wantUTC := time.UnixMilli(eval[int64](b, `Date.parse(document.querySelector('table.results tbody tr time').dateTime)`)).UTC().Format("2006-01-02 15:04:05.000") + " UTC"
		if utc != wantUTC {
			t.Errorf("time title %q, want %q", utc, wantUTC)
		}
		// Actions are suggested from the known ones.
		suggested := eval[[]string](b, `[...document.querySelectorAll('[data-filter="action"] datalist option')].map((o) => o.value)`)
		for _, want := range []string{"LoginFailed", "LoginSucceed", "UserModified", "SCIMEvent"} {
			if !slices.Contains(suggested, want) {
				t.Errorf("action suggestions %v lack %s", suggested, want)
			}
		}
		b.do(chromedp.Click(chromedp.CSS(".more-filters summary")))
		checkAccessible(t, b, "audit, every filter shown")
	})

	t.Run("keyboard: / jumps to the search, Enter runs it", func(t *testing.T) {
		b.open("/audit")
		b.do(chromedp.Focus(chromedp.CSS(`div.table-wrap`)))
		b.press("/", "Slash", "/", 191)
		if f := eval[string](b, `document.activeElement.id`); f != "f-text" {
			t.Fatalf("/ moved the focus to %q", f)
		}
		b.do(chromedp.KeyEvent("wrong"))
		if v := eval[string](b, `document.activeElement.value`); v != "wrong" {
			t.Fatalf("typed into the search field: %q", v)
		}
		b.do(chromedp.KeyEvent("\r"))
		waitFor[bool](b, `location.search.includes('q=wrong')`)
		total, ids := b.results()
		wantTotal, wantIDs := b.apiSearch(day(client.SearchOptions{Text: "wrong"}))
		if total != wantTotal || !slices.Equal(ids, wantIDs) || total == 0 {
			t.Errorf("page %d %v\napi %d %v", total, ids, wantTotal, wantIDs)
		}
	})

	t.Run("time to interactive", func(t *testing.T) {
		b.do(chromedp.Navigate(b.base + "/audit"))
		b.results()
		m := eval[map[string]float64](b, `(() => {
			const nav = performance.getEntriesByType('navigation')[0];
			return {domInteractive: nav.domInteractive, domContentLoaded: nav.domContentLoadedEventEnd,
				consoleInteractive: performance.getEntriesByName('console-interactive')[0].startTime,
				firstResults: performance.getEntriesByName('audit-rendered')[0].startTime};
		})()`)
		t.Logf("page load: DOM interactive %.0f ms, DOMContentLoaded %.0f ms, console interactive %.0f ms, first results painted %.0f ms",
			m["domInteractive"], m["domContentLoaded"], m["consoleInteractive"], m["firstResults"])
		// The goal of the issue: interactive within a second.
		if m["consoleInteractive"] > 1000 {
			t.Errorf("the console became interactive after %.0f ms (goal: 1 s)", m["consoleInteractive"])
		}
		writeMetric(t, b.shots, "load", m)
	})

	t.Run("a page of 1000 rows", func(t *testing.T) {
		now := time.Now().UTC()
		var recs []client.Record
		for i := range 1200 {
			recs = append(recs, client.Record{ID: fmt.Sprintf("big%04d", i), UserID: fmt.Sprintf("u-big-%d", i%50), Action: "UserRefresh",
				Type: "info", Occurred: now.Add(-time.Duration(i) * 2 * time.Second), Tenants: []string{"t-big"},
				Data: map[string]any{"n": i}})
		}
		b.ingest(recs...)
		_, wantIDs := b.apiSearch(client.SearchOptions{Tenants: []string{"t-big"}, From: now.Add(-time.Hour)})
		if len(wantIDs) < 1000 {
			t.Fatalf("the API has %d events of t-big", len(wantIDs))
		}
		// The page is windowed: the rows in the DOM are those in view plus
		// a buffer, each with its aria-rowindex (the header row is 1).
		// Opened several times: the goal is checked on the median.
		var firsts, alls, doms []float64
		for range 5 {
			total, ids := b.open("/audit?tenant=t-big&size=1000&range=1h")
			if total != 1200 || len(ids) == 0 || len(ids) >= 1000 {
				t.Fatalf("%d events, %d rows in the DOM; want 1200 and a window of the 1000-row page", total, len(ids))
			}
			if !slices.Equal(ids, wantIDs[:len(ids)]) {
				t.Fatalf("the window's rows %v are not the API's first %d", ids, len(ids))
			}
			if n := eval[string](b, `document.querySelector('table.results').getAttribute('aria-rowcount')`); n != "1001" {
				t.Fatalf("aria-rowcount %q, want 1001 (header + 1000 rows)", n)
			}
			firsts = append(firsts, b.renders[len(b.renders)-1])
			b.renders = b.renders[:len(b.renders)-1] // reported apart from the 50-row pages
			b.searched = b.searched[:len(b.searched)-1]
			doms = append(doms, b.doms[len(b.doms)-1])
			b.doms = b.doms[:len(b.doms)-1]
			alls = append(alls, eval[float64](b, `performance.getEntriesByName('audit-render-all').at(-1).duration`))
		}
		med := func(v []float64) float64 { v = slices.Clone(v); sort.Float64s(v); return v[len(v)/2] }
		dom, d, all := med(doms), med(firsts), med(alls)
		t.Logf("1000 rows, median of %d: API answer → rows in the DOM %.0f ms, → first screen painted %.0f ms, → every row in view painted (table no longer busy) %.0f ms; all: %.0f", len(alls), dom, d, all, alls)
		writeMetric(t, b.shots, "render-1000", map[string]any{"domMs": dom, "firstScreenPaintedMs": d, "allRowsPaintedMs": all, "allRowsPaintedEachMs": alls})
		// The goal holds for this page too.
		if all > 200 {
			t.Errorf("a 1000-row page is rendered (median) %.0f ms after the API's answer (goal: 200 ms)", all)
		}

		// Keyboard: Tab goes from row to row past the first window (rows
		// are added as the focused one scrolls into view), focus kept.
		b.do(chromedp.Focus(chromedp.CSS(`table.results tr[aria-rowindex="2"] button.linklike`)))
		for k := 1; k <= 80; k++ {
			b.do(chromedp.KeyEvent("\t"))
			// While the window adds rows the focused row is re-rendered and
			// the focus may sit on no row for a moment (seen on a loaded
			// machine); it must be on the next row once that settles, and
			// the next Tab is pressed only then.
			want := strconv.Itoa(2 + k)
			got := "none"
			for deadline := time.Now().Add(2 * time.Second); got != want && time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
				got = eval[string](b, `document.activeElement?.closest('tr')?.getAttribute('aria-rowindex') || 'none'`)
			}
			if got != want {
				t.Fatalf("after %d Tabs from the first row the focus is on row %s, want row %s", k, got, want)
			}
		}
		if id := eval[string](b, `document.activeElement.closest('tr').dataset.id`); id != wantIDs[80] {
			t.Fatalf("the 81st row holds %s, want %s", id, wantIDs[80])
		}

		// Scrolling to the bottom shows the last row, with the API's 1000th
		// id, and every row in the DOM sits at its place in the page.
		b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.documentElement.scrollHeight)`))
		waitFor[bool](b, `(() => {
			const tr = document.querySelector('table.results tr[aria-rowindex="1001"]');
			if (!tr) return false;
			const r = tr.getBoundingClientRect();
			// At the bottom still: the page did not jump back while rows
			// were swapped.
			return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight + 1 &&
				scrollY + innerHeight >= document.documentElement.scrollHeight - 2;
		})()`)
		raw := eval[string](b, `JSON.stringify([...document.querySelectorAll('table.results tbody tr[data-id]')].map((tr) => [Number(tr.getAttribute('aria-rowindex')), tr.dataset.id]))`)
		var rows [][2]any
		if err := json.Unmarshal([]byte(raw), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 || len(rows) >= 1000 {
			t.Fatalf("%d rows in the DOM at the bottom", len(rows))
		}
		for i, r := range rows {
			idx := int(r[0].(float64))
			if idx < 2 || idx > 1001 || r[1].(string) != wantIDs[idx-2] || (i > 0 && idx != int(rows[i-1][0].(float64))+1) {
				t.Fatalf("row %d at the bottom: aria-rowindex %d, id %v (want consecutive rows matching the API)", i, idx, r[1])
			}
		}
		if last := rows[len(rows)-1]; int(last[0].(float64)) != 1001 || last[1].(string) != wantIDs[999] {
			t.Fatalf("the last row is %v, want 1001 %s", last, wantIDs[999])
		}
		// Keyboard: the last row opens with Enter on its action, and the
		// focus comes back to it when the panel closes.
		b.do(chromedp.Focus(chromedp.CSS(`table.results tr[aria-rowindex="1001"] button.linklike`)))
		b.pressEnter()
		waitFor[bool](b, `!document.querySelector('#detail').hidden && document.querySelector('#detail').textContent.includes(`+strconv.Quote(wantIDs[999])+`)`)
		b.do(chromedp.KeyEvent("\x1b"))
		waitFor[bool](b, `document.activeElement === document.querySelector('table.results tr[aria-rowindex="1001"] button.linklike')`)
		b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))

		// Live tail on a windowed page: the new event becomes row 2 and the
		// API's first row moves to row 3; the page stays at 1000 rows.
		b.do(chromedp.Click(chromedp.CSS(`button.toggle`)))
		waitFor[bool](b, `document.querySelector('.tail-info').textContent.includes('waiting')`)
		b.ingest(client.Record{ID: "big-live", UserID: "u-big-live", Action: "UserRefresh", Type: "info", Occurred: time.Now().UTC(), Tenants: []string{"t-big"}})
		waitFor[bool](b, `!!document.querySelector('table.results tr.fresh[data-id="big-live"][aria-rowindex="2"]')`)
		if next := eval[string](b, `document.querySelector('table.results tr[aria-rowindex="3"]').dataset.id`); next != wantIDs[0] {
			t.Errorf("row 3 after a live event is %s, want %s", next, wantIDs[0])
		}
		if n := eval[string](b, `document.querySelector('table.results').getAttribute('aria-rowcount')`); n != "1001" {
			t.Errorf("aria-rowcount %q after a live event, want 1001 (the page keeps 1000 rows)", n)
		}
		b.do(chromedp.Click(chromedp.CSS(`button.toggle`)))
	})

	t.Run("filters", func(t *testing.T) {
		now := time.Now()
		for _, c := range []struct {
			query string
			opts  client.SearchOptions
		}{
			{"user=u-ada", client.SearchOptions{UserIDs: []string{"u-ada"}}},
			{"user=u-ada&user=u-bob", client.SearchOptions{UserIDs: []string{"u-ada", "u-bob"}}},
			{"action=LoginFailed", client.SearchOptions{Actions: []string{"LoginFailed"}}},
			{"exclude=LoginSucceed&exclude=LoginFailed", client.SearchOptions{ExcludedActions: []string{"LoginSucceed", "LoginFailed"}}},
			{"actor=actor-u-cyd", client.SearchOptions{ActorIDs: []string{"actor-u-cyd"}}},
			{"device=Mobile&device=Bot", client.SearchOptions{Devices: []string{"Mobile", "Bot"}}},
			{"method=otp", client.SearchOptions{Methods: []string{"otp"}}},
			{"country=IL", client.SearchOptions{Geos: []string{"IL"}}},
			{"ip=203.0.113.3", client.SearchOptions{RemoteAddresses: []string{"203.0.113.3"}}},
			{"login=bob%40example.com", client.SearchOptions{LoginIDs: []string{"bob@example.com"}}},
			{"tenant=t-acme", client.SearchOptions{Tenants: []string{"t-acme"}}},
			{"notenant=1", client.SearchOptions{NoTenants: true}},
			{"tenant=t-globex&notenant=1", client.SearchOptions{Tenants: []string{"t-globex"}, NoTenants: true}},
			{"q=chrome", client.SearchOptions{Text: "chrome"}},
			{"q=bob+wrong", client.SearchOptions{Text: "bob wrong"}},
			{"level=company", client.SearchOptions{Levels: []client.Level{"company"}}},
			{"level=project&action=UserModified", client.SearchOptions{Levels: []client.Level{"project"}, Actions: []string{"UserModified"}}},
			{"range=6h", client.SearchOptions{From: now.Add(-6 * time.Hour)}},
			{"range=custom&from=" + fmt.Sprint(now.Add(-10*time.Hour).UnixMilli()) + "&to=" + fmt.Sprint(now.Add(-8*time.Hour).UnixMilli()),
				client.SearchOptions{From: now.Add(-10 * time.Hour).Truncate(time.Millisecond), To: now.Add(-8 * time.Hour).Truncate(time.Millisecond)}},
		} {
			total, ids := b.open("/audit?" + c.query)
			wantTotal, wantIDs := b.apiSearch(day(c.opts))
			if total != wantTotal || !slices.Equal(ids, wantIDs) {
				t.Errorf("%s: page %d %v\napi %d %v", c.query, total, ids, wantTotal, wantIDs)
			}
			if wantTotal == 0 {
				t.Errorf("%s: the seed data has no match, so the check proves nothing", c.query)
			}
		}
		b.shot("audit-filtered")
	})

	t.Run("filters typed into the bar go into the URL", func(t *testing.T) {
		b.open("/audit")
		b.do(chromedp.Click(chromedp.CSS(".more-filters summary")),
			chromedp.SendKeys(chromedp.CSS(`[data-filter="action"] input`), "LoginFailed\r"),
			chromedp.SendKeys(chromedp.CSS(`[data-filter="country"] input`), "US,DE\r"),
			chromedp.Click(chromedp.CSS(`#f-dev-Mobile`)),
			chromedp.SendKeys(chromedp.ID("f-text"), "wrong"),
			chromedp.SetValue(chromedp.ID("f-range"), "7d"),
			chromedp.Click(chromedp.CSS(`.filter-bar button[type=submit]`)))
		loc := waitFor[string](b, `location.search.includes('action=LoginFailed') && location.search`)
		for _, want := range []string{"country=US", "country=DE", "device=Mobile", "q=wrong", "range=7d"} {
			if !strings.Contains(loc, want) {
				t.Errorf("URL %s lacks %s", loc, want)
			}
		}
		total, ids := b.results()
		wantTotal, wantIDs := b.apiSearch(day(client.SearchOptions{Actions: []string{"LoginFailed"}, Geos: []string{"US", "DE"},
			Devices: []string{"Mobile"}, Text: "wrong", From: time.Now().Add(-7 * 24 * time.Hour)}))
		if total != wantTotal || !slices.Equal(ids, wantIDs) || total == 0 {
			t.Errorf("page %d %v\napi %d %v", total, ids, wantTotal, wantIDs)
		}
		// The bookmark gives the same search in a fresh page.
		total2, ids2 := b.open("/audit" + loc)
		if total2 != total || !slices.Equal(ids2, ids) {
			t.Errorf("bookmark: %d %v, want %d %v", total2, ids2, total, ids)
		}
		// The chips came back from the URL.
		if n := eval[int](b, `document.querySelectorAll('[data-filter="country"] .chip').length`); n != 2 {
			t.Errorf("%d country chips after reload, want 2", n)
		}
		b.shot("audit-filter-bar")
	})

	t.Run("page through results", func(t *testing.T) {
		total, first := b.open("/audit?size=25")
		wantTotal, want0 := b.apiSearch(day(client.SearchOptions{Size: 25}))
		if total != wantTotal || !slices.Equal(first, want0) {
			t.Fatalf("page 1: %d %v, want %d %v", total, first, wantTotal, want0)
		}
		b.do(chromedp.Click(chromedp.CSS(`nav.pager button:last-of-type`)))
		waitFor[bool](b, `location.search.includes('page=1')`)
		_, second := b.results()
		_, want1 := b.apiSearch(day(client.SearchOptions{Size: 25, Page: 1}))
		if !slices.Equal(second, want1) || slices.Equal(second, first) {
			t.Fatalf("page 2: %v, want %v", second, want1)
		}
		info := eval[string](b, `document.querySelector('.page-info').textContent`)
		if !strings.Contains(info, "26–50") {
			t.Errorf("page info %q", info)
		}
		// Back returns to the first page.
		b.do(chromedp.NavigateBack())
		_, back := b.results()
		if !slices.Equal(back, first) {
			t.Errorf("after Back: %v, want %v", back, first)
		}
	})

	t.Run("histogram narrows the range", func(t *testing.T) {
		b.open("/audit?range=24h")
		bars := waitFor[int](b, `document.querySelectorAll('.hist-svg .bar').length`)
		if bars < 90 || bars > 120 {
			t.Errorf("%d bars for 24 hours", bars)
		}
		// The bars add up to the total.
		sum := eval[int](b, `[...document.querySelectorAll('.hist-legend li')].reduce((s, li) => s + Number(li.textContent.replace(/[^0-9]/g, '')), 0)`)
		total, _ := b.results()
		if sum != total && typesHonoured(t, b.env) {
			t.Errorf("legend counts add to %d, total %d", sum, total)
		}
		// The fullest bar, and how many events its title says it holds.
		fullest := `(() => {
			const bars = [...document.querySelectorAll('.hist-svg .bar')];
			const count = (g) => Number(g.querySelector('title').textContent.match(/: ([0-9,]+) \(/)[1].replaceAll(',', ''));
			const best = bars.reduce((a, g) => count(g) > count(a) ? g : a);
			return [Number(best.dataset.index), count(best)];
		})()`
		best := eval[[]int](b, fullest)
		// A click on it narrows the range to that bar: exactly its events.
		b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('.hist-svg .bar[data-index="%d"] .hit').dispatchEvent(new MouseEvent('click', {bubbles: true}))`, best[0])))
		loc := waitFor[string](b, `location.search.includes('range=custom') && location.search`)
		narrowed, _ := b.results()
		if narrowed != best[1] || narrowed == 0 || narrowed >= total {
			t.Errorf("narrowed to %s: %d events of %d; the bar held %d", loc, narrowed, total, best[1])
		}

		// By keyboard: Tab reaches the chart, arrows pick a bar, Enter narrows.
		b.open("/audit?range=24h")
		waitFor[int](b, `document.querySelectorAll('.hist-svg .bar').length`)
		best = eval[[]int](b, fullest)
		if tabbable := eval[int](b, `document.querySelector('.hist-chart').tabIndex`); tabbable != 0 {
			t.Errorf("the chart's tabIndex is %d: the keyboard cannot reach it", tabbable)
		}
		b.do(chromedp.Focus(chromedp.CSS(`.hist-chart`)), chromedp.KeyEvent(kb.Home))
		for range best[0] {
			b.do(chromedp.KeyEvent(kb.ArrowRight))
		}
		readout := eval[string](b, `document.querySelector('.hist-readout').textContent`)
		if !strings.Contains(readout, fmt.Sprintf(": %d events", best[1])) {
			t.Errorf("readout %q for a bar of %d events", readout, best[1])
		}
		b.do(chromedp.KeyEvent(kb.Enter))
		waitFor[bool](b, `location.search.includes('range=custom')`)
		if byKey, _ := b.results(); byKey != best[1] {
			t.Errorf("Enter on the bar narrowed to %d events, want %d", byKey, best[1])
		}
	})

	t.Run("event detail", func(t *testing.T) {
		_, ids := b.open("/audit?action=UserModified")
		b.do(chromedp.Click(chromedp.CSS(`table.results tbody tr:first-child button.linklike`)))
		waitFor[bool](b, `!document.querySelector('#detail').hidden`)
		text := eval[string](b, `document.querySelector('#detail').textContent`)
		for _, want := range []string{ids[0], "Change", "Before", "After", "roles", "+ admin", "display name", "Ada L.", "Request", "auth.example.com", "User-agent", "Raw JSON", "request_details"} {
			if !strings.Contains(text, want) {
				t.Errorf("detail lacks %q", want)
			}
		}
		raw := eval[string](b, `document.querySelector('#detail pre.raw').textContent`)
		var ev map[string]any
		if err := json.Unmarshal([]byte(raw), &ev); err != nil || ev["id"] != ids[0] {
			t.Errorf("raw JSON %q: %v", raw, err)
		}
		if focused := eval[string](b, `document.activeElement.id`); focused != "detail-title" {
			t.Errorf("focus on %q after opening, want the panel's title", focused)
		}
		b.shotViewport("detail")
		checkAccessible(t, b, "event detail")
		b.do(chromedp.KeyEvent("\x1b")) // Escape closes and gives focus back
		waitFor[bool](b, `document.querySelector('#detail').hidden`)
		if cls := eval[string](b, `document.activeElement.className`); cls != "linklike" {
			t.Errorf("focus after closing on %q", cls)
		}
		// By keyboard alone: Tab to the next row's action, Enter opens it.
		b.do(chromedp.KeyEvent("\t"))
		b.do(chromedp.KeyEvent("\r"))
		waitFor[bool](b, `!document.querySelector('#detail').hidden`)
		if id := eval[string](b, `document.querySelector('#detail .fields dd').textContent`); id == ids[0] || !slices.Contains(ids, id) {
			t.Errorf("keyboard opened %q, want the second row", id)
		}
		b.do(chromedp.KeyEvent("\x1b"))
		waitFor[bool](b, `document.querySelector('#detail').hidden`)

		// A value in the detail becomes a filter.
		b.do(chromedp.Click(chromedp.CSS(`table.results tbody tr:first-child button.linklike`)))
		waitFor[bool](b, `!document.querySelector('#detail').hidden`)
		b.do(chromedp.Click(chromedp.CSS(`#detail button[aria-label^="Filter by country"]`)))
		loc := waitFor[string](b, `location.search.includes('country=') && location.search`)
		if !strings.Contains(loc, "action=UserModified") {
			t.Errorf("filter from the detail dropped the others: %s", loc)
		}
		total, _ := b.results()
		q, _ := url.ParseQuery(strings.TrimPrefix(loc, "?"))
		wantTotal, _ := b.apiSearch(day(client.SearchOptions{Actions: []string{"UserModified"}, Geos: q["country"]}))
		if total != wantTotal || total == 0 {
			t.Errorf("after filtering by country %v: %d, want %d", q["country"], total, wantTotal)
		}
	})

	t.Run("SCIM change as before and after", func(t *testing.T) {
		_, ids := b.open("/audit?action=SCIMEvent")
		if len(ids) == 0 {
			t.Fatal("no SCIMEvent in the seed")
		}
		b.do(chromedp.Click(chromedp.CSS(`table.results tbody tr:first-child button.linklike`)))
		waitFor[bool](b, `!document.querySelector('#detail').hidden`)
		rows := eval[[][]string](b, `[...document.querySelectorAll('#detail table.change tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent.trim()))`)
		if len(rows) != 1 || rows[0][0] != "roles" || rows[0][1] != "− viewer" || rows[0][2] != "—" {
			t.Errorf("SCIM change rows %q, want roles | − viewer | —", rows)
		}
		if !strings.Contains(eval[string](b, `document.querySelector('#detail').textContent`), "SCIM action: UserPatched") {
			t.Error("the detail does not name the SCIM action")
		}
		// The user change lists every field: added roles, a name's old and
		// new value, a custom attribute.
		b.do(chromedp.KeyEvent("\x1b"))
		b.open("/audit?action=UserModified")
		b.do(chromedp.Click(chromedp.CSS(`table.results tbody tr:first-child button.linklike`)))
		waitFor[bool](b, `!document.querySelector('#detail').hidden`)
		rows = eval[[][]string](b, `[...document.querySelectorAll('#detail table.change tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent.trim()))`)
		want := map[string][2]string{"roles": {"—", "+ admin"}, "display name": {"Ada", "Ada L."}, "custom attribute: plan": {"—", "pro"}}
		for _, r := range rows {
			if w, ok := want[r[0]]; !ok || r[1] != w[0] || r[2] != w[1] {
				t.Errorf("change row %q, want %v", r, w)
			}
		}
		if len(rows) != len(want) {
			t.Errorf("%d change rows, want %d", len(rows), len(want))
		}
		b.do(chromedp.KeyEvent("\x1b"))
	})

	t.Run("live tail", func(t *testing.T) {
		b.open("/audit?action=LoginFailed")
		b.do(chromedp.Click(chromedp.CSS(`button.toggle`)))
		waitFor[bool](b, `document.querySelector('.tail-info').textContent.includes('waiting')`)
		now := time.Now().UTC()
		b.ingest(client.Record{ID: "live-skip", Action: "LoginSucceed", Type: "info", UserID: "u-live", Occurred: now},
			client.Record{ID: "live-1", Action: "LoginFailed", Type: "warn", UserID: "u-live", Occurred: now},
			// Stamped in the past: a tail by time would miss it.
			client.Record{ID: "live-2", Action: "LoginFailed", Type: "warn", UserID: "u-live", Occurred: now.Add(-2 * time.Hour)})
		waitFor[bool](b, `!!document.querySelector('tr[data-id="live-1"]') && !!document.querySelector('tr[data-id="live-2"]')`)
		if eval[bool](b, `!!document.querySelector('tr[data-id="live-skip"]')`) {
			t.Error("a non-matching event reached the table")
		}
		b.shot("live-tail")
		// Paused: new events wait, then come in on resume.
		b.do(chromedp.Click(chromedp.CSS(`.tools button[aria-pressed]:not(.toggle)`)))
		waitFor[bool](b, `document.querySelector('.tail-info').textContent.includes('Paused')`)
		b.ingest(client.Record{ID: "live-3", Action: "LoginFailed", Type: "warn", UserID: "u-live", Occurred: time.Now().UTC()})
		waitFor[bool](b, `document.querySelector('.tail-info').textContent.includes('1 new waiting')`)
		if eval[bool](b, `!!document.querySelector('tr[data-id="live-3"]')`) {
			t.Error("an event showed while paused")
		}
		b.do(chromedp.Click(chromedp.CSS(`.tools button[aria-pressed]:not(.toggle)`)))
		waitFor[bool](b, `!!document.querySelector('tr[data-id="live-3"]')`)
		if n := eval[int](b, `document.querySelectorAll('tr[data-id^="live-"]').length`); n != 3 {
			t.Errorf("%d live rows, want 3 (each once)", n)
		}
		b.do(chromedp.Click(chromedp.CSS(`button.toggle`)))
		waitFor[bool](b, `document.querySelector('button.toggle').getAttribute('aria-pressed') === 'false'`)
	})

	t.Run("export", func(t *testing.T) {
		b.open("/audit?tenant=t-acme&range=7d")
		_, wantIDs := b.apiSearch(client.SearchOptions{Tenants: []string{"t-acme"}, From: time.Now().Add(-7 * 24 * time.Hour)})
		for _, format := range []string{"ndjson", "csv"} {
			before, _ := filepath.Glob(filepath.Join(b.download, "*."+format))
			b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.tools button:nth-last-of-type(%d)`, map[string]int{"csv": 2, "ndjson": 1}[format]))))
			waitFor[bool](b, `document.querySelector('.export-progress').textContent.includes('Done')`)
			file := waitForFile(t, b.download, format, len(before))
			ids := exportedIDs(t, file, format)
			if !slices.Equal(ids, wantIDs) {
				t.Errorf("%s export: %d ids, want the API's %d\n%v\n%v", format, len(ids), len(wantIDs), ids, wantIDs)
			}
			progress := eval[string](b, `document.querySelector('.export-progress progress').value + '/' + document.querySelector('.export-progress progress').max`)
			if progress != fmt.Sprintf("%d/%d", len(wantIDs), len(wantIDs)) {
				t.Errorf("%s progress %s, want %d of %d", format, progress, len(wantIDs), len(wantIDs))
			}
		}
		b.shot("export")
	})

	t.Run("settings", func(t *testing.T) {
		b.do(chromedp.Navigate(b.base + "/settings"))
		waitFor[bool](b, `!!document.querySelector('#keys-title') && document.querySelectorAll('.settings tbody tr').length > 1`)
		b.do(chromedp.SendKeys(chromedp.ID("k-name"), "console reader"),
			chromedp.SetValue(chromedp.ID("k-role"), "reader"),
			chromedp.Click(chromedp.CSS(`.grid-form button[type=submit]`)))
		secret := waitFor[string](b, `!document.querySelector('.secret-box').hidden && document.querySelector('.secret-box input').value`)
		keys, err := b.client().Keys().List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var created *client.Key
		for i := range keys {
			if keys[i].Name == "console reader" {
				created = &keys[i]
			}
		}
		if created == nil || !strings.HasPrefix(secret, created.ID+".") {
			t.Fatalf("created key %+v, secret shown %q", created, secret)
		}
		// The shown secret works.
		rc, err := client.New(client.Config{BaseURL: b.base, ProjectID: b.creds.ProjectID, ManagementKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Audit().Search(context.Background(), client.SearchOptions{Size: 1}); err != nil {
			t.Errorf("the new key does not work: %v", err)
		}
		b.shot("settings")
		// Rotate it: a new secret, the old one refused.
		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Rotate key console reader"]`)))
		rotated := waitFor[string](b, `document.querySelector('.secret-box h2')?.textContent.startsWith('Rotated') && document.querySelector('.secret-box input').value`)
		if rotated == secret {
			t.Error("rotation showed the old secret")
		}
		if _, err := rc.Audit().Search(context.Background(), client.SearchOptions{Size: 1}); err == nil {
			t.Error("the old secret still works after the rotation")
		}
		checkAccessible(t, b, "settings")
		// Revoke it: refused at once, shown as revoked.
		b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Revoke key console reader"]`)))
		waitFor[bool](b, `[...document.querySelectorAll('.settings tbody tr')].some((tr) => tr.textContent.includes('console reader') && tr.textContent.includes('revoked'))`)
		rc2, err := client.New(client.Config{BaseURL: b.base, ProjectID: b.creds.ProjectID, ManagementKey: rotated})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc2.Audit().Search(context.Background(), client.SearchOptions{Size: 1}); err == nil {
			t.Error("a revoked key still searches")
		}
		// Company settings: the search window and the rate limit.
		b.do(chromedp.SetValue(chromedp.ID("s-window"), "31"), chromedp.SetValue(chromedp.ID("s-rate"), "1000"),
			chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)))
		waitFor[bool](b, `document.querySelector('#announcer').textContent === 'Settings saved'`)
		settings, err := b.client().Settings().Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if settings.SearchWindowDays != 31 || settings.SearchRateLimit == nil || *settings.SearchRateLimit != 1000 {
			t.Errorf("search window %d and rate limit %v after saving 31 and 1000", settings.SearchWindowDays, settings.SearchRateLimit)
		}
		// Back to no limit: searches counted under it would spend the
		// budget the rate-limit test below sets.
		if _, err := b.client().Settings().Update(context.Background(), client.SettingsUpdate{SearchRateLimit: client.Int(0)}); err != nil {
			t.Fatal(err)
		}
		// A project.
		b.do(chromedp.SendKeys(chromedp.ID("p-name"), "console ops"), chromedp.Click(chromedp.CSS(`.inline-form button[type=submit]`)))
		waitFor[bool](b, `[...document.querySelectorAll('.settings tbody tr')].some((tr) => tr.textContent.includes('console ops'))`)
		projects, err := b.client().Projects().List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(projects, func(p client.Project) bool { return p.Name == "console ops" }) {
			t.Errorf("projects %+v lack the one created in the console", projects)
		}
	})

	t.Run("phone width", func(t *testing.T) {
		b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		defer b.do(chromedp.EmulateViewport(1440, 900))
		b.open("/audit?action=UserModified")
		if overflow := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`); overflow {
			t.Error("the page scrolls sideways at 390 px (only the table may)")
		}
		b.shot("phone-audit")
		checkAccessible(t, b, "audit at phone width")
		b.do(chromedp.Click(chromedp.CSS(`table.results tbody tr:first-child button.linklike`)))
		waitFor[bool](b, `!document.querySelector('#detail').hidden`)
		b.shotViewport("phone-detail")
	})

	t.Run("dark colour scheme", func(t *testing.T) {
		dark := func(on bool) {
			f := []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}
			if on {
				f[0].Value = "dark"
			}
			if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: f}); err != nil {
				t.Fatal(err)
			}
		}
		dark(true)
		defer dark(false)
		b.open("/audit?action=LoginFailed")
		if bg := eval[string](b, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(18, 22, 29)" {
			t.Errorf("dark background %s", bg)
		}
		b.shot("audit-dark")
	})

	t.Run("rate limit", func(t *testing.T) {
		admin := b.client()
		if _, err := admin.Settings().Update(context.Background(), client.SettingsUpdate{SearchRateLimit: client.Int(2)}); err != nil {
			t.Fatal(err)
		}
		defer admin.Settings().Update(context.Background(), client.SettingsUpdate{SearchRateLimit: client.Int(0)})
		for range 2 { // spend the budget
			if _, err := admin.Audit().Search(context.Background(), client.SearchOptions{Size: 1}); err != nil {
				t.Fatal(err)
			}
		}
		b.do(chromedp.Navigate(b.base + "/audit?action=LoginFailed"))
		msg := waitFor[string](b, `document.querySelector('#error-message')?.textContent`)
		m := regexp.MustCompile(`Too many searches.* Try again in (\d+) seconds`).FindStringSubmatch(msg)
		if m == nil {
			t.Fatalf("rate-limit message %q does not give the seconds to wait", msg)
		}
		if secs, _ := strconv.Atoi(m[1]); secs < 1 || secs > 60 {
			t.Errorf("wait of %d s for a limit per minute", secs)
		}
		retry := eval[string](b, `document.querySelector('.status button').textContent`)
		if !strings.HasPrefix(retry, "Retry in ") {
			t.Errorf("retry button %q", retry)
		}
		b.shot("rate-limited")
	})

	t.Run("expired key", func(t *testing.T) {
		_, secret, err := b.client().Keys().Create(context.Background(), client.CreateKeyOptions{Name: "short", Role: "reader", ExpiresIn: 4 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		b.signIn(b.creds.ProjectID, secret)
		b.results()
		time.Sleep(4 * time.Second)
		b.do(chromedp.Navigate(b.base + "/audit?action=LoginSucceed"))
		msg := waitFor[string](b, `document.querySelector('#signin-error')?.textContent`)
		if !strings.Contains(msg, "expired") {
			t.Errorf("expired key: %q", msg)
		}
		if s := eval[string](b, `String(sessionStorage.getItem('audittrail.session'))`); s != "null" {
			t.Errorf("session kept after the key expired: %s", s)
		}
		b.shot("signin-expired")
	})

	t.Run("sign out", func(t *testing.T) {
		b.signIn(b.creds.ProjectID, b.creds.ManagementKey)
		b.results()
		b.do(chromedp.Click(chromedp.ID("sign-out")))
		waitFor[bool](b, `!!document.querySelector('#signin-project')`)
		if s := eval[string](b, `String(sessionStorage.getItem('audittrail.session'))`); s != "null" {
			t.Errorf("sign-out left %s", s)
		}
	})

	if len(b.renders) > 0 {
		sorted := slices.Clone(b.renders)
		sort.Float64s(sorted)
		med, p90, worst := sorted[len(sorted)/2], sorted[len(sorted)*9/10], sorted[len(sorted)-1]
		over := 0
		for _, d := range sorted {
			if d > 200 {
				over++
			}
		}
		doms := slices.Clone(b.doms)
		sort.Float64s(doms)
		slowest := slices.Index(b.renders, worst)
		t.Logf("API answer → results painted, over %d searches: median %.1f ms, p90 %.1f ms, max %.1f ms (%s), %d over 200 ms (DOM updated: median %.1f ms, max %.1f ms)",
			len(sorted), med, p90, worst, b.searched[slowest], over, doms[len(doms)/2], doms[len(doms)-1])
		writeMetric(t, b.shots, "render", map[string]float64{"searches": float64(len(sorted)), "medianMs": med, "p90Ms": p90, "maxMs": worst, "over200ms": float64(over)})
		// The goal of the issue: a search renders within 200 ms of the API's
		// answer (the median, so one search delayed by a garbage collection
		// or a busy host does not decide it; the maximum is printed).
		if med > 200 {
			t.Errorf("median time from the API's answer to painted results is %.0f ms (goal: 200 ms)", med)
		}
	}
	b.checkNoProblems()
}

func writeMetric(t *testing.T, dir, name string, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "metrics-"+name+".json"), b, 0o644); err != nil {
		t.Log(err)
	}
}

func waitForFile(t *testing.T, dir, ext string, already int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "*."+ext))
		if len(files) > already {
			sort.Slice(files, func(i, j int) bool {
				a, _ := os.Stat(files[i])
				b, _ := os.Stat(files[j])
				return a.ModTime().After(b.ModTime())
			})
			return files[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no .%s download in %s", ext, dir)
	return ""
}

func exportedIDs(t *testing.T, file, format string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	if format == "csv" {
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 || rows[0][0] != "id" {
			t.Fatalf("CSV without its header row: %v", rows)
		}
		for _, r := range rows[1:] {
			ids = append(ids, r[0])
		}
		return ids
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// checkAccessible fails the test for markup a screen reader cannot use on
// the page as it is: a control without a name, an id used twice, an ARIA
// reference or label to a missing id, a table without header cells, an
// image without alt text, a link without text, not exactly one h1.
func checkAccessible(t *testing.T, p page, where string) {
	t.Helper()
	problems := eval[[]string](p, `(() => {
		const out = [];
		const text = (id) => (document.getElementById(id)?.textContent || '').trim();
		const named = (el) => (el.labels && [...el.labels].some((l) => l.textContent.trim()))
			|| (el.getAttribute('aria-label') || '').trim()
			|| (el.getAttribute('aria-labelledby') || '').split(/\s+/).some((id) => id && text(id))
			|| (el.tagName === 'BUTTON' && el.textContent.trim())
			|| (el.title || '').trim();
		for (const el of document.querySelectorAll('input, select, button, textarea')) {
			if (el.type !== 'hidden' && !named(el)) out.push('control without a name: ' + el.outerHTML.slice(0, 100));
		}
		const seen = new Map();
		for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
		for (const [id, n] of seen) if (n > 1) out.push('id used ' + n + ' times: ' + id);
		for (const attr of ['aria-labelledby', 'aria-describedby', 'aria-controls']) {
			for (const el of document.querySelectorAll('[' + attr + ']')) {
				for (const id of el.getAttribute(attr).split(/\s+/)) if (id && !document.getElementById(id)) out.push(attr + ' names a missing #' + id);
			}
		}
		for (const l of document.querySelectorAll('label[for]')) if (!document.getElementById(l.htmlFor)) out.push('label for a missing #' + l.htmlFor);
		for (const tb of document.querySelectorAll('table')) if (!tb.querySelector('th')) out.push('table without header cells');
		for (const img of document.querySelectorAll('img:not([alt])')) out.push('image without alt: ' + img.src);
		for (const a of document.querySelectorAll('a[href]')) if (!a.textContent.trim() && !a.getAttribute('aria-label')) out.push('link without text: ' + a.href);
		for (const s of document.querySelectorAll('svg:not([aria-hidden="true"])')) if (!s.getAttribute('aria-label') && !s.querySelector(':scope > title')) out.push('svg without a name');
		const h1 = document.querySelectorAll('h1').length;
		if (h1 !== 1) out.push(h1 + ' h1 headings');
		if (!document.documentElement.lang) out.push('no lang on <html>');
		return out;
	})()`)
	for _, p := range problems {
		t.Errorf("%s: %s", where, p)
	}
}
