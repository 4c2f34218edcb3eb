package ledgerhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/stream"
)

// StreamEvidenceJSON is the "evidence" object of a stream batch (see
// client.StreamEvidence, which decodes it): Leaves[i] proves the batch's
// event i against the checkpoint of its tree.
type StreamEvidenceJSON struct {
	Checkpoints []string    `json:"checkpoints"`
	Leaves      []ProofJSON `json:"leaves"`
	Filtered    bool        `json:"filtered,omitempty"`
	Masked      bool        `json:"masked,omitempty"`
}

// evidenceWait bounds how long a batch waits for the appender to reach its
// events; past it the batch goes without evidence rather than stall the
// stream (the receiver sees none and can ask the API later).
const evidenceWait = 10 * time.Second

// StreamEvidence returns the stream.Options.Evidence hook: for each batch
// it waits until the ledger holds the events, makes sure a signed
// checkpoint covers them (signing one on demand when the latest does not),
// and proves each event against it.
func StreamEvidence(l Ledger, log *slog.Logger) func(ctx context.Context, spec stream.Spec, events []event.Event) json.RawMessage {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context, spec stream.Spec, events []event.Event) json.RawMessage {
		ev, err := buildEvidence(ctx, l, log, spec, events)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("stream batch sent without tamper evidence", "connector", spec.ID, "events", len(events), "err", err)
			}
			return nil
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil
		}
		return b
	}
}

func buildEvidence(ctx context.Context, l Ledger, log *slog.Logger, spec stream.Spec, events []event.Event) (StreamEvidenceJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, evidenceWait)
	defer cancel()
	// Wait for these events only, not for whatever was stored since.
	var last uint64
	for i := range events {
		last = max(last, events[i].Seq)
	}
	if err := l.WaitFor(ctx, last); err != nil {
		return StreamEvidenceJSON{}, fmt.Errorf("wait for the ledger: %w", err)
	}
	leaves := make([]ledger.Leaf, len(events))
	top := map[ledger.TreeID]uint64{} // per tree, the highest leaf index + 1
	var order []ledger.TreeID
	for i := range events {
		var leaf ledger.Leaf
		var err error
		if spec.MaskPII {
			// The batch holds masked copies, which no longer hash to their
			// leaves: locate the stored events instead.
			leaf, err = l.Locate(ctx, events[i].CompanyID, events[i].ID)
		} else {
			leaf, err = l.LocateEvent(ctx, &events[i])
		}
		leaf, err = storedLeaf(log, leaf, err)
		if err != nil {
			return StreamEvidenceJSON{}, fmt.Errorf("locate event %s: %w", events[i].ID, err)
		}
		leaves[i] = leaf
		if _, seen := top[leaf.Tree]; !seen {
			order = append(order, leaf.Tree)
		}
		top[leaf.Tree] = max(top[leaf.Tree], leaf.Index+1)
	}
	out := StreamEvidenceJSON{Leaves: make([]ProofJSON, len(events)), Filtered: len(spec.Filters) > 0, Masked: spec.MaskPII}
	sizes := map[ledger.TreeID]uint64{}
	for _, t := range order {
		cp, err := l.LatestCheckpoint(ctx, t)
		if err != nil || cp.Size < top[t] {
			// The periodic checkpoint has not caught up with these events.
			if cp, err = l.CheckpointNow(ctx, t); err != nil {
				return StreamEvidenceJSON{}, fmt.Errorf("checkpoint %s: %w", t, err)
			}
		}
		if cp.Size < top[t] {
			return StreamEvidenceJSON{}, fmt.Errorf("checkpoint of %s has %d leaves, the batch reaches %d", t, cp.Size, top[t])
		}
		sizes[t] = cp.Size
		out.Checkpoints = append(out.Checkpoints, string(cp.Note))
	}
	for i, leaf := range leaves {
		p, err := l.InclusionProof(ctx, leaf.Tree, leaf.Index, sizes[leaf.Tree])
		if err != nil {
			return StreamEvidenceJSON{}, fmt.Errorf("prove event %s: %w", events[i].ID, err)
		}
		out.Leaves[i] = proofJSON(events[i].ID, p)
	}
	return out, nil
}
