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
	// MergeCPUShareBusy, when positive, is the share the background
	// merger may use instead while appends are being committed (a group
	// within the last 250 ms): a lower one leaves a heavy load the CPU
	// and the merges for quieter times (Compact runs at full speed). Zero:
	// MergeCPUShare throughout.
	MergeCPUShareBusy float64
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
