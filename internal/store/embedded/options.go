package embedded

import (
	"errors"
	"fmt"
	"log/slog"
)

// Options configure an Engine. The zero value plus Dir is usable after
// EnsureDefaults.
type Options struct {
	// Dir holds the write-ahead log, the segments and the deletion rules.
	Dir string
	// Logger receives recovery and maintenance messages.
	Logger *slog.Logger
	// MaxGroupEvents bounds how many events one group commit gathers, so
	// that one fsync's latency stays bounded under heavy load.
	MaxGroupEvents int
	// MemtableEvents is how many events the in-memory tail holds before it
	// is written out as an immutable segment and its log is dropped.
	MemtableEvents int
	// BlockCacheBytes bounds the decompressed event blocks kept for later
	// searches.
	BlockCacheBytes int
	// MergeRows caps the rows of a segment written by a merge (merges also
	// stop at a UTC day boundary). A merge holds under 1 KB of heap per
	// row of the output it is writing (BenchmarkMerge), so the default,
	// 500k, keeps a UTC day of a 10M-event month (~333k rows) whole for
	// ~0.3 GB.
	MergeRows int
	// MergeCPUShare is the share of one core the background merger may
	// use (0 means the default, 0.25; negative turns merging off).
	MergeCPUShare float64
	// MergeCPUShareBusy is the share the background merger takes instead
	// while appends arrive at MergeBusyEventsPerSec or more (measured over
	// about a second). At such a rate the merger at MergeCPUShare falls
	// behind anyway (a merge costs ~6 µs per row: a quarter core merges
	// ~40k rows/s), so its CPU goes to the ingest, and the merges catch up
	// when the burst ends (Compact is never throttled). 0 means the
	// default, 0.05; negative: MergeCPUShare throughout.
	MergeCPUShareBusy float64
	// MergeBusyEventsPerSec is the append rate above which the merger takes
	// MergeCPUShareBusy (0 means the default, 40,000).
	MergeBusyEventsPerSec int
	// noBackgroundMerge leaves merging to Compact (tests).
	noBackgroundMerge bool
	// ResidentSegmentBytes bounds the file-backed resident memory that reads
	// of the mapped segments leave behind: beyond it the mappings are
	// released (the pages stay in the page cache). Negative: no bound.
	ResidentSegmentBytes int64
}

// EnsureDefaults fills unset fields.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxGroupEvents <= 0 {
		o.MaxGroupEvents = 50_000
	}
	if o.BlockCacheBytes <= 0 {
		o.BlockCacheBytes = 64 << 20
	}
	if o.ResidentSegmentBytes == 0 {
		o.ResidentSegmentBytes = 256 << 20
	}
	if o.MemtableEvents <= 0 {
		o.MemtableEvents = 100_000
	}
	if o.MergeRows <= 0 {
		o.MergeRows = 500_000
	}
	if o.MergeCPUShare == 0 {
		o.MergeCPUShare = 0.25
	}
	if o.MergeCPUShareBusy == 0 {
		o.MergeCPUShareBusy = 0.05
	}
	if o.MergeBusyEventsPerSec <= 0 {
		o.MergeBusyEventsPerSec = 40_000
	}
}

// ErrInvalidOptions is returned by Validate and Open for unusable options.
var ErrInvalidOptions = errors.New("embedded: invalid options")

// Validate reports options Open cannot work with.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	}
	if o.MaxGroupEvents < 0 || o.MemtableEvents < 0 || o.BlockCacheBytes < 0 || o.MergeRows < 0 {
		return fmt.Errorf("%w: negative limits", ErrInvalidOptions)
	}
	return nil
}
