package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgerhttp"
	"github.com/audittrail/audittrail/internal/stream"
)

// On-disk names of the ledger inside --data-dir.
const (
	ledgerDir     = "ledger"
	ledgerKeyFile = "ledger.key"
)

// openLedger starts the tamper-evident ledger over the open store (when
// --ledger): its trees live beside the events (a directory of the data dir,
// or the PostgreSQL database), its key in --ledger-key-file.
// lease, when not nil, lets one instance of a fleet append and sign the
// periodic checkpoints.
func (s *Server) openLedger(trees func() (ledger.TreeStore, error), lease ledger.Lease) error {
	if !s.cfg.Ledger {
		return nil
	}
	keyPath := s.cfg.LedgerKeyFile
	if keyPath == "" {
		keyPath = filepath.Join(s.cfg.DataDir, ledgerKeyFile)
		if s.cfg.Store == config.StorePostgres {
			s.log.Warn("instances sharing this database must sign with one key: give them all the same --ledger-key-file",
				"ledger_key_file", keyPath)
		}
	}
	signer, vkey, err := ledger.LoadOrCreateKey(keyPath, ledger.DefaultKeyName)
	if err != nil {
		return fmt.Errorf("ledger key: %w", err)
	}
	ts, err := trees()
	if err != nil {
		return fmt.Errorf("open ledger trees: %w", err)
	}
	start := time.Now()
	l, err := ledger.New(ledger.Options{
		Store:              s.store,
		Trees:              ts,
		Signer:             signer,
		VerifierKey:        vkey,
		CheckpointInterval: s.cfg.CheckpointInterval,
		Lease:              lease,
		Logger:             s.log.With("component", "ledger"),
	})
	if err != nil {
		_ = ts.Close()
		return fmt.Errorf("ledger: %w", err)
	}
	l.Start()
	s.ledger, s.ledgerTrees = l, ts
	s.log.Info("ledger started", "verifier_key", vkey, "duration", time.Since(start))
	return nil
}

// streamLedgerLease adapts the fleet's stream lease (PostgreSQL advisory
// locks) so that one instance appends to the ledger.
func streamLedgerLease(sl stream.Lease) ledger.Lease {
	return ledger.LeaseFunc(func(ctx context.Context, name string) (ledger.Held, error) {
		h, err := sl.Acquire(ctx, name)
		if err != nil {
			return nil, err
		}
		return h, nil
	})
}

// fileLedgerTrees keeps the trees of the embedded deployment in the data dir.
func (s *Server) fileLedgerTrees() (ledger.TreeStore, error) {
	return ledger.OpenFileStore(filepath.Join(s.cfg.DataDir, ledgerDir))
}

// afterAppend wakes what follows the store: stream delivery and the
// ledger's appender.
func (s *Server) afterAppend() {
	s.streams.Notify()
	if s.ledger != nil {
		s.ledger.Notify()
	}
}

// streamEvidence is the stream.Options.Evidence hook, nil without a ledger.
func (s *Server) streamEvidence() func(ctx context.Context, spec stream.Spec, events []event.Event) json.RawMessage {
	if s.ledger == nil {
		return nil
	}
	return ledgerhttp.StreamEvidence(s.ledger, s.log.With("component", "ledger"))
}

// registerLedger mounts the checkpoint and proof routes.
func (s *Server) registerLedger() {
	if s.ledger != nil {
		ledgerhttp.Register(s.api, s.ledger, ledgerhttp.Options{Logger: s.log.With("component", "ledger")})
	}
}

// closeLedger stops the appender and the checkpoint loop, then releases
// the trees; the store must still be open.
func (s *Server) closeLedger() error {
	var errs []error
	if s.ledger != nil {
		if err := s.ledger.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ledger: %w", err))
		}
	}
	if s.ledgerTrees != nil {
		if err := s.ledgerTrees.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ledger trees: %w", err))
		}
	}
	return errors.Join(errs...)
}
