package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// Company-level actions the admin API records.
const (
	ActionProjectCreated          = "ProjectCreated"
	ActionProjectDeleted          = "ProjectDeleted"
	ActionManagementKeyCreated    = "ManagementKeyCreated"
	ActionManagementKeyRevoked    = "ManagementKeyRevoked"
	ActionManagementKeyRotated    = "ManagementKeyRotated"
	ActionCompanySettingsModified = "CompanySettingsModified"
	maxNameLen                    = 200
	maxSearchWindowDays           = 3650
	maxRetentionDays              = 36500
	maxSearchRateLimitPerMinute   = 1_000_000
	maxKeyLifetime                = 100 * 365 * 24 * time.Hour
	projectIDRandomChars          = 27
	projectIDAlphabet             = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

type projectJSON struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

func toProjectJSON(p tenancy.Project) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, Created: p.Created}
}

func (a *API) handleListProjects(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	projects, err := a.opts.Directory.Projects(r.Context(), p.CompanyID)
	if err != nil {
		WriteError(w, r, fmt.Errorf("list projects: %w", err))
		return
	}
	out := make([]projectJSON, 0, len(projects))
	for _, pr := range projects {
		if p.MayUseProject(pr.ID) {
			out = append(out, toProjectJSON(pr))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out})
}

// CreateProjectRequest is the body of POST /v1/mgmt/projects.
type CreateProjectRequest struct {
	Name string `json:"name"`
}

// DecodeCreateProject parses and checks a create-project body.
func DecodeCreateProject(body []byte) (CreateProjectRequest, error) {
	var req CreateProjectRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return req, err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		return req, Errorf(CodeMissingArgument, "name: is required")
	}
	if len(req.Name) > maxNameLen {
		return req, Errorf(CodeInvalidArgument, "name: longer than %d bytes", maxNameLen)
	}
	return req, nil
}

func (a *API) handleCreateProject(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	if !p.AllProjects() {
		WriteError(w, r, Errorf(CodeForbidden, "creating projects needs a key scoped to all projects"))
		return
	}
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	req, err := DecodeCreateProject(body)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	proj := tenancy.Project{ID: tenancy.NewProjectID(), CompanyID: p.CompanyID, Name: req.Name, Created: a.now().UTC()}
	if err := a.opts.Directory.CreateProject(r.Context(), proj); err != nil {
		WriteError(w, r, fmt.Errorf("create project: %w", err))
		return
	}
	if err := a.RecordCompanyEvent(r, p, ActionProjectCreated, event.TypeInfo, map[string]any{"projectId": proj.ID, "name": proj.Name}); err != nil {
		WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": toProjectJSON(proj)})
}

func (a *API) handleDeleteProject(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id := r.PathValue("id")
	proj, err := a.opts.Directory.Project(r.Context(), id)
	if err != nil || proj.CompanyID != p.CompanyID {
		if err != nil && !isNotFound(err) {
			WriteError(w, r, fmt.Errorf("look up project: %w", err))
			return
		}
		WriteError(w, r, Errorf(CodeNotFound, "unknown project %q", id))
		return
	}
	if !p.MayUseProject(id) {
		WriteError(w, r, Errorf(CodeForbidden, "the management key is not scoped to project %q", id))
		return
	}
	if err := a.opts.Directory.DeleteProject(r.Context(), p.CompanyID, id); err != nil {
		WriteError(w, r, fmt.Errorf("delete project: %w", err))
		return
	}
	if err := a.RecordCompanyEvent(r, p, ActionProjectDeleted, event.TypeWarn, map[string]any{"projectId": id, "name": proj.Name}); err != nil {
		WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

type keyJSON struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	Role       tenancy.Role `json:"role"`
	ProjectIDs []string     `json:"projectIds"`
	Created    time.Time    `json:"created"`
	Expires    *time.Time   `json:"expires"`
	Revoked    *time.Time   `json:"revoked"`
	Rotated    *time.Time   `json:"rotated"`
}

func toKeyJSON(k tenancy.Key) keyJSON {
	out := keyJSON{ID: k.ID, Name: k.Name, Role: k.Role, ProjectIDs: k.ProjectIDs, Created: k.Created}
	if out.ProjectIDs == nil {
		out.ProjectIDs = []string{}
	}
	if !k.Expires.IsZero() {
		t := k.Expires
		out.Expires = &t
	}
	if !k.Revoked.IsZero() {
		t := k.Revoked
		out.Revoked = &t
	}
	if !k.Rotated.IsZero() {
		t := k.Rotated
		out.Rotated = &t
	}
	return out
}

func (a *API) handleListKeys(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	keys, err := a.opts.Directory.Keys(r.Context(), p.CompanyID)
	if err != nil {
		WriteError(w, r, fmt.Errorf("list keys: %w", err))
		return
	}
	out := make([]keyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, toKeyJSON(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// CreateKeyRequest is the body of POST /v1/mgmt/keys.
type CreateKeyRequest struct {
	Name             string       `json:"name"`
	Role             tenancy.Role `json:"role"`
	ProjectIDs       []string     `json:"projectIds"`
	ExpiresInSeconds int64        `json:"expiresInSeconds"`
}

// DecodeCreateKey parses and checks a create-key body.
func DecodeCreateKey(body []byte) (CreateKeyRequest, error) {
	var req CreateKeyRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return req, err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		return req, Errorf(CodeMissingArgument, "name: is required")
	}
	if len(req.Name) > maxNameLen {
		return req, Errorf(CodeInvalidArgument, "name: longer than %d bytes", maxNameLen)
	}
	switch req.Role {
	case "":
		return req, Errorf(CodeMissingArgument, "role: is required (admin, writer or reader)")
	case tenancy.RoleAdmin, tenancy.RoleWriter, tenancy.RoleReader:
	default:
		return req, Errorf(CodeInvalidArgument, "role: must be admin, writer or reader")
	}
	if err := checkList("projectIds", req.ProjectIDs, 1000); err != nil {
		return req, err
	}
	if req.ExpiresInSeconds < 0 || req.ExpiresInSeconds > int64(maxKeyLifetime/time.Second) {
		return req, Errorf(CodeInvalidArgument, "expiresInSeconds: must be between 0 (never) and %d", int64(maxKeyLifetime/time.Second))
	}
	return req, nil
}

func (a *API) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	req, err := DecodeCreateKey(body)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	// A key may only hand out what it holds: a project-scoped admin cannot
	// mint a key for all projects or for projects outside its scope.
	if len(req.ProjectIDs) == 0 && !p.AllProjects() {
		WriteError(w, r, Errorf(CodeForbidden, "projectIds: a key scoped to some projects cannot create one for all"))
		return
	}
	for i, id := range req.ProjectIDs {
		proj, err := a.opts.Directory.Project(r.Context(), id)
		if err != nil || proj.CompanyID != p.CompanyID {
			if err != nil && !isNotFound(err) {
				WriteError(w, r, fmt.Errorf("look up project: %w", err))
				return
			}
			WriteError(w, r, Errorf(CodeInvalidArgument, "projectIds[%d]: unknown project %q", i, id))
			return
		}
		if !p.MayUseProject(id) {
			WriteError(w, r, Errorf(CodeForbidden, "projectIds[%d]: the management key is not scoped to project %q", i, id))
			return
		}
	}
	now := a.now().UTC()
	k := tenancy.Key{CompanyID: p.CompanyID, Name: req.Name, Role: req.Role, ProjectIDs: slices.Compact(slices.Sorted(slices.Values(req.ProjectIDs))), Created: now}
	if len(k.ProjectIDs) == 0 {
		k.ProjectIDs = nil
	}
	if req.ExpiresInSeconds > 0 {
		k.Expires = now.Add(time.Duration(req.ExpiresInSeconds) * time.Second)
	}
	k, secret, err := a.opts.Keys.NewKey(k)
	if err != nil {
		WriteError(w, r, fmt.Errorf("new key: %w", err))
		return
	}
	if err := a.opts.Directory.CreateKey(r.Context(), k); err != nil {
		WriteError(w, r, fmt.Errorf("create key: %w", err))
		return
	}
	data := map[string]any{"keyId": k.ID, "name": k.Name, "role": k.Role, "projectIds": toKeyJSON(k).ProjectIDs}
	if !k.Expires.IsZero() {
		data["expires"] = k.Expires
	}
	if err := a.RecordCompanyEvent(r, p, ActionManagementKeyCreated, event.TypeInfo, data); err != nil {
		WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": toKeyJSON(k), "secret": secret})
}

// adminKey loads a key of the caller's company that the caller may manage.
func (a *API) adminKey(r *http.Request, p Principal) (tenancy.Key, error) {
	id := r.PathValue("id")
	k, err := a.opts.Directory.Key(r.Context(), id)
	if err != nil || k.CompanyID != p.CompanyID {
		if err != nil && !isNotFound(err) {
			return tenancy.Key{}, fmt.Errorf("look up key: %w", err)
		}
		return tenancy.Key{}, Errorf(CodeNotFound, "unknown key %q", id)
	}
	// A project-scoped admin may only manage keys within its own scope.
	if !p.AllProjects() {
		if len(k.ProjectIDs) == 0 {
			return tenancy.Key{}, Errorf(CodeForbidden, "key %q spans all projects; the management key does not", id)
		}
		for _, pid := range k.ProjectIDs {
			if !p.MayUseProject(pid) {
				return tenancy.Key{}, Errorf(CodeForbidden, "key %q reaches project %q; the management key does not", id, pid)
			}
		}
	}
	return k, nil
}

func (a *API) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	k, err := a.adminKey(r, p)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if k.Revoked.IsZero() {
		k.Revoked = a.now().UTC()
		if err := a.opts.Directory.UpdateKey(r.Context(), k); err != nil {
			WriteError(w, r, fmt.Errorf("revoke key: %w", err))
			return
		}
		if err := a.RecordCompanyEvent(r, p, ActionManagementKeyRevoked, event.TypeWarn, map[string]any{"keyId": k.ID, "name": k.Name}); err != nil {
			WriteError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": toKeyJSON(k)})
}

func (a *API) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	k, err := a.adminKey(r, p)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if !k.Revoked.IsZero() {
		WriteError(w, r, Errorf(CodeInvalidArgument, "key %q is revoked; create a new one", k.ID))
		return
	}
	k, secret, err := a.opts.Keys.Rotate(k)
	if err != nil {
		WriteError(w, r, fmt.Errorf("rotate key: %w", err))
		return
	}
	k.Rotated = a.now().UTC()
	if err := a.opts.Directory.UpdateKey(r.Context(), k); err != nil {
		WriteError(w, r, fmt.Errorf("rotate key: %w", err))
		return
	}
	if err := a.RecordCompanyEvent(r, p, ActionManagementKeyRotated, event.TypeInfo, map[string]any{"keyId": k.ID, "name": k.Name}); err != nil {
		WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": toKeyJSON(k), "secret": secret})
}

func (a *API) handleGetSettings(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	c, err := a.opts.Directory.Company(r.Context(), p.CompanyID)
	if err != nil {
		WriteError(w, r, fmt.Errorf("look up company: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"settings": c.Settings})
}

// SettingsPatch is the body of PATCH /v1/mgmt/company/settings: only the
// keys present change; "searchRateLimit": null restores the server default.
type SettingsPatch struct {
	SearchWindowDays *int            `json:"searchWindowDays"`
	RetentionDays    *int            `json:"retentionDays"`
	SearchRateLimit  json.RawMessage `json:"searchRateLimit"`
}

// DecodeSettingsPatch parses a settings patch and applies it to cur,
// returning the new settings and the changes as {field: {old, new}}.
func DecodeSettingsPatch(body []byte, cur tenancy.Settings) (tenancy.Settings, map[string]any, error) {
	var patch SettingsPatch
	if err := decodeStrict(body, &patch, false); err != nil {
		return cur, nil, err
	}
	next := cur
	changes := map[string]any{}
	if patch.SearchWindowDays != nil {
		v := *patch.SearchWindowDays
		if v < 1 || v > maxSearchWindowDays {
			return cur, nil, Errorf(CodeInvalidArgument, "searchWindowDays: must be between 1 and %d", maxSearchWindowDays)
		}
		next.SearchWindowDays = v
	}
	if patch.RetentionDays != nil {
		v := *patch.RetentionDays
		if v < 1 || v > maxRetentionDays {
			return cur, nil, Errorf(CodeInvalidArgument, "retentionDays: must be between 1 and %d", maxRetentionDays)
		}
		next.RetentionDays = v
	}
	if patch.SearchRateLimit != nil {
		if string(patch.SearchRateLimit) == "null" {
			next.SearchRateLimit = nil
		} else {
			var v int
			if err := json.Unmarshal(patch.SearchRateLimit, &v); err != nil || v < 0 || v > maxSearchRateLimitPerMinute {
				return cur, nil, Errorf(CodeInvalidArgument, "searchRateLimit: must be null (server default), 0 (no limit) or searches per minute up to %d", maxSearchRateLimitPerMinute)
			}
			next.SearchRateLimit = &v
		}
	}
	if next.RetentionDays < next.SearchWindowDays {
		return cur, nil, Errorf(CodeValidation, "retentionDays (%d) may not be less than searchWindowDays (%d)", next.RetentionDays, next.SearchWindowDays)
	}
	if next.SearchWindowDays != cur.SearchWindowDays {
		changes["searchWindowDays"] = map[string]any{"old": cur.SearchWindowDays, "new": next.SearchWindowDays}
	}
	if next.RetentionDays != cur.RetentionDays {
		changes["retentionDays"] = map[string]any{"old": cur.RetentionDays, "new": next.RetentionDays}
	}
	if !equalIntPtr(cur.SearchRateLimit, next.SearchRateLimit) {
		changes["searchRateLimit"] = map[string]any{"old": cur.SearchRateLimit, "new": next.SearchRateLimit}
	}
	return next, changes, nil
}

func equalIntPtr(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (a *API) handlePatchSettings(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	if !p.AllProjects() {
		WriteError(w, r, Errorf(CodeForbidden, "company settings need a key scoped to all projects"))
		return
	}
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	c, err := a.opts.Directory.Company(r.Context(), p.CompanyID)
	if err != nil {
		WriteError(w, r, fmt.Errorf("look up company: %w", err))
		return
	}
	next, changes, err := DecodeSettingsPatch(body, c.Settings)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if len(changes) > 0 {
		if err := a.opts.Directory.UpdateSettings(r.Context(), p.CompanyID, next); err != nil {
			WriteError(w, r, fmt.Errorf("update settings: %w", err))
			return
		}
		if err := a.RecordCompanyEvent(r, p, ActionCompanySettingsModified, event.TypeInfo, map[string]any{"Change": changes}); err != nil {
			WriteError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"settings": next})
}
