// Package ledgerhttp serves the tamper evidence of internal/ledger over
// HTTP: the checkpoint key at a well-known public address, signed
// checkpoints (latest, on demand, history), inclusion and consistency
// proofs, each record's leaf index in search results, and the evidence
// stream batches carry. Routes follow search's scoping: a key sees the
// tree of the project its request names, and the company-level tree only
// when it spans every project.
package ledgerhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// KeyPath is where the checkpoint verifier key is published.
const KeyPath = "/.well-known/audittrail/checkpoint-key"

// Limits of one request, with their reasons.
const (
	// MaxProofBatch bounds the ids of one POST /v1/mgmt/ledger/proofs: an
	// export of a million events takes a thousand calls, each answer a few
	// MiB at most.
	MaxProofBatch = 1000
	// maxCheckpointList bounds one page of checkpoint history.
	maxCheckpointList     = 1000
	defaultCheckpointList = 100
	// syncTimeout bounds how long an on-demand checkpoint waits for the
	// appender to reach the events stored before the call.
	syncTimeout = 30 * time.Second
)

// Ledger is what the routes need of *ledger.Ledger.
type Ledger interface {
	VerifierKey() string
	Sync(ctx context.Context) error
	WaitFor(ctx context.Context, seq uint64) error
	LatestCheckpoint(ctx context.Context, t ledger.TreeID) (ledger.Checkpoint, error)
	CheckpointNow(ctx context.Context, t ledger.TreeID) (ledger.Checkpoint, error)
	Checkpoints(ctx context.Context, t ledger.TreeID, fromSize uint64, limit int) ([]ledger.Checkpoint, error)
	Locate(ctx context.Context, companyID, eventID string) (ledger.Leaf, error)
	LocateEvent(ctx context.Context, e *event.Event) (ledger.Leaf, error)
	InclusionProof(ctx context.Context, t ledger.TreeID, index, size uint64) (ledger.InclusionProof, error)
	ConsistencyProof(ctx context.Context, t ledger.TreeID, from, to uint64) (ledger.ConsistencyProof, error)
}

var _ Ledger = (*ledger.Ledger)(nil)

// Options configure the routes.
type Options struct {
	// OriginPrefix is the first part of every checkpoint's origin line
	// (ledger.Options.OriginPrefix); published with the key.
	OriginPrefix string
	// Logger receives the alarms: a stored event that no longer matches
	// its leaf.
	Logger *slog.Logger
}

type handlers struct {
	l    Ledger
	opts Options
}

// Register mounts the routes on api and lets search answer withLeafIndex.
func Register(api *httpapi.API, l Ledger, opts Options) {
	if opts.OriginPrefix == "" {
		opts.OriginPrefix = ledger.DefaultOriginPrefix
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handlers{l: l, opts: opts}
	api.HandlePublic("GET "+KeyPath, http.HandlerFunc(h.key))
	api.Handle("GET /v1/mgmt/ledger/checkpoint", tenancy.RoleReader, true, http.HandlerFunc(h.latest))
	api.Handle("POST /v1/mgmt/ledger/checkpoint", tenancy.RoleReader, true, http.HandlerFunc(h.now))
	api.Handle("GET /v1/mgmt/ledger/checkpoints", tenancy.RoleReader, true, http.HandlerFunc(h.history))
	api.Handle("GET /v1/mgmt/ledger/proof/inclusion", tenancy.RoleReader, true, http.HandlerFunc(h.inclusion))
	api.Handle("POST /v1/mgmt/ledger/proofs", tenancy.RoleReader, true, http.HandlerFunc(h.proofs))
	api.Handle("GET /v1/mgmt/ledger/proof/consistency", tenancy.RoleReader, true, http.HandlerFunc(h.consistency))
	api.SetLeafIndexer(h.leafIndexes)
}

// KeyDoc is the body of the well-known key endpoint.
type KeyDoc struct {
	VerifierKey  string `json:"verifierKey"`
	OriginPrefix string `json:"originPrefix"`
	Algorithm    string `json:"algorithm"`
}

func (h *handlers) key(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, KeyDoc{VerifierKey: h.l.VerifierKey(), OriginPrefix: h.opts.OriginPrefix, Algorithm: "Ed25519"})
}

// treeOf resolves ?tree=project|company for the caller.
func treeOf(r *http.Request, p httpapi.Principal, name string) (ledger.TreeID, error) {
	switch name {
	case "", "project":
		if p.ProjectID == "" {
			return ledger.TreeID{}, httpapi.Errorf(httpapi.CodeMissingArgument, "the request names no project: use \"Bearer <projectId>:<managementKey>\"")
		}
		return ledger.TreeID{CompanyID: p.CompanyID, ProjectID: p.ProjectID}, nil
	case "company":
		if !p.AllProjects() {
			return ledger.TreeID{}, httpapi.Errorf(httpapi.CodeForbidden, "the company-level tree needs a key scoped to all projects")
		}
		return ledger.TreeID{CompanyID: p.CompanyID}, nil
	}
	return ledger.TreeID{}, httpapi.Errorf(httpapi.CodeInvalidArgument, "tree: must be \"project\" or \"company\"")
}

// mayRead reports whether the caller may see tree t (search's rule).
func mayRead(p httpapi.Principal, t ledger.TreeID) bool {
	if t.CompanyID != p.CompanyID {
		return false
	}
	if t.ProjectID == "" {
		return p.AllProjects()
	}
	return t.ProjectID == p.ProjectID
}

func (h *handlers) latest(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	t, err := treeOf(r, p, r.URL.Query().Get("tree"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	cp, err := h.latestCheckpoint(r.Context(), t)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	writeCheckpoint(w, r, cp)
}

// latestCheckpoint is the newest signed checkpoint, signing one when the
// tree has none yet (a new project, a fresh start).
func (h *handlers) latestCheckpoint(ctx context.Context, t ledger.TreeID) (ledger.Checkpoint, error) {
	cp, err := h.l.LatestCheckpoint(ctx, t)
	if errors.Is(err, ledger.ErrNotFound) {
		cp, err = h.l.CheckpointNow(ctx, t)
	}
	if err != nil {
		return ledger.Checkpoint{}, mapErr(fmt.Errorf("checkpoint of %s: %w", t, err))
	}
	return cp, nil
}

func (h *handlers) now(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	t, err := treeOf(r, p, r.URL.Query().Get("tree"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	// On demand means "covering what was stored before I asked": wait for
	// the appender to reach the store's end first.
	ctx, cancel := context.WithTimeout(r.Context(), syncTimeout)
	defer cancel()
	if err := h.l.Sync(ctx); err != nil {
		httpapi.WriteError(w, r, mapErr(fmt.Errorf("ledger sync: %w", err)))
		return
	}
	cp, err := h.l.CheckpointNow(ctx, t)
	if err != nil {
		httpapi.WriteError(w, r, mapErr(fmt.Errorf("checkpoint of %s: %w", t, err)))
		return
	}
	writeCheckpoint(w, r, cp)
}

func (h *handlers) history(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	q := r.URL.Query()
	t, err := treeOf(r, p, q.Get("tree"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	from, err := uintParam(q.Get("from"), "from", 0)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	limit, err := uintParam(q.Get("limit"), "limit", defaultCheckpointList)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	switch {
	case limit == 0:
		limit = defaultCheckpointList
	case limit > maxCheckpointList:
		limit = maxCheckpointList
	}
	cps, err := h.l.Checkpoints(r.Context(), t, from, int(limit))
	if err != nil {
		httpapi.WriteError(w, r, mapErr(err))
		return
	}
	out := make([]CheckpointJSON, len(cps))
	for i, cp := range cps {
		out[i] = checkpointJSON(cp)
	}
	writeJSON(w, http.StatusOK, struct {
		Checkpoints []CheckpointJSON `json:"checkpoints"`
	}{out})
}

func (h *handlers) inclusion(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	q := r.URL.Query()
	id := q.Get("id")
	if id == "" {
		httpapi.WriteError(w, r, httpapi.Errorf(httpapi.CodeMissingArgument, "id: the event id is required"))
		return
	}
	size, err := uintParam(q.Get("size"), "size", 0)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	leaf, err := h.locate(r.Context(), p.CompanyID, id)
	if err == nil && !mayRead(p, leaf.Tree) {
		// Another project's event answers like an unknown one.
		err = ledger.ErrNotFound
	}
	if err != nil {
		httpapi.WriteError(w, r, mapErr(fmt.Errorf("locate event %s: %w", id, err)))
		return
	}
	if size == 0 {
		cp, err := h.latestCheckpoint(r.Context(), leaf.Tree)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		size = cp.Size
	}
	proof, err := h.prove(r.Context(), id, leaf, size)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proof)
}

// prove builds the inclusion proof of a located leaf against size.
func (h *handlers) prove(ctx context.Context, id string, leaf ledger.Leaf, size uint64) (ProofJSON, error) {
	if leaf.Index >= size {
		return ProofJSON{}, httpapi.Errorf(httpapi.CodeInvalidArgument,
			"event %s is leaf %d, not in the tree of size %d: ask for a newer checkpoint", id, leaf.Index, size)
	}
	pr, err := h.l.InclusionProof(ctx, leaf.Tree, leaf.Index, size)
	if err != nil {
		return ProofJSON{}, mapErr(fmt.Errorf("inclusion proof of %s: %w", id, err))
	}
	return proofJSON(id, pr), nil
}

// ProofsRequest asks for the inclusion proofs of many events of one tree.
type ProofsRequest struct {
	Tree string   `json:"tree"`
	Size uint64   `json:"size"`
	IDs  []string `json:"ids"`
}

func (h *handlers) proofs(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	var req ProofsRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &req, false); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	t, err := treeOf(r, p, req.Tree)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if len(req.IDs) > MaxProofBatch {
		httpapi.WriteError(w, r, httpapi.Errorf(httpapi.CodeInvalidArgument, "ids: at most %d per request", MaxProofBatch))
		return
	}
	if req.Size == 0 {
		cp, err := h.latestCheckpoint(r.Context(), t)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		req.Size = cp.Size
	}
	out := make([]ProofJSON, len(req.IDs))
	for i, id := range req.IDs {
		leaf, err := h.locate(r.Context(), p.CompanyID, id)
		switch {
		case errors.Is(err, ledger.ErrNotFound) || (err == nil && leaf.Tree != t):
			out[i] = ProofJSON{ID: id, Error: "not in this tree"}
			continue
		case errors.Is(err, ledger.ErrNotYetAppended):
			out[i] = ProofJSON{ID: id, Error: "not yet in the ledger"}
			continue
		case err != nil:
			httpapi.WriteError(w, r, mapErr(fmt.Errorf("locate event %s: %w", id, err)))
			return
		case leaf.Index >= req.Size:
			out[i] = ProofJSON{ID: id, Tree: t.String(), Index: leaf.Index, Error: fmt.Sprintf("leaf %d is not in the tree of size %d", leaf.Index, req.Size)}
			continue
		}
		if out[i], err = h.prove(r.Context(), id, leaf, req.Size); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Proofs []ProofJSON `json:"proofs"`
	}{out})
}

func (h *handlers) consistency(w http.ResponseWriter, r *http.Request) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	q := r.URL.Query()
	t, err := treeOf(r, p, q.Get("tree"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if q.Get("from") == "" {
		httpapi.WriteError(w, r, httpapi.Errorf(httpapi.CodeMissingArgument, "from: the older tree size is required"))
		return
	}
	from, err := uintParam(q.Get("from"), "from", 0)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	to, err := uintParam(q.Get("to"), "to", 0)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if to == 0 {
		cp, err := h.latestCheckpoint(r.Context(), t)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		to = cp.Size
	}
	if from > to {
		httpapi.WriteError(w, r, httpapi.Errorf(httpapi.CodeInvalidArgument,
			"from (%d) is larger than to (%d): the tree has fewer leaves than the older checkpoint", from, to))
		return
	}
	pr, err := h.l.ConsistencyProof(r.Context(), t, from, to)
	if err != nil {
		httpapi.WriteError(w, r, mapErr(fmt.Errorf("consistency proof %d→%d of %s: %w", from, to, t, err)))
		return
	}
	writeJSON(w, http.StatusOK, ConsistencyJSON{Tree: t.String(), From: pr.From, To: pr.To, Hashes: pr.Hashes})
}

// leafIndexes answers search's withLeafIndex: each event's index in its
// own tree, -1 when the appender has not reached it yet.
func (h *handlers) leafIndexes(ctx context.Context, _ httpapi.Principal, evs []event.Event) ([]int64, error) {
	out := make([]int64, len(evs))
	for i := range evs {
		leaf, err := h.l.LocateEvent(ctx, &evs[i])
		leaf, err = storedLeaf(h.opts.Logger, leaf, err)
		switch {
		case err == nil:
			out[i] = int64(leaf.Index)
		case errors.Is(err, ledger.ErrNotYetAppended), errors.Is(err, ledger.ErrNotFound):
			out[i] = -1
		default:
			return nil, err
		}
	}
	return out, nil
}

// locate finds an event's leaf, waiting a moment for the appender when the
// event was stored just before the call.
func (h *handlers) locate(ctx context.Context, companyID, id string) (ledger.Leaf, error) {
	leaf, err := h.l.Locate(ctx, companyID, id)
	if errors.Is(err, ledger.ErrNotYetAppended) {
		sctx, cancel := context.WithTimeout(ctx, syncTimeout)
		defer cancel()
		if serr := h.l.Sync(sctx); serr != nil {
			return leaf, err
		}
		leaf, err = h.l.Locate(ctx, companyID, id)
	}
	return storedLeaf(h.opts.Logger, leaf, err)
}

// storedLeaf keeps the leaf of an event the store altered after it was
// appended: its proof is of the ledger's leaf, so whoever checks the event
// against it finds the alteration, which is the point.
// It is also an alarm: someone changed the store behind the server.
func storedLeaf(log *slog.Logger, leaf ledger.Leaf, err error) (ledger.Leaf, error) {
	if errors.Is(err, ledger.ErrVerify) && leaf.Hash != nil {
		log.Error("TAMPERING: a stored event no longer matches its leaf in the ledger",
			"tree", leaf.Tree.String(), "leaf_index", leaf.Index, "error", err)
		return leaf, nil
	}
	return leaf, err
}

func uintParam(v, name string, def uint64) (uint64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, httpapi.Errorf(httpapi.CodeInvalidArgument, "%s: must be a whole number ≥ 0", name)
	}
	return n, nil
}

// mapErr turns the ledger's errors into the API's.
func mapErr(err error) error {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return &httpapi.Error{Code: httpapi.CodeNotFound, Message: "not found in the ledger", Err: err}
	case errors.Is(err, ledger.ErrNotYetAppended):
		return &httpapi.Error{Code: httpapi.CodeUnavailable, Message: "the event is not in the ledger yet; retry in a moment", RetryAfter: time.Second, Err: err}
	case errors.Is(err, ledger.ErrBadSize):
		return &httpapi.Error{Code: httpapi.CodeInvalidArgument, Message: "tree size beyond the tree's committed size", Err: err}
	}
	return err
}
