package ledgerpg_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgerpg"
	"github.com/audittrail/audittrail/internal/ledger/ledgertest"
	"github.com/audittrail/audittrail/internal/store/postgres"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// TestConformance runs the TreeStore suite on a fresh database per case,
// migrated by postgres.Open like a server would (AUDITTRAIL_INTEGRATION=1).
func TestConformance(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	ledgertest.Run(t, func(t *testing.T) *ledgertest.Harness {
		url := pgtest.NewDatabase(t)
		db, err := postgres.Open(context.Background(), postgres.Options{URL: url, MaintenanceInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		h := &ledgertest.Harness{Store: ledgerpg.New(db.Pool())}
		h.Reopen = func(*testing.T) ledger.TreeStore {
			h.Store.Close()
			h.Store = ledgerpg.New(db.Pool())
			return h.Store
		}
		return h
	})
}

// TestLedgerOnPostgres runs the appender over the PostgreSQL event store
// with its trees in the same database, like a fleet instance, and proves
// events from their wire JSON.
func TestLedgerOnPostgres(t *testing.T) {
	pgtest.SkipUnlessEnabled(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, postgres.Options{URL: pgtest.NewDatabase(t), MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := db.Store()
	signer, vkey, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "ledger.key"), "pg-test")
	if err != nil {
		t.Fatal(err)
	}
	trees := ledgerpg.New(db.Pool())
	l, err := ledger.New(ledger.Options{Store: st, Trees: trees, Signer: signer, VerifierKey: vkey, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	defer l.Close()
	evs := storetest.Generate(42, 600, storetest.GenOptions{})
	for i := 0; i < len(evs); i += 100 {
		if err := st.Append(ctx, evs[i:i+100]); err != nil {
			t.Fatal(err)
		}
		l.Notify()
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	byTree := map[ledger.TreeID][][]byte{}
	var after uint64
	for {
		page, err := st.ReadFrom(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			w, _ := json.Marshal(page[i])
			tr := ledger.TreeOf(&page[i])
			byTree[tr] = append(byTree[tr], w)
		}
		// A stream batch's leaves in one query (FindSeqs) match the
		// single lookups.
		leaves, err := l.LocateEvents(ctx, page, true)
		if err != nil {
			t.Fatalf("LocateEvents: %v", err)
		}
		for i := range page {
			one, err := l.LocateEvent(ctx, &page[i])
			if err != nil || one.Index != leaves[i].Index || one.Tree != leaves[i].Tree || !bytes.Equal(one.Hash, leaves[i].Hash) {
				t.Fatalf("event %d: LocateEvents %+v, LocateEvent %+v, %v", i, leaves[i], one, err)
			}
		}
		after = page[len(page)-1].Seq
	}
	for tr, lines := range byTree {
		cp, err := l.CheckpointNow(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		if cp, err = ledger.VerifyCheckpoint(cp.Note, vkey, l.Origin(tr)); err != nil {
			t.Fatal(err)
		}
		leaves := make([][]byte, len(lines))
		for i, line := range lines {
			leaves[i], _ = ledger.LeafHashFromJSON(line)
		}
		if cp.Size != uint64(len(lines)) || !bytes.Equal(ledger.RootFromLeaves(leaves), cp.Root) {
			t.Fatalf("%s: checkpoint size %d, %d events in the store (or roots differ)", tr, cp.Size, len(lines))
		}
		for _, i := range []int{0, len(lines) / 2, len(lines) - 1} {
			leaf, err := l.Locate(ctx, tr.CompanyID, ledger.EventIDOf(lines[i]))
			if err != nil || leaf.Index != uint64(i) {
				t.Fatalf("Locate: %+v, %v; want index %d", leaf, err, i)
			}
			p, err := l.InclusionProof(ctx, tr, leaf.Index, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.VerifyEvent(lines[i], cp); err != nil {
				t.Fatalf("%s event %d: %v", tr, i, err)
			}
		}
	}
}
