package bench

import (
	"context"

	"github.com/audittrail/audittrail/internal/store/embedded"
)

func init() { register("embedded", openEmbedded) }

// openEmbedded runs the real engine in this process, through store.Store,
// so the load goes through its ingest path (log, group commit, memtable,
// segments) exactly as the server's does.
func openEmbedded(_ context.Context, cfg EngineConfig) (Engine, error) {
	eng, err := embedded.Open(embedded.Options{Dir: cfg.Dir, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &StoreEngine{Store: eng, Dir: cfg.Dir, About: "internal/store/embedded in this process, default options, data in " + cfg.Dir}, nil
}
