package httpapi

import "net/http"

// handleLicense answers the Descope Go SDK's start-up call; it only logs a
// failure there, but answering keeps its logs clean.
func (a *API) handleLicense(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"rateLimitTier": "unlimited"})
}

// handleHealth is 200 only once recovery and bootstrap are done, so a
// load balancer or a test waiting for it never reaches a half-started server.
func (a *API) handleHealth(w http.ResponseWriter, r *http.Request) {
	if a.opts.Ready != nil && !a.opts.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	if a.opts.Health != nil {
		if status, detail := a.opts.Health(); status != "" && status != "ok" {
			writeJSON(w, http.StatusOK, map[string]any{"status": status, "detail": detail})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
