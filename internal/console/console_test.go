package console_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestPageAndAssetsCarrySecureHeaders(t *testing.T) {
	e := newEnv(t, envConfig{})
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/assets/js/app.js">`},
		{"/audit", "text/html; charset=utf-8", `<main id="main"`},
		{"/settings", "text/html; charset=utf-8", `<main id="main"`},
		{"/connectors", "text/html; charset=utf-8", `<main id="main"`},
		{"/assets/js/app.js", "text/javascript; charset=utf-8", "export function navigate"},
		{"/assets/app.css", "text/css; charset=utf-8", ".topbar"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp := get(c.path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.contains, strings.Contains(string(body), c.contains))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("GET %s: %s %q, want %q", c.path, h, got, want)
			}
		}
		if etag := resp.Header.Get("ETag"); etag == "" {
			t.Errorf("GET %s: no ETag", c.path)
		} else if r := get(c.path, "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", c.path, r.StatusCode)
		}
	}
	// The page has no inline script or style for the CSP to refuse.
	resp := get("/")
	body, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(body), "<script>") || strings.Contains(string(body), "<style") || strings.Contains(string(body), " style=") || strings.Contains(string(body), " onclick=") {
		t.Error("index.html holds inline script or style")
	}
	for _, path := range []string{"/assets/nope.js", "/assets/index.html", "/assets/../go.mod"} {
		if r := get(path); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.StatusCode)
		}
	}
	// Unknown API routes still answer in the API's format, not with the page.
	if r := get("/v1/nope"); r.StatusCode != http.StatusNotFound || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /v1/nope: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
}
