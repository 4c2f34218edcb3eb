// Package streamhttp is the HTTP surface of stream delivery: Descope's
// createAuditWebhook (POST /v{1,2}/mgmt/connector/audit/web/set) and the
// native connector routes under /v1/mgmt/connectors, on stream.Manager.
//
// Who sees what: a connector belongs to one company, and either to one
// project or to the whole company (ProjectID ""). A key sees only its
// company's connectors; a key limited to projects sees only connectors of
// those projects, never company-wide ones, and may create only
// project-level connectors. Anything else answers 404 as if it did not
// exist, so a key cannot probe ids.
package streamhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// maxBody bounds a connector body: a config (64 KiB at most) and up to 20
// filters of 1000 values each.
const maxBody = 1 << 20

// maxErrorDetail bounds how much of a destination's error a failed test
// shows.
const maxErrorDetail = 512

// Options are what the handlers need besides the manager.
type Options struct {
	// Directory, when set, is used to refuse a projectId of no project of
	// the caller's company.
	Directory tenancy.Directory
	Logger    *slog.Logger
}

// Register mounts the connector routes on api. Every route needs a writer
// (or admin) key; none needs a project in the Authorization header.
func Register(api *httpapi.API, m *stream.Manager, opts Options) {
	if opts.Logger == nil {
		opts.Logger = api.Logger()
	}
	h := &handlers{api: api, m: m, opts: opts}
	route := func(pattern string, fn http.HandlerFunc) {
		api.Handle(pattern, tenancy.RoleWriter, false, fn)
	}
	// Descope-compatible: the Node and Go SDKs use v2, the Java SDK v1.
	route("POST /v2/mgmt/connector/audit/web/set", h.setWebhook)
	route("POST /v1/mgmt/connector/audit/web/set", h.setWebhook)

	route("POST /v1/mgmt/connectors", h.create)
	route("GET /v1/mgmt/connectors", h.list)
	route("GET /v1/mgmt/connectors/{id}", h.get)
	route("PUT /v1/mgmt/connectors/{id}", h.update)
	route("DELETE /v1/mgmt/connectors/{id}", h.delete)
	route("POST /v1/mgmt/connectors/{id}/pause", h.pause)
	route("POST /v1/mgmt/connectors/{id}/resume", h.resume)
	route("POST /v1/mgmt/connectors/{id}/test", h.test)
	route("POST /v1/mgmt/connectors/{id}/replay", h.replay)
	route("GET /v1/mgmt/connectors/{id}/health", h.health)
}

type handlers struct {
	api  *httpapi.API
	m    *stream.Manager
	opts Options
}

// ConnectorRequest is the body of POST and PUT /v1/mgmt/connectors.
type ConnectorRequest struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Type        string          `json:"type"`
	Level       stream.Level    `json:"level"`
	Filters     []stream.Filter `json:"filters"`
	MaskPII     bool            `json:"maskPII"`
	// Config is the destination's configuration; on PUT, absent keeps the
	// current one, and a value sent back as Get showed it ("REDACTED")
	// keeps that secret.
	Config json.RawMessage `json:"config"`
	// ProjectID: absent means the key's project for a key limited to one
	// project, else (on POST) company-wide and (on PUT) unchanged.
	ProjectID *string `json:"projectId"`
}

// spec turns the request into a stream.Spec of the caller's company.
func (req ConnectorRequest) spec(companyID, projectID string) stream.Spec {
	return stream.Spec{CompanyID: companyID, ProjectID: projectID, Name: req.Name, Description: req.Description,
		Type: req.Type, Level: req.Level, Filters: req.Filters, MaskPII: req.MaskPII, Config: req.Config}
}

// ListResponse is the body of GET /v1/mgmt/connectors.
type ListResponse struct {
	Connectors []stream.View `json:"connectors"`
}

// ReplayRequest is the body of POST /v1/mgmt/connectors/{id}/replay.
type ReplayRequest struct {
	// From is an RFC 3339 time, or epoch milliseconds as a number or a
	// numeric string.
	From json.RawMessage `json:"from"`
}

// ReplayResponse is the connector's new cursor.
type ReplayResponse struct {
	Cursor uint64 `json:"cursor"`
}

// TestResponse answers a test delivery the destination acknowledged.
type TestResponse struct {
	OK bool `json:"ok"`
}

// WebhookResponse answers createAuditWebhook.
type WebhookResponse struct {
	ID string `json:"id"`
}

func principal(r *http.Request) httpapi.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return p
}

// soleProject is the project a key limited to projects works in when the
// call names none: its only project. A key limited to several must name one.
func soleProject(p httpapi.Principal) (string, error) {
	if p.ProjectID != "" {
		return p.ProjectID, nil
	}
	if len(p.Key.ProjectIDs) == 1 {
		return p.Key.ProjectIDs[0], nil
	}
	return "", httpapi.Errorf(httpapi.CodeMissingArgument, "projectId: is required for a key limited to several projects")
}

// projectFor decides the project of a connector the caller creates or
// moves: requested (nil: not said), else fallback.
func (h *handlers) projectFor(ctx context.Context, p httpapi.Principal, requested *string, fallback string) (string, error) {
	project := fallback
	if requested != nil {
		project = *requested
	} else if !p.AllProjects() {
		var err error
		if project, err = soleProject(p); err != nil {
			return "", err
		}
	}
	if project == "" {
		if !p.AllProjects() {
			return "", httpapi.Errorf(httpapi.CodeForbidden, "a key limited to projects may not manage company-wide connectors")
		}
		return "", nil
	}
	if !p.MayUseProject(project) {
		return "", httpapi.Errorf(httpapi.CodeForbidden, "the management key is not scoped to project %q", project)
	}
	if h.opts.Directory != nil {
		proj, err := h.opts.Directory.Project(ctx, project)
		if errors.Is(err, tenancy.ErrNotFound) || (err == nil && proj.CompanyID != p.CompanyID) {
			return "", httpapi.Errorf(httpapi.CodeInvalidArgument, "projectId: unknown project %q", project)
		}
		if err != nil {
			return "", fmt.Errorf("look up project: %w", err)
		}
	}
	return project, nil
}

// checkLevel keeps a key limited to projects to project-level events:
// company-level ones (keys, projects, settings) are not its to read.
func checkLevel(p httpapi.Principal, level stream.Level) error {
	if !p.AllProjects() && level != "" && level != stream.LevelProject {
		return httpapi.Errorf(httpapi.CodeForbidden, "level: a key limited to projects may only stream project-level events")
	}
	return nil
}

// visible fetches a connector the caller may see; any other answers 404.
func (h *handlers) visible(r *http.Request) (stream.View, error) {
	p := principal(r)
	v, err := h.m.Get(r.Context(), p.CompanyID, r.PathValue("id"))
	if err != nil {
		return stream.View{}, err
	}
	if !p.MayUseProject(v.ProjectID) {
		return stream.View{}, stream.ErrNotFound
	}
	return v, nil
}

// setWebhook is Descope's createAuditWebhook: create, or update the
// webhook of the same name in the same scope.
func (h *handlers) setWebhook(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var body json.RawMessage
	// Unknown keys are accepted: newer SDKs may send some.
	if err := httpapi.DecodeJSON(w, r, maxBody, &body, true); err != nil {
		writeError(w, r, err)
		return
	}
	spec, err := stream.FromDescopeWebhook(body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// Descope's connectors belong to the project the SDK is configured
	// with; a call naming none (an all-projects key) makes a company-wide one.
	project := p.ProjectID
	if project == "" && !p.AllProjects() {
		if project, err = soleProject(p); err != nil {
			writeError(w, r, err)
			return
		}
	}
	spec.CompanyID, spec.ProjectID = p.CompanyID, project
	// The connector Set would update, for the list of changed fields; a
	// concurrent Set of the same name may make that list approximate.
	prev, found, err := h.sameName(r.Context(), spec)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, created, err := h.m.Set(r.Context(), spec)
	switch {
	case err != nil:
	case created:
		err = h.record(r, ActionConnectorCreated, v, nil)
	case found:
		err = h.record(r, ActionConnectorModified, v, map[string]any{"changed": changedFields(prev.Spec, v.Spec, spec.Config)})
	default: // made by a concurrent call since: what changed is unknown
		err = h.record(r, ActionConnectorModified, v, nil)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	h.opts.Logger.Info("audit webhook set", "connector", v.ID, "created", created, "company", p.CompanyID, "project", project)
	writeJSON(w, http.StatusOK, WebhookResponse{ID: v.ID})
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var req ConnectorRequest
	if err := httpapi.DecodeJSON(w, r, maxBody, &req, false); err != nil {
		writeError(w, r, err)
		return
	}
	project, err := h.projectFor(r.Context(), p, req.ProjectID, "")
	if err == nil {
		err = checkLevel(p, req.Level)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := h.m.Create(r.Context(), req.spec(p.CompanyID, project))
	if err == nil {
		err = h.record(r, ActionConnectorCreated, v, nil)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

// list answers the connectors the caller may see, oldest first;
// ?projectId= narrows to one project.
func (h *handlers) list(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	only := r.URL.Query().Get("projectId")
	all, err := h.m.List(r.Context(), p.CompanyID, only)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := ListResponse{Connectors: make([]stream.View, 0, len(all))}
	for _, v := range all {
		if p.MayUseProject(v.ProjectID) {
			out.Connectors = append(out.Connectors, v)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request) {
	v, err := h.visible(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handlers) update(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var req ConnectorRequest
	if err := httpapi.DecodeJSON(w, r, maxBody, &req, false); err != nil {
		writeError(w, r, err)
		return
	}
	cur, err := h.visible(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	project := cur.ProjectID
	if req.ProjectID != nil {
		project, err = h.projectFor(r.Context(), p, req.ProjectID, cur.ProjectID)
	}
	if err == nil {
		err = checkLevel(p, req.Level)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := h.m.Update(r.Context(), p.CompanyID, cur.ID, req.spec(p.CompanyID, project))
	if err == nil {
		err = h.record(r, ActionConnectorModified, v, map[string]any{"changed": changedFields(cur.Spec, v.Spec, req.Config)})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request) {
	v, err := h.visible(r)
	if err == nil {
		err = h.m.Delete(r.Context(), v.CompanyID, v.ID)
	}
	if err == nil {
		err = h.record(r, ActionConnectorDeleted, v, nil)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) pause(w http.ResponseWriter, r *http.Request)  { h.setPaused(w, r, true) }
func (h *handlers) resume(w http.ResponseWriter, r *http.Request) { h.setPaused(w, r, false) }

func (h *handlers) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	v, err := h.visible(r)
	if err == nil {
		if paused {
			v, err = h.m.Pause(r.Context(), v.CompanyID, v.ID)
		} else {
			v, err = h.m.Resume(r.Context(), v.CompanyID, v.ID)
		}
	}
	if err == nil {
		action := ActionConnectorResumed
		if paused {
			action = ActionConnectorPaused
		}
		err = h.record(r, action, v, nil)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// test sends one synthetic event; a destination that fails answers 502
// with its error, so the user can fix the configuration.
func (h *handlers) test(w http.ResponseWriter, r *http.Request) {
	v, err := h.visible(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := h.m.SendTest(r.Context(), v.CompanyID, v.ID); err != nil {
		if errors.Is(err, stream.ErrNotFound) || errors.Is(err, stream.ErrClosed) || r.Context().Err() != nil {
			writeError(w, r, err)
			return
		}
		// The destination's error stays out of the event: it may quote
		// the destination's address, and so its credentials.
		if rerr := h.record(r, ActionConnectorTested, v, map[string]any{"ok": false}); rerr != nil {
			writeError(w, r, rerr)
			return
		}
		detail := truncate(strings.TrimPrefix(err.Error(), "send test: "), maxErrorDetail)
		writeError(w, r, &httpapi.Error{Code: httpapi.CodeBadGateway, Message: "test delivery failed: " + detail, Err: err})
		return
	}
	if err := h.record(r, ActionConnectorTested, v, map[string]any{"ok": true}); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TestResponse{OK: true})
}

func (h *handlers) replay(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	if err := httpapi.DecodeJSON(w, r, maxBody, &req, false); err != nil {
		writeError(w, r, err)
		return
	}
	from, err := ParseFrom(req.From)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := h.visible(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cursor, err := h.m.Replay(r.Context(), v.CompanyID, v.ID, from)
	if err == nil {
		err = h.record(r, ActionConnectorReplayed, v, map[string]any{"from": from.UTC().Format(time.RFC3339Nano), "cursor": cursor})
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ReplayResponse{Cursor: cursor})
}

func (h *handlers) health(w http.ResponseWriter, r *http.Request) {
	v, err := h.visible(r)
	if err == nil {
		v.Health, err = h.m.Health(r.Context(), v.CompanyID, v.ID)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v.Health)
}

// ParseFrom reads a replay start: an RFC 3339 time, or epoch milliseconds
// as a JSON number or numeric string.
func ParseFrom(raw json.RawMessage) (time.Time, error) {
	bad := httpapi.Errorf(httpapi.CodeInvalidArgument, "from: must be an RFC 3339 time or epoch milliseconds")
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, httpapi.Errorf(httpapi.CodeMissingArgument, "from: is required")
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, bad
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
	} else {
		s = string(raw)
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		return time.Time{}, bad
	}
	return time.UnixMilli(ms), nil
}

// writeError maps the stream package's errors to the API's catalogue and
// answers through the one error writer.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(w, r, apiError(err))
}

func apiError(err error) error {
	var fe *stream.FieldError
	switch {
	case errors.As(err, &fe):
		return &httpapi.Error{Code: httpapi.CodeInvalidArgument, Message: fe.Error(), Err: err}
	case errors.Is(err, stream.ErrUnknownType):
		return &httpapi.Error{Code: httpapi.CodeInvalidArgument, Message: "type: unknown destination type", Err: err}
	case errors.Is(err, stream.ErrInvalid):
		return &httpapi.Error{Code: httpapi.CodeBadRequest, Message: strings.TrimPrefix(err.Error(), stream.ErrInvalid.Error()+": "), Err: err}
	case errors.Is(err, stream.ErrNotFound):
		return &httpapi.Error{Code: httpapi.CodeNotFound, Message: "connector not found", Err: err}
	case errors.Is(err, stream.ErrClosed):
		return &httpapi.Error{Code: httpapi.CodeUnavailable, Message: "stream delivery is shutting down, retry later", Err: err}
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Views and health always marshal; this is a programming error.
		status, b = http.StatusInternalServerError, []byte(`{"errorCode":"`+httpapi.CodeInternal+`","errorDescription":"Internal error","errorMessage":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n-- // do not cut a UTF-8 sequence
	}
	return s[:n] + "…"
}
