package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// SearchRequest is Descope's search body plus our extensions. Lists may be
// absent or null (no filter); `from`/`to` may be numbers or numeric
// strings, ≤ 0 meaning unset.
type SearchRequest struct {
	UserIDs         []string        `json:"userIds"`
	Actions         []string        `json:"actions"`
	ExcludedActions []string        `json:"excludedActions"`
	ActorIDs        []string        `json:"actorIds"`
	Devices         []string        `json:"devices"`
	Methods         []string        `json:"methods"`
	Geos            []string        `json:"geos"`
	RemoteAddresses []string        `json:"remoteAddresses"`
	ExternalIDs     []string        `json:"externalIds"`
	LoginIDs        []string        `json:"loginIds"` // the SDKs' own name, accepted too
	Tenants         []string        `json:"tenants"`
	NoTenants       bool            `json:"noTenants"`
	Text            string          `json:"text"`
	From            json.RawMessage `json:"from"`
	To              json.RawMessage `json:"to"`
	Size            *int            `json:"size"`
	Limit           *int            `json:"limit"`     // older name of size
	BatchSize       *int            `json:"batchSize"` // older name of size
	Page            *int            `json:"page"`
	// Extensions.
	Levels        []string `json:"levels"`
	ChangedFields []string `json:"changedFields"`
	OldestFirst   bool     `json:"oldestFirst"`
	// WithLeafIndex asks for each record's "leafIndex" in the tamper-evident
	// ledger (docs/tamper-evidence.md); records are otherwise unchanged.
	WithLeafIndex bool `json:"withLeafIndex"`
}

// DecodeSearchRequest parses a search body strictly (types, UTF-8, NUL,
// trailing data) but tolerates unknown keys, as newer SDKs may send some.
func DecodeSearchRequest(body []byte) (SearchRequest, error) {
	var req SearchRequest
	if err := decodeStrict(body, &req, true); err != nil {
		return SearchRequest{}, err
	}
	return req, nil
}

// Resolve checks the request and turns it into the store's query for a
// caller, with `from` defaulted and checked against the search window.
func (req *SearchRequest) Resolve(p Principal, settings tenancy.Settings, now time.Time) (query.Query, error) {
	q := query.Query{
		CompanyID:       p.CompanyID,
		ProjectID:       p.ProjectID,
		UserIDs:         req.UserIDs,
		Actions:         req.Actions,
		ExcludedActions: req.ExcludedActions,
		ActorIDs:        req.ActorIDs,
		Devices:         req.Devices,
		Methods:         req.Methods,
		Geos:            req.Geos,
		RemoteAddresses: req.RemoteAddresses,
		LoginIDs:        append(append([]string(nil), req.ExternalIDs...), req.LoginIDs...),
		Tenants:         req.Tenants,
		NoTenants:       req.NoTenants,
		ChangedFields:   req.ChangedFields,
		OldestFirst:     req.OldestFirst,
	}
	for _, l := range []struct {
		name string
		v    []string
	}{
		{"userIds", q.UserIDs}, {"actions", q.Actions}, {"excludedActions", q.ExcludedActions},
		{"actorIds", q.ActorIDs}, {"devices", q.Devices}, {"methods", q.Methods}, {"geos", q.Geos},
		{"remoteAddresses", q.RemoteAddresses}, {"externalIds", q.LoginIDs}, {"tenants", q.Tenants},
		{"changedFields", q.ChangedFields}, {"levels", req.Levels},
	} {
		if err := checkList(l.name, l.v, query.MaxValues); err != nil {
			return query.Query{}, err
		}
	}

	// Levels: both unless narrowed; company-level events need a key that
	// spans the company, since they may concern any project.
	q.IncludeProject = p.ProjectID != ""
	q.IncludeCompany = p.AllProjects()
	if len(req.Levels) > 0 {
		var wantProject, wantCompany bool
		for i, l := range req.Levels {
			switch event.Level(l) {
			case event.LevelProject:
				wantProject = true
			case event.LevelCompany:
				wantCompany = true
			default:
				return query.Query{}, Errorf(CodeInvalidArgument, "levels[%d]: must be \"project\" or \"company\"", i)
			}
		}
		q.IncludeProject = q.IncludeProject && wantProject
		q.IncludeCompany = q.IncludeCompany && wantCompany
		if wantCompany && !p.AllProjects() {
			return query.Query{}, Errorf(CodeForbidden, "company-level events need a key scoped to all projects")
		}
	}
	if !q.IncludeProject && !q.IncludeCompany {
		return query.Query{}, Errorf(CodeMissingArgument, "the search names no project: use \"Bearer <projectId>:<managementKey>\"")
	}

	if len(req.Text) > MaxTextBytes {
		return query.Query{}, Errorf(CodeInvalidArgument, "text: longer than %d bytes", MaxTextBytes)
	}
	q.TextTokens = query.TextTokens(req.Text)
	if len(q.TextTokens) > 64 {
		return query.Query{}, Errorf(CodeInvalidArgument, "text: more than 64 words")
	}

	from, err := event.ParseMillis(req.From)
	if err != nil {
		return query.Query{}, Errorf(CodeInvalidArgument, "from: %v", err)
	}
	to, err := event.ParseMillis(req.To)
	if err != nil {
		return query.Query{}, Errorf(CodeInvalidArgument, "to: %v", err)
	}
	if from < 0 {
		from = 0
	}
	if to < 0 {
		to = 0
	}
	window := settings.SearchWindowDays
	if window <= 0 {
		window = tenancy.DefaultSettings().SearchWindowDays
	}
	windowStart := now.Add(-time.Duration(window) * 24 * time.Hour).UnixMilli()
	switch {
	case from == 0:
		if to > 0 && to < windowStart {
			return query.Query{}, Errorf(CodeInvalidArgument, "to: the search window is %d days: `to` may not be older than %s",
				window, time.UnixMilli(windowStart).UTC().Format(time.RFC3339))
		}
		from = windowStart
	case from < windowStart-searchWindowGrace.Milliseconds():
		return query.Query{}, Errorf(CodeInvalidArgument, "from: the search window is %d days: `from` may not be older than %s",
			window, time.UnixMilli(windowStart).UTC().Format(time.RFC3339))
	case from < windowStart:
		from = windowStart
	}
	if to > 0 && from > to {
		return query.Query{}, Errorf(CodeInvalidArgument, "from (%d) is after to (%d)", from, to)
	}
	q.From, q.To = from, to

	size := 0
	for _, s := range []struct {
		name string
		v    *int
	}{{"size", req.Size}, {"limit", req.Limit}, {"batchSize", req.BatchSize}} {
		if s.v == nil {
			continue
		}
		if *s.v < 0 || *s.v > query.MaxSize {
			return query.Query{}, Errorf(CodeInvalidArgument, "%s: must be between 0 and %d", s.name, query.MaxSize)
		}
		if size == 0 {
			size = *s.v
		}
	}
	if size == 0 {
		size = query.DefaultSize
	}
	q.Size = size
	if req.Page != nil {
		if *req.Page < 0 {
			return query.Query{}, Errorf(CodeInvalidArgument, "page: must not be negative")
		}
		if *req.Page > query.MaxOffset/size {
			return query.Query{}, Errorf(CodeInvalidArgument, "page: page × size may not exceed %d; narrow the search with from/to", query.MaxOffset)
		}
		q.Page = *req.Page
	}
	return q, nil
}

// searchResponse is Descope's answer.
type searchResponse struct {
	Audits []event.Event `json:"audits"`
	Total  int           `json:"total"`
}

func (a *API) handleSearch(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	body, err := readBody(w, r, MaxBodyBytes)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	req, err := DecodeSearchRequest(body)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	company, err := a.opts.Directory.Company(r.Context(), p.CompanyID)
	if err != nil {
		WriteError(w, r, fmt.Errorf("look up company: %w", err))
		return
	}
	q, err := req.Resolve(p, company.Settings, a.now())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	if err := a.TakeSearchToken(r, p, company.Settings); err != nil {
		WriteError(w, r, err)
		return
	}
	start := time.Now()
	res, err := a.opts.Store.Search(r.Context(), q)
	a.met.searchSeconds.With("search").ObserveSince(start)
	a.met.searches.With("search").Inc()
	if err != nil {
		WriteError(w, r, fmt.Errorf("search: %w", err))
		return
	}
	if res.Events == nil {
		res.Events = []event.Event{}
	}
	if req.WithLeafIndex {
		audits, err := a.withLeafIndexes(r, p, res.Events)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Audits []json.RawMessage `json:"audits"`
			Total  int               `json:"total"`
		}{audits, res.Total})
		return
	}
	writeJSON(w, http.StatusOK, searchResponse{Audits: res.Events, Total: res.Total})
}

// LeafIndexer tells the position of events in the tamper-evident ledger:
// the leaf index of each, or -1 when the ledger does not hold it (yet).
type LeafIndexer func(ctx context.Context, p Principal, events []event.Event) ([]int64, error)

// SetLeafIndexer lets the ledger answer search's "withLeafIndex"; call it
// before serving. Without one, such a search answers 400.
func (a *API) SetLeafIndexer(f LeafIndexer) { a.leafIndexer = f }

// withLeafIndexes encodes each record with a "leafIndex" member added
// (null when the ledger has not reached it yet).
func (a *API) withLeafIndexes(r *http.Request, p Principal, evs []event.Event) ([]json.RawMessage, error) {
	if a.leafIndexer == nil {
		return nil, Errorf(CodeInvalidArgument, "withLeafIndex: this server keeps no ledger (--ledger=false)")
	}
	idx, err := a.leafIndexer(r.Context(), p, evs)
	if err != nil {
		return nil, fmt.Errorf("leaf indexes: %w", err)
	}
	out := make([]json.RawMessage, len(evs))
	for i := range evs {
		b, err := json.Marshal(evs[i])
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		leaf := "null"
		if i < len(idx) && idx[i] >= 0 {
			leaf = strconv.FormatInt(idx[i], 10)
		}
		// The wire record is always a JSON object: add the member before
		// its closing brace.
		out[i] = append(append(b[:len(b)-1:len(b)-1], `,"leafIndex":`+leaf...), '}')
	}
	return out, nil
}

// TakeSearchToken spends one token of the caller's per-project search
// budget. /search, export and the routes mounted beside the API (the
// console's tail and histogram) all take theirs here, so they share one
// budget. It answers a CodeRateLimited *Error with RetryAfter when the
// budget is spent, and fails open if the limiter is down.
func (a *API) TakeSearchToken(r *http.Request, p Principal, s tenancy.Settings) error {
	if a.opts.Limiter == nil {
		return nil
	}
	limit := a.opts.SearchRateLimit
	if s.SearchRateLimit != nil {
		limit = *s.SearchRateLimit
	}
	if limit <= 0 {
		return nil
	}
	key := "search:" + p.CompanyID + ":" + p.ProjectID
	d, err := a.opts.Limiter.Allow(r.Context(), key, limit, time.Minute)
	if err != nil {
		if r.Context().Err() != nil {
			return r.Context().Err()
		}
		// Fail open: the limit protects the service, it guards no data, and
		// a shared limiter (Redis, PostgreSQL) being down should not take
		// search down with it.
		a.met.limiterErrors.Inc()
		loggerFrom(r.Context()).Warn("search rate limiter unavailable; allowing the search", "request_id", RequestID(r.Context()), "error", err)
		return nil
	}
	if !d.Allowed {
		a.met.rateLimited.Inc()
		return &Error{Code: CodeRateLimited, RetryAfter: d.RetryAfter,
			Message: fmt.Sprintf("search is limited to %d requests a minute per project; retry in %d s", limit, retryAfterSeconds(d.RetryAfter))}
	}
	return nil
}
