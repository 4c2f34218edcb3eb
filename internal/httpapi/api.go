// Package httpapi serves audittrail over HTTP: the Descope-compatible audit
// endpoints, the native batch, export and admin APIs, and the operational
// endpoints. It decodes and authorises requests, then hands them to the
// store and the tenancy directory; every error leaves through WriteError.
//
// Other packages mount their routes on the same mux with Handle, behind the
// same authentication (PrincipalFrom) and the same error format.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/metrics"
	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// Limits of one request, with their reasons.
const (
	// MaxBatchBytes and MaxBatchEvents bound one batch ingest: large enough
	// for efficient bulk loads, small enough to hold in memory per request.
	MaxBatchBytes  = 10 << 20
	MaxBatchEvents = 10_000
	// MaxBodyBytes bounds every other request body; a search or one event
	// is far smaller.
	MaxBodyBytes = 1 << 20
	// MaxTextBytes bounds the free-text query.
	MaxTextBytes = 1024
	// maxConcurrentBatches bounds the batch bodies held in memory at once
	// (each up to MaxBatchBytes, several times that once decoded), so a
	// burst of bulk loads cannot exhaust memory; later ones wait their turn.
	maxConcurrentBatches = 8
	// searchWindowGrace tolerates a client that computed `from` as
	// now − window a moment before the server reads it.
	searchWindowGrace = time.Minute
)

// Credentials are what an Authorization header carried.
type Credentials struct {
	ProjectID     string // "" when the header named none
	ManagementKey string // "K<id>.<secret>"
}

// KeyIssuer creates the secret part of management keys; the tenancy
// package owns the format and the hash.
type KeyIssuer interface {
	// NewKey fills ID and Hash of k and returns the full management key,
	// shown to the user once.
	NewKey(k tenancy.Key) (tenancy.Key, string, error)
	// Rotate replaces the secret of k (same ID) and returns the new full key.
	Rotate(k tenancy.Key) (tenancy.Key, string, error)
}

// Options configure the API. Store, Directory, Authenticate and Keys are
// required.
type Options struct {
	Store     store.Store
	Directory tenancy.Directory
	// Authenticate checks a management key against the directory (hash,
	// constant-time compare, revoked, expired) and returns its record. Any
	// error other than store.ErrUnavailable answers 401.
	Authenticate func(ctx context.Context, managementKey string) (tenancy.Key, error)
	Keys         KeyIssuer
	// Limiter limits searches per project; nil means no limit.
	Limiter ratelimit.Limiter
	// SearchRateLimit is the server default of searches per minute per
	// project, used unless the company's settings say otherwise; 0 = off.
	SearchRateLimit int
	// Enricher, when set, fills the fields an ingested event left empty
	// from the `requestContext` its sender passed (device, remote address,
	// geo, data.request_details).
	Enricher *enrich.Enricher
	Logger   *slog.Logger
	Metrics  *metrics.Registry
	// AfterAppend, when set, is called after every acknowledged append
	// (stream delivery wakes up on it instead of waiting for its poll).
	// It must not block.
	AfterAppend func()
	// Ready reports whether start-up (recovery, bootstrap) is complete;
	// /healthz answers 503 until it does. nil means always ready.
	Ready func() bool
	// Health, when set, adds detail to a ready /healthz: a status other
	// than "ok" (e.g. "degraded": serving, but stored data was found
	// damaged) and what the operator should know. The answer stays 200:
	// the server serves. It must name no tenant's data (/healthz is public).
	Health func() (status string, detail any)
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

// API is the HTTP handler of the service.
type API struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	met  apiMetrics
	now  func() time.Time
	// batchSlots holds a token per batch request being read or decoded.
	batchSlots chan struct{}
	// leafIndexer answers search's withLeafIndex; nil without a ledger.
	leafIndexer LeafIndexer
}

type apiMetrics struct {
	requests       *metrics.CounterVec
	requestSeconds *metrics.HistogramVec
	ingested       *metrics.CounterVec
	ingestSeconds  *metrics.HistogramVec
	searches       *metrics.CounterVec
	searchSeconds  *metrics.HistogramVec
	rateLimited    *metrics.Counter
	limiterErrors  *metrics.Counter
}

// ErrOptions is returned by New for incomplete options.
var ErrOptions = errors.New("httpapi: invalid options")

// New builds the API and its routes.
func New(opts Options) (*API, error) {
	if opts.Store == nil || opts.Directory == nil || opts.Authenticate == nil || opts.Keys == nil {
		return nil, ErrOptions
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &API{opts: opts, log: opts.Logger, mux: http.NewServeMux(), now: opts.Now, batchSlots: make(chan struct{}, maxConcurrentBatches)}
	m := opts.Metrics
	a.met = apiMetrics{
		requests:       m.NewCounterVec("audittrail_http_requests_total", "HTTP requests by route and status code.", "route", "code"),
		requestSeconds: m.NewHistogramVec("audittrail_http_request_duration_seconds", "HTTP request latency by route.", nil, "route"),
		ingested:       m.NewCounterVec("audittrail_events_ingested_total", "Events stored, by API (event, batch, admin).", "api"),
		ingestSeconds:  m.NewHistogramVec("audittrail_ingest_duration_seconds", "Time to store one ingest request durably.", nil, "api"),
		searches:       m.NewCounterVec("audittrail_searches_total", "Searches and exports run, by kind.", "kind"),
		searchSeconds:  m.NewHistogramVec("audittrail_search_duration_seconds", "Search latency in the store.", nil, "kind"),
		rateLimited:    m.NewCounter("audittrail_searches_rate_limited_total", "Searches refused by the rate limit."),
		limiterErrors:  m.NewCounter("audittrail_rate_limiter_errors_total", "Searches allowed because the rate limiter failed."),
	}
	a.routes()
	return a, nil
}

// ServeHTTP serves every route through the common layers.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.serveTop(w, r) }

func (a *API) routes() {
	// Descope-compatible.
	a.Handle("POST /v1/mgmt/audit/search", tenancy.RoleReader, true, http.HandlerFunc(a.handleSearch))
	a.Handle("POST /v1/mgmt/audit/event", tenancy.RoleWriter, true, http.HandlerFunc(a.handleCreateEvent))
	a.mux.HandleFunc("GET /v1/mgmt/license", a.handleLicense)

	// Native.
	a.Handle("POST /v1/mgmt/audit/events", tenancy.RoleWriter, true, http.HandlerFunc(a.handleBatch))
	a.Handle("POST /v1/mgmt/audit/export", tenancy.RoleReader, true, http.HandlerFunc(a.handleExport))
	a.Handle("GET /v1/mgmt/audit/event/{id}", tenancy.RoleReader, true, http.HandlerFunc(a.handleGet))

	// Admin.
	a.Handle("GET /v1/mgmt/projects", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleListProjects))
	a.Handle("POST /v1/mgmt/projects", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleCreateProject))
	a.Handle("DELETE /v1/mgmt/projects/{id}", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleDeleteProject))
	a.Handle("GET /v1/mgmt/keys", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleListKeys))
	a.Handle("POST /v1/mgmt/keys", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleCreateKey))
	a.Handle("POST /v1/mgmt/keys/{id}/revoke", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleRevokeKey))
	a.Handle("POST /v1/mgmt/keys/{id}/rotate", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleRotateKey))
	a.Handle("GET /v1/mgmt/company/settings", tenancy.RoleAdmin, false, http.HandlerFunc(a.handleGetSettings))
	a.Handle("PATCH /v1/mgmt/company/settings", tenancy.RoleAdmin, false, http.HandlerFunc(a.handlePatchSettings))

	// Operations.
	a.mux.HandleFunc("GET /healthz", a.handleHealth)
	a.mux.Handle("GET /metrics", a.opts.Metrics.Handler())
}

// Handle mounts h at pattern (net/http ServeMux syntax, method included)
// behind authentication: the caller's key must hold at least role, and
// when needProject is true the Authorization header must name a project the
// key may use. h finds the caller with PrincipalFrom and reports errors
// with WriteError. Use HandlePublic for routes without authentication.
func (a *API) Handle(pattern string, role tenancy.Role, needProject bool, h http.Handler) {
	a.mux.Handle(pattern, a.Authenticated(role, needProject, h))
}

// HandlePublic mounts h at pattern without authentication (console
// assets, webhooks' health pages). It still gets the request log, the
// request id, panic recovery and the metrics.
func (a *API) HandlePublic(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// Logger is the API's logger, for handlers mounted by other packages.
func (a *API) Logger() *slog.Logger { return a.log }

// Metrics is the registry /metrics serves; other packages add theirs.
func (a *API) Metrics() *metrics.Registry { return a.opts.Metrics }
