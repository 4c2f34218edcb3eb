package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/embedded"
)

func init() { register("embedded+ledger", openEmbeddedLedger) }

// ledgerEngine is the embedded engine with tamper evidence on, as the
// server runs it: the ledger follows the store in the background, woken
// after every append, and signs checkpoints every second. The ingest rate
// it reports is the store's while the ledger competes for the CPU; the
// time the ledger then needs to catch up with the last append is its
// post-load time (Vacuum), so nothing the ledger does goes unmeasured.
type ledgerEngine struct {
	StoreEngine
	ledger *ledger.Ledger
	trees  *ledger.FileStore
}

func openEmbeddedLedger(_ context.Context, cfg EngineConfig) (Engine, error) {
	eng, err := embedded.Open(embedded.Options{Dir: filepath.Join(cfg.Dir, "events"), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	trees, err := ledger.OpenFileStore(filepath.Join(cfg.Dir, "ledger"))
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("open ledger trees: %w", err)
	}
	signer, vkey, err := ledger.LoadOrCreateKey(filepath.Join(cfg.Dir, "ledger.key"), ledger.DefaultKeyName)
	if err == nil {
		var l *ledger.Ledger
		l, err = ledger.New(ledger.Options{Store: eng, Trees: trees, Signer: signer, VerifierKey: vkey, Logger: cfg.Logger})
		if err == nil {
			l.Start()
			return &ledgerEngine{
				StoreEngine: StoreEngine{Store: eng, Dir: cfg.Dir,
					About: "internal/store/embedded with internal/ledger following it (trees, 1 s checkpoints), data in " + cfg.Dir},
				ledger: l, trees: trees,
			}, nil
		}
	}
	trees.Close()
	eng.Close()
	return nil, fmt.Errorf("start ledger: %w", err)
}

func (e *ledgerEngine) Append(ctx context.Context, events []event.Event) error {
	err := e.Store.Append(ctx, events)
	e.ledger.Notify()
	return err
}

// Vacuum waits until the ledger holds every appended event.
func (e *ledgerEngine) Vacuum(ctx context.Context) error { return e.ledger.Sync(ctx) }

func (e *ledgerEngine) Close() error {
	// The ledger reads the store: stop it first.
	return errors.Join(e.ledger.Close(), e.trees.Close(), e.StoreEngine.Close())
}
