package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

// TestVerifyLiveDetectsStoredTampering runs the server on PostgreSQL, where
// someone with access to the database can edit rows behind the server's
// back, and checks that 'audittrail verify --live' finds an altered event,
// a deleted one and two whose places were swapped, naming each.
func TestVerifyLiveDetectsStoredTampering(t *testing.T) {
	url := pgtest.NewDatabase(t) // skipped unless AUDITTRAIL_INTEGRATION=1
	inst := servertest.Start(t, servertest.Options{Store: servertest.StorePostgres, PostgresURL: url})
	ingestN(t, inst, "pg", 20)
	cli := liveRun(inst)
	vkey := strings.TrimSpace(cli.run(t, "evidence", "key").stdout)
	if r := cli.run(t, "verify", "--verifier-key", vkey, "--live"); r.code != 0 {
		t.Fatalf("verify an untouched trail: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	ctx := context.Background()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	exec := func(sql string, args ...any) {
		t.Helper()
		tag, err := db.Exec(ctx, sql, args...)
		if err != nil || tag.RowsAffected() == 0 {
			t.Fatalf("%s: %v (%d rows)", sql, err, tag.RowsAffected())
		}
	}

	// Altered: one event's action rewritten in place.
	exec(`UPDATE events SET action = 'UserDeleted' WHERE id = 'pg-5'`)
	r := cli.run(t, "verify", "--verifier-key", vkey, "--live")
	wantFail(t, "altered in the database", r, "event pg-5", "altered")
	// The server saw it too, while answering the proofs.
	if !strings.Contains(inst.Logs(), "TAMPERING") {
		t.Fatal("the server did not log the altered event")
	}

	// Deleted: one event removed entirely.
	exec(`DELETE FROM events WHERE id = 'pg-8'`)
	exec(`DELETE FROM event_ids WHERE id = 'pg-8'`)
	r = cli.run(t, "verify", "--verifier-key", vkey, "--live")
	wantFail(t, "deleted from the database", r, "leaf 8 of", "removed")

	// Reordered: two events swap their places in the log.
	exec(`UPDATE events SET seq = CASE id WHEN 'pg-11' THEN (SELECT seq FROM event_ids WHERE id = 'pg-12')
	                                      ELSE (SELECT seq FROM event_ids WHERE id = 'pg-11') END
	       WHERE id IN ('pg-11', 'pg-12')`)
	exec(`UPDATE event_ids SET seq = e.seq FROM events e WHERE e.id = event_ids.id AND event_ids.id IN ('pg-11', 'pg-12')`)
	r = cli.run(t, "verify", "--verifier-key", vkey, "--live")
	wantFail(t, "reordered in the database", r, "event pg-11", "event pg-12", "reordered")
}
