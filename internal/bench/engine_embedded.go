package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/audittrail/audittrail/internal/store/embedded"
)

func init() { register("embedded", openEmbedded) }

// openEmbedded runs the real engine in this process, through store.Store,
// so the load goes through its ingest path (log, group commit, memtable,
// segments) exactly as the server's does.
//
// AUDITTRAIL_BENCH_EMBEDDED_MERGE=off turns segment merging off, to
// measure what merges change; AUDITTRAIL_BENCH_EMBEDDED_MERGE_BUSY_SHARE=x
// sets Options.MergeCPUShareBusy (the merger's share of a core while
// appends arrive fast; negative: the merger never yields).
func openEmbedded(_ context.Context, cfg EngineConfig) (Engine, error) {
	opts := embedded.Options{Dir: cfg.Dir, Logger: cfg.Logger}
	about := "internal/store/embedded in this process, default options, data in " + cfg.Dir
	if os.Getenv("AUDITTRAIL_BENCH_EMBEDDED_MERGE") == "off" {
		opts.MergeCPUShare = -1
		about = "internal/store/embedded in this process, merging off, data in " + cfg.Dir
	}
	if v, err := strconv.ParseFloat(os.Getenv("AUDITTRAIL_BENCH_EMBEDDED_MERGE_BUSY_SHARE"), 64); err == nil && v != 0 {
		opts.MergeCPUShareBusy = v
		if v < 0 {
			about += ", merges never yield to a fast ingest"
		} else {
			about += fmt.Sprintf(", merges at %.2f core while appends arrive fast", v)
		}
	}
	eng, err := embedded.Open(opts)
	if err != nil {
		return nil, err
	}
	return &StoreEngine{Store: eng, Dir: cfg.Dir, About: about}, nil
}
