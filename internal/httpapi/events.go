package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// CreateEventRequest is Descope's createEvent body plus our extensions
// (level, occurred, id and the other record fields).
type CreateEventRequest struct {
	UserID        string          `json:"userId"`
	Action        string          `json:"action"`
	Type          string          `json:"type"`
	ActorID       string          `json:"actorId"`
	TenantID      string          `json:"tenantId"`
	Data          json.RawMessage `json:"data"`
	Level         string          `json:"level"`
	Occurred      json.RawMessage `json:"occurred"`
	ID            string          `json:"id"`
	Device        string          `json:"device"`
	Method        string          `json:"method"`
	Geo           string          `json:"geo"`
	RemoteAddress string          `json:"remoteAddress"`
	ExternalIDs   []string        `json:"externalIds"`
	Tenants       []string        `json:"tenants"`
	// RequestContext describes the end user's request behind the event
	// (IP, user-agent, headers); it feeds enrichment and is not stored.
	RequestContext json.RawMessage `json:"requestContext"`
}

// DecodeCreateEvent parses and checks a createEvent body into an event of
// the caller's project (not yet given an id or company), enriched by en
// when it is not nil.
func DecodeCreateEvent(body []byte, projectID string, now time.Time, en *enrich.Enricher) (event.Event, error) {
	var req CreateEventRequest
	if err := decodeStrict(body, &req, true); err != nil {
		return event.Event{}, err
	}
	// The Descope SDKs require these; so do we, naming the first missing.
	for _, f := range []struct{ name, v string }{{"action", req.Action}, {"actorId", req.ActorID}, {"tenantId", req.TenantID}, {"type", req.Type}} {
		if f.v == "" {
			return event.Event{}, Errorf(CodeMissingArgument, "%s: is required", f.name)
		}
	}
	occurred, err := event.ParseMillis(req.Occurred)
	if err != nil {
		return event.Event{}, Errorf(CodeInvalidArgument, "occurred: %v", err)
	}
	if occurred == 0 {
		occurred = now.UnixMilli()
	}
	e := event.Event{
		ID:            req.ID,
		ProjectID:     projectID,
		Level:         event.Level(req.Level),
		UserID:        req.UserID,
		Action:        req.Action,
		Type:          req.Type,
		ActorID:       req.ActorID,
		Occurred:      occurred,
		Device:        req.Device,
		Method:        req.Method,
		Geo:           req.Geo,
		RemoteAddress: req.RemoteAddress,
		LoginIDs:      req.ExternalIDs,
		Tenants:       req.Tenants,
		Data:          nullToEmpty(req.Data),
	}
	if e.Level == "" {
		e.Level = event.LevelProject
	}
	if e.Level == event.LevelCompany {
		e.ProjectID = ""
	}
	if !slices.Contains(e.Tenants, req.TenantID) {
		e.Tenants = append([]string{req.TenantID}, e.Tenants...)
	}
	if err := enrichEvent(en, &e, req.RequestContext); err != nil {
		return event.Event{}, err
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// BatchRequest is the native batch ingest body.
type BatchRequest struct {
	Events []json.RawMessage `json:"events"`
}

// DecodeBatch parses a batch body into events of the caller's project,
// with defaults filled, enriched by en when it is not nil, and every event
// validated. One invalid event fails the whole batch with an error naming
// its index and field.
func DecodeBatch(body []byte, projectID string, now time.Time, en *enrich.Enricher) ([]event.Event, error) {
	// Fast path: one strict pass over the whole body. Only when it fails
	// is the body decoded again event by event, to name the bad index
	// (encoding/json's errors say the field but not the array index).
	var fast struct {
		Events []batchEvent `json:"events"`
	}
	if err := decodeStrict(body, &fast, false); err == nil && fast.Events != nil && len(fast.Events) <= MaxBatchEvents {
		return finishBatch(fast.Events, projectID, now, en)
	}

	var req BatchRequest
	if err := decodeStrict(body, &req, false); err != nil {
		return nil, err
	}
	if req.Events == nil {
		return nil, Errorf(CodeMissingArgument, "events: is required")
	}
	if len(req.Events) > MaxBatchEvents {
		return nil, Errorf(CodeTooLarge, "events: at most %d events per batch, got %d", MaxBatchEvents, len(req.Events))
	}
	in := make([]batchEvent, len(req.Events))
	for i, raw := range req.Events {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, Errorf(CodeInvalidArgument, "events[%d]: must be a JSON object", i)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in[i]); err != nil {
			return nil, prefixError(fmt.Sprintf("events[%d]", i), jsonError(err))
		}
	}
	return finishBatch(in, projectID, now, en)
}

// finishBatch turns decoded records into events: defaults, enrichment,
// validation.
func finishBatch(in []batchEvent, projectID string, now time.Time, en *enrich.Enricher) ([]event.Event, error) {
	events := make([]event.Event, len(in))
	nowMs := now.UnixMilli()
	for i := range in {
		e := &events[i]
		if err := in[i].toEvent(e); err != nil {
			return nil, prefixError(fmt.Sprintf("events[%d]", i), err)
		}
		if e.Level == "" {
			e.Level = event.LevelProject
		}
		if e.Level == event.LevelProject && e.ProjectID == "" {
			e.ProjectID = projectID
		}
		if e.Type == "" {
			e.Type = event.TypeInfo
		}
		if e.Occurred == 0 {
			e.Occurred = nowMs
		}
		e.Data = nullToEmpty(e.Data)
		if err := enrichEvent(en, e, in[i].RequestContext); err != nil {
			return nil, prefixError(fmt.Sprintf("events[%d]", i), err)
		}
		if err := e.Validate(); err != nil {
			return nil, prefixError(fmt.Sprintf("events[%d]", i), err)
		}
	}
	return events, nil
}

// enrichEvent parses the sender's requestContext and fills what the event
// left empty. Without an enricher the context is still checked, so a
// sender learns of a bad one whatever the server's configuration.
func enrichEvent(en *enrich.Enricher, e *event.Event, raw json.RawMessage) error {
	rc, err := enrich.ParseRequestContext(raw)
	if err != nil {
		return &Error{Code: CodeInvalidArgument, field: true,
			Message: "requestContext: " + strings.TrimPrefix(strings.TrimPrefix(err.Error(), enrich.ErrContext.Error()), ": ")}
	}
	if en != nil {
		en.Enrich(e, rc)
	}
	return nil
}

// batchEvent is the wire record of a batch.
type batchEvent struct {
	ID             string          `json:"id"`
	ProjectID      string          `json:"projectId"`
	Level          event.Level     `json:"level"`
	UserID         string          `json:"userId"`
	Action         string          `json:"action"`
	Type           string          `json:"type"`
	ActorID        string          `json:"actorId"`
	Occurred       json.RawMessage `json:"occurred"`
	Device         string          `json:"device"`
	Method         string          `json:"method"`
	Geo            string          `json:"geo"`
	RemoteAddress  string          `json:"remoteAddress"`
	ExternalIDs    []string        `json:"externalIds"`
	Tenants        []string        `json:"tenants"`
	Data           json.RawMessage `json:"data"`
	RequestContext json.RawMessage `json:"requestContext"`
}

func (b *batchEvent) toEvent(e *event.Event) error {
	occurred, err := event.ParseMillis(b.Occurred)
	if err != nil {
		return &event.FieldError{Field: "occurred", Reason: err.Error()}
	}
	*e = event.Event{ID: b.ID, ProjectID: b.ProjectID, Level: b.Level, UserID: b.UserID, Action: b.Action,
		Type: b.Type, ActorID: b.ActorID, Occurred: occurred, Device: b.Device, Method: b.Method, Geo: b.Geo,
		RemoteAddress: b.RemoteAddress, LoginIDs: b.ExternalIDs, Tenants: b.Tenants, Data: b.Data}
	return nil
}

// prefixError names where in the batch an error is: "events[12].type: …".
func prefixError(prefix string, err error) error {
	var fieldErr *event.FieldError
	var apiErr *Error
	switch {
	case errors.As(err, &fieldErr):
		return Errorf(CodeInvalidArgument, "%s.%s: %s", prefix, fieldErr.Field, fieldErr.Reason)
	case errors.As(err, &apiErr):
		c := *apiErr
		if c.field {
			c.Message = prefix + "." + c.Message
		} else {
			c.Message = prefix + ": " + c.Message
		}
		return &c
	default:
		return err
	}
}

func nullToEmpty(d json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(d); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return d
}

func isNotFound(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, tenancy.ErrNotFound)
}

// authorizeEvents checks that the caller may write each event: project
// events only to projects the key may use and that belong to its company,
// company events only with a key spanning every project.
func (a *API) authorizeEvents(r *http.Request, p Principal, events []event.Event) error {
	checked := map[string]bool{p.ProjectID: true}
	for i := range events {
		e := &events[i]
		e.CompanyID = p.CompanyID
		switch e.Level {
		case event.LevelCompany:
			if !p.AllProjects() {
				return Errorf(CodeForbidden, "events[%d]: company-level events need a key scoped to all projects", i)
			}
		case event.LevelProject:
			if checked[e.ProjectID] {
				continue
			}
			proj, err := a.opts.Directory.Project(r.Context(), e.ProjectID)
			if err != nil || proj.CompanyID != p.CompanyID {
				if err != nil && !isNotFound(err) {
					return fmt.Errorf("look up project: %w", err)
				}
				return Errorf(CodeNotFound, "events[%d].projectId: unknown project %q", i, e.ProjectID)
			}
			if !p.MayUseProject(e.ProjectID) {
				return Errorf(CodeForbidden, "events[%d].projectId: the management key is not scoped to project %q", i, e.ProjectID)
			}
			checked[e.ProjectID] = true
		}
	}
	return nil
}

// ingest stores events durably and returns their ids in request order.
func (a *API) ingest(ctx context.Context, api string, events []event.Event) ([]string, error) {
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = event.NewID()
		}
	}
	start := time.Now()
	err := a.opts.Store.Append(ctx, events)
	a.met.ingestSeconds.With(api).ObserveSince(start)
	if err != nil {
		return nil, fmt.Errorf("append %d events: %w", len(events), err)
	}
	if a.opts.AfterAppend != nil {
		a.opts.AfterAppend()
	}
	stored := 0
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
		if events[i].Seq != 0 {
			stored++
		}
	}
	a.met.ingested.With(api).Add(float64(stored))
	return ids, nil
}

func (a *API) handleCreateEvent(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	e, err := DecodeCreateEvent(body, p.ProjectID, a.now(), a.opts.Enricher)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	events := []event.Event{e}
	if err := a.authorizeEvents(r, p, events); err != nil {
		WriteError(w, r, err)
		return
	}
	ids, err := a.ingest(r.Context(), "event", events)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": ids[0]})
}

func (a *API) handleBatch(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	select {
	case a.batchSlots <- struct{}{}:
	case <-r.Context().Done():
		WriteError(w, r, r.Context().Err())
		return
	}
	body, err := readBody(w, r, MaxBatchBytes)
	if err != nil {
		<-a.batchSlots
		WriteError(w, r, err)
		return
	}
	events, err := DecodeBatch(body, p.ProjectID, a.now(), a.opts.Enricher)
	<-a.batchSlots // the body is no longer needed; the decoded events are
	if err != nil {
		WriteError(w, r, err)
		return
	}
	a.storeBatch(w, r, p, events)
}

func (a *API) storeBatch(w http.ResponseWriter, r *http.Request, p Principal, events []event.Event) {
	if err := a.authorizeEvents(r, p, events); err != nil {
		WriteError(w, r, err)
		return
	}
	ids, err := a.ingest(r.Context(), "batch", events)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"ids": ids})
}

func (a *API) handleGet(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	id := r.PathValue("id")
	e, err := a.opts.Store.Get(r.Context(), p.CompanyID, id)
	if err != nil {
		if isNotFound(err) {
			WriteError(w, r, Errorf(CodeNotFound, "no event %q", id))
			return
		}
		WriteError(w, r, fmt.Errorf("get event: %w", err))
		return
	}
	// Out of scope answers exactly like unknown.
	inScope := (e.Level == event.LevelProject && e.ProjectID == p.ProjectID) || (e.Level == event.LevelCompany && p.AllProjects())
	if !inScope {
		WriteError(w, r, Errorf(CodeNotFound, "no event %q", id))
		return
	}
	writeJSON(w, http.StatusOK, e)
}
