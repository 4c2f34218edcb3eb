package bench

import (
	"context"
	"os"

	"github.com/audittrail/audittrail/internal/store/embedded"
)

func init() { register("embedded", openEmbedded) }

// openEmbedded runs the real engine in this process, through store.Store,
// so the load goes through its ingest path (log, group commit, memtable,
// segments) exactly as the server's does.
//
// AUDITTRAIL_BENCH_EMBEDDED_MERGE=off turns segment merging off, to
// measure what merges change.
func openEmbedded(_ context.Context, cfg EngineConfig) (Engine, error) {
	opts := embedded.Options{Dir: cfg.Dir, Logger: cfg.Logger}
	about := "internal/store/embedded in this process, default options, data in " + cfg.Dir
	if os.Getenv("AUDITTRAIL_BENCH_EMBEDDED_MERGE") == "off" {
		opts.MergeCPUShare = -1
		about = "internal/store/embedded in this process, merging off, data in " + cfg.Dir
	}
	eng, err := embedded.Open(opts)
	if err != nil {
		return nil, err
	}
	return &StoreEngine{Store: eng, Dir: cfg.Dir, About: about}, nil
}
