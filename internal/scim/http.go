package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/metrics"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// maxBody bounds one recorded operation: a SCIM request, its result and
// the previous resource together.
const maxBody = 1 << 20

// Deps are what the SCIM endpoint needs. Store is required.
type Deps struct {
	Store store.Store
	// Enricher, when set, fills device, remote address, geo and
	// request_details from the operation's requestContext.
	Enricher *enrich.Enricher
	Logger   *slog.Logger
	// AfterAppend, when set, is called after each stored event, like
	// httpapi.Options.AfterAppend (streams wake up instead of polling).
	// It must not block.
	AfterAppend func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Request is the body of POST /v1/mgmt/audit/scim.
type Request struct {
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Request  json.RawMessage `json:"request"`
	Result   json.RawMessage `json:"result"`
	Error    json.RawMessage `json:"error"`
	Previous json.RawMessage `json:"previous"`
	UserID   string          `json:"userId"`
	ActorID  string          `json:"actorId"`
	TenantID string          `json:"tenantId"`
	Occurred json.RawMessage `json:"occurred"`
	ID       string          `json:"id"`
	// RequestContext is the identity provider's request as the SCIM server
	// saw it (IP, user-agent…), for enrichment.
	RequestContext json.RawMessage `json:"requestContext"`
}

// Register mounts POST /v1/mgmt/audit/scim (writer role).
func Register(api *httpapi.API, deps Deps) {
	if deps.Logger == nil {
		deps.Logger = api.Logger()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	recorded := api.Metrics().NewCounterVec("audittrail_scim_events_total",
		"SCIMEvent rows recorded, by type (error: the identity provider's call failed).", "type")
	api.Handle("POST /v1/mgmt/audit/scim", tenancy.RoleWriter, true, &handler{deps: deps, recorded: recorded})
}

type handler struct {
	deps     Deps
	recorded *metrics.CounterVec
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	ev, err := h.decode(w, r, p.ProjectID)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ev.CompanyID = p.CompanyID
	if err := h.deps.Store.Append(r.Context(), []event.Event{ev}); err != nil {
		httpapi.WriteError(w, r, fmt.Errorf("append SCIM event: %w", err))
		return
	}
	h.recorded.With(ev.Type).Inc()
	if h.deps.AfterAppend != nil {
		h.deps.AfterAppend()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": ev.ID})
}

// Decode turns a request body into the SCIMEvent of projectID, validated
// and enriched, with an id.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, projectID string) (event.Event, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return event.Event{}, httpapi.Errorf(httpapi.CodeMediaType, "Content-Type must be application/json, not %q", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return event.Event{}, err
		}
		return event.Event{}, httpapi.Errorf(httpapi.CodeBadRequest, "could not read the request body")
	}
	return DecodeRequest(body, projectID, h.deps.Now(), h.deps.Enricher)
}

// DecodeRequest parses a POST /v1/mgmt/audit/scim body into a stored-ready
// event of projectID (company left to the caller).
func DecodeRequest(body []byte, projectID string, now time.Time, en *enrich.Enricher) (event.Event, error) {
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return event.Event{}, httpapi.Errorf(httpapi.CodeBadRequest, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if req.Method == "" {
		return event.Event{}, httpapi.Errorf(httpapi.CodeMissingArgument, "method: is required")
	}
	if req.Path == "" {
		return event.Event{}, httpapi.Errorf(httpapi.CodeMissingArgument, "path: is required")
	}
	occurred, err := event.ParseMillis(req.Occurred)
	if err != nil {
		return event.Event{}, httpapi.Errorf(httpapi.CodeInvalidArgument, "occurred: %v", err)
	}
	if occurred == 0 {
		occurred = now.UnixMilli()
	}
	rc, err := enrich.ParseRequestContext(req.RequestContext)
	if err != nil {
		return event.Event{}, httpapi.Errorf(httpapi.CodeInvalidArgument, "requestContext: %s", strings.TrimPrefix(err.Error(), enrich.ErrContext.Error()+": "))
	}
	ev, err := Event(Operation{
		Method: req.Method, Path: req.Path, Request: req.Request, Result: req.Result, Error: req.Error,
		Previous: req.Previous, UserID: req.UserID, ActorID: req.ActorID, TenantID: req.TenantID, Occurred: occurred,
	})
	if err != nil {
		return event.Event{}, httpapi.Errorf(httpapi.CodeInvalidArgument, "%s", strings.TrimPrefix(err.Error(), "scim: "))
	}
	ev.ProjectID = projectID
	ev.ID = req.ID
	if en != nil {
		en.Enrich(&ev, rc)
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, err
	}
	if ev.ID == "" {
		ev.ID = event.NewID()
	}
	return ev, nil
}
