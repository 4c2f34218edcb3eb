// Package stream delivers the trail to third-party destinations: a durable
// cursor per connector over store.ReadFrom, batching, retry with backoff,
// a circuit breaker and health. Each destination lives in its own
// subpackage and implements Sink.
package stream

import (
	"context"
	"encoding/json"

	"github.com/audittrail/audittrail/internal/event"
)

// Batch is what one Write delivers. Events are in ingest (Seq) order,
// already filtered and masked for the connector.
type Batch struct {
	ConnectorID string
	Events      []event.Event
	// Evidence, when the server keeps a tamper-evident ledger, proves each
	// event against a signed checkpoint (its leaf index, an inclusion
	// proof); nil otherwise. Sinks that can carry it verbatim do
	// (docs/tamper-evidence.md).
	Evidence json.RawMessage
}

// Sink is one destination. The delivery engine owns retries, backoff and
// reconnection; a Sink only reports whether a batch was acknowledged.
type Sink interface {
	// Connect prepares the destination (dial, authenticate). It may be
	// called again after Write fails.
	Connect(ctx context.Context) error
	// Write returns nil only once the destination acknowledged every event
	// of the batch; on error the whole batch is retried, so receivers dedupe
	// by event id.
	Write(ctx context.Context, b Batch) error
	Close(ctx context.Context) error
}

// Factory builds a sink from its destination-specific JSON configuration,
// refusing an invalid one with an error that names the field.
type Factory func(config json.RawMessage) (Sink, error)
