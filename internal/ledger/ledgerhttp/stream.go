package ledgerhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/stream"
)

// StreamEvidenceJSON is the "evidence" object of a stream batch (see
// client.StreamEvidence, which decodes it): Leaves[i] proves the batch's
// event i against the checkpoint of its tree.
//
// A batch's proofs share most of their hashes (its leaves are neighbours),
// so each distinct hash is sent once in Nodes, and each leaf's Path lists,
// by position in Nodes, the hashes of its proof (its "hashes" is then
// null): a 500-event batch carries ~600 hashes instead of ~9,000, which
// would more than double the body.
type StreamEvidenceJSON struct {
	Checkpoints []string    `json:"checkpoints"`
	Leaves      []ProofJSON `json:"leaves"`
	Nodes       [][]byte    `json:"nodes,omitempty"`
	Filtered    bool        `json:"filtered,omitempty"`
	Masked      bool        `json:"masked,omitempty"`
}

// shareHashes moves the proofs' hashes into one table of distinct hashes.
func (ev *StreamEvidenceJSON) shareHashes() {
	slot := map[string]int{}
	for i := range ev.Leaves {
		path := make([]int, len(ev.Leaves[i].Hashes))
		for j, h := range ev.Leaves[i].Hashes {
			k, ok := slot[string(h)]
			if !ok {
				k = len(ev.Nodes)
				slot[string(h)] = k
				ev.Nodes = append(ev.Nodes, h)
			}
			path[j] = k
		}
		ev.Leaves[i].Path, ev.Leaves[i].Hashes = path, nil
	}
}

// evidenceWait bounds how long a batch waits for the appender to reach its
// events; past it the batch goes without evidence rather than stall the
// stream (the receiver sees none and can ask the API later).
const evidenceWait = 10 * time.Second

// onDemandSignEvery is the least time between two checkpoints the stream
// evidence signs for one tree because no signed one covers a batch yet
// (the periodic loop signs every CheckpointInterval, 1 s by default). These
// are signed without being stored (ledger.SignCurrent: a signature, no
// fsync), so the pace only bounds the signing CPU on a live stream (≤ 40
// per second per tree, ~50 µs each) and adds at most this much to a
// batch's latency; batches waiting meanwhile share the one signed next.
const onDemandSignEvery = 25 * time.Millisecond

// checkpointRefresh is how long a cached checkpoint is handed out without
// looking for a newer stored one: batches carry the latest checkpoint, or
// one at most this much older (a backlog drain otherwise carries the same
// one throughout).
const checkpointRefresh = time.Second

// carriesEvidence lists the destination types whose sink sends
// Batch.Evidence (the webhook, as "evidence" beside "audits"). Batches of
// the others get none: building it would cost CPU and, worse, hold each
// batch until the appender reaches it, for nothing. A sink that starts
// carrying evidence is added here.
var carriesEvidence = map[string]bool{
	stream.WebhookType: true,
	"kafka":            true, // a header on each group's first record
	"nats":             true, // a header on each group's first message
	"s3":               true, // an evidence object per batch
	// Log destinations: an evidence record after each batch's events.
	"splunk": true, "datadog": true, "sumo": true, "otlp": true, "syslog": true,
}

// StreamLedger is what stream evidence needs of the ledger.
type StreamLedger interface {
	WaitFor(ctx context.Context, seq uint64) error
	LatestCheckpoint(ctx context.Context, t ledger.TreeID) (ledger.Checkpoint, error)
	SignCurrent(ctx context.Context, t ledger.TreeID) (ledger.Checkpoint, error)
	LocateEvents(ctx context.Context, events []event.Event, checkContent bool) ([]ledger.Leaf, error)
	InclusionProofs(ctx context.Context, t ledger.TreeID, indexes []uint64, size uint64) ([]ledger.InclusionProof, error)
}

var _ StreamLedger = (*ledger.Ledger)(nil)

// StreamEvidence returns the stream.Options.Evidence hook: for each batch
// it waits until the ledger holds the events (WaitFor their last Seq: the
// appender's lag), takes a signed checkpoint of each tree that covers them
// (the latest one, kept in memory; when none covers them yet, one signed
// on demand, not stored, at most every onDemandSignEvery per tree) and proves each event
// against it. Per tree, the batch's leaves are found with one search and
// their proofs read with one node read (see ledger.LocateEvents and
// ledger.InclusionProofs).
func StreamEvidence(l StreamLedger, log *slog.Logger) func(ctx context.Context, spec stream.Spec, events []event.Event) json.RawMessage {
	if log == nil {
		log = slog.Default()
	}
	b := &evidenceBuilder{l: l, log: log, signEvery: onDemandSignEvery, refresh: checkpointRefresh, trees: map[ledger.TreeID]*treeCheckpoint{}}
	return func(ctx context.Context, spec stream.Spec, events []event.Event) json.RawMessage {
		if !carriesEvidence[spec.Type] {
			return nil
		}
		ev, err := b.build(ctx, spec, events)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("stream batch sent without tamper evidence", "connector", spec.ID, "events", len(events), "err", err)
			}
			return nil
		}
		out, err := json.Marshal(ev)
		if err != nil {
			return nil
		}
		return out
	}
}

// evidenceBuilder holds, per tree, the latest signed checkpoint it saw, so
// that batches covered by it neither read nor verify one again.
type evidenceBuilder struct {
	l         StreamLedger
	log       *slog.Logger
	signEvery time.Duration
	refresh   time.Duration

	mu    sync.Mutex
	trees map[ledger.TreeID]*treeCheckpoint
}

// treeCheckpoint is one tree's cached checkpoint. sem (one token) lets one
// batch at a time refresh or sign; the others wait and then find it done.
type treeCheckpoint struct {
	sem      chan struct{}
	cp       ledger.Checkpoint // guarded by evidenceBuilder.mu; only grows
	checked  time.Time         // guarded by evidenceBuilder.mu: when the store was last asked
	lastSign time.Time         // guarded by sem
}

func (b *evidenceBuilder) tree(t ledger.TreeID) *treeCheckpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	tc := b.trees[t]
	if tc == nil {
		tc = &treeCheckpoint{sem: make(chan struct{}, 1)}
		b.trees[t] = tc
	}
	return tc
}

// cached returns tc's checkpoint when it covers need leaves and the store
// was asked for a newer one less than refresh ago.
func (b *evidenceBuilder) cached(tc *treeCheckpoint, need uint64) (ledger.Checkpoint, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return tc.cp, tc.cp.Size >= need && tc.cp.Note != nil && time.Since(tc.checked) < b.refresh
}

// keep makes cp the cached one unless a larger one is cached already, so
// that every batch carries a checkpoint at least as large as the batches
// before it (a receiver refuses a checkpoint that goes back).
func (b *evidenceBuilder) keep(tc *treeCheckpoint, cp ledger.Checkpoint, fromStore bool) ledger.Checkpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fromStore {
		tc.checked = time.Now()
	}
	if cp.Note != nil && (cp.Size > tc.cp.Size || tc.cp.Note == nil) {
		tc.cp = cp
	}
	return tc.cp
}

// checkpoint returns a signed checkpoint of t with at least need leaves:
// the cached one, else the latest stored (the periodic loop's or another
// instance's), else one signed now (not stored), at most every signEvery
// per tree.
func (b *evidenceBuilder) checkpoint(ctx context.Context, t ledger.TreeID, need uint64) (ledger.Checkpoint, error) {
	tc := b.tree(t)
	if cp, ok := b.cached(tc, need); ok {
		return cp, nil
	}
	select {
	case tc.sem <- struct{}{}:
	case <-ctx.Done():
		return ledger.Checkpoint{}, ctx.Err()
	}
	defer func() { <-tc.sem }()
	if cp, ok := b.cached(tc, need); ok {
		return cp, nil // the batch before this one got it
	}
	latest, err := b.l.LatestCheckpoint(ctx, t)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		latest = ledger.Checkpoint{} // none stored yet: keep what is cached
	case err != nil:
		return ledger.Checkpoint{}, fmt.Errorf("checkpoint %s: %w", t, err)
	}
	// The larger of the stored one and the cached one (which may have been
	// signed here, unstored).
	if cp := b.keep(tc, latest, true); cp.Note != nil && cp.Size >= need {
		return cp, nil
	}
	if wait := b.signEvery - time.Since(tc.lastSign); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ledger.Checkpoint{}, ctx.Err()
		}
		// The periodic loop may have signed meanwhile.
		if cp, err := b.l.LatestCheckpoint(ctx, t); err == nil {
			if cp = b.keep(tc, cp, true); cp.Size >= need {
				return cp, nil
			}
		}
	}
	tc.lastSign = time.Now()
	cp, err := b.l.SignCurrent(ctx, t)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("checkpoint %s: %w", t, err)
	}
	if cp = b.keep(tc, cp, false); cp.Size < need {
		return ledger.Checkpoint{}, fmt.Errorf("checkpoint of %s has %d leaves, the batch reaches %d", t, cp.Size, need)
	}
	return cp, nil
}

func (b *evidenceBuilder) build(ctx context.Context, spec stream.Spec, events []event.Event) (StreamEvidenceJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, evidenceWait)
	defer cancel()
	// Wait for these events only, not for whatever was stored since.
	var last uint64
	for i := range events {
		last = max(last, events[i].Seq)
	}
	if err := b.l.WaitFor(ctx, last); err != nil {
		return StreamEvidenceJSON{}, fmt.Errorf("wait for the ledger: %w", err)
	}
	// A masking connector's batch holds masked copies, which no longer
	// hash to their leaves: locate them by Seq alone.
	leaves, err := b.l.LocateEvents(ctx, events, !spec.MaskPII)
	if errors.Is(err, ledger.ErrVerify) && leaves != nil {
		// Serve the stored leaves: the receiver's check of the content
		// against them reports the altered events.
		b.log.Error("TAMPERING: a stored event no longer matches its leaf in the ledger", "connector", spec.ID, "error", err)
	} else if err != nil {
		return StreamEvidenceJSON{}, fmt.Errorf("locate the batch's events: %w", err)
	}
	// Per tree, in order of first appearance: the batch's leaf indexes.
	perTree := map[ledger.TreeID][]int{}
	var order []ledger.TreeID
	for i, leaf := range leaves {
		if _, seen := perTree[leaf.Tree]; !seen {
			order = append(order, leaf.Tree)
		}
		perTree[leaf.Tree] = append(perTree[leaf.Tree], i)
	}
	out := StreamEvidenceJSON{Leaves: make([]ProofJSON, len(events)), Filtered: len(spec.Filters) > 0, Masked: spec.MaskPII}
	for _, t := range order {
		idx := perTree[t]
		indexes := make([]uint64, len(idx))
		var top uint64
		for k, i := range idx {
			indexes[k] = leaves[i].Index
			top = max(top, leaves[i].Index+1)
		}
		cp, err := b.checkpoint(ctx, t, top)
		if err != nil {
			return StreamEvidenceJSON{}, err
		}
		out.Checkpoints = append(out.Checkpoints, string(cp.Note))
		proofs, err := b.l.InclusionProofs(ctx, t, indexes, cp.Size)
		if err != nil {
			return StreamEvidenceJSON{}, fmt.Errorf("prove the batch's events in %s: %w", t, err)
		}
		for k, i := range idx {
			// The stored leaf, which InclusionProofs read again, is what
			// the receiver compares the event with.
			out.Leaves[i] = proofJSON(events[i].ID, proofs[k])
		}
	}
	out.shareHashes()
	return out, nil
}
