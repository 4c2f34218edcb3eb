package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// TestCheckFindsDamage: a healthy database passes Check; each kind of
// damage done behind the store's back is reported, naming the event.
func TestCheckFindsDamage(t *testing.T) {
	db := openTest(t, Options{MaintenanceInterval: -1})
	ctx := context.Background()
	var evs []event.Event
	for i := range 20 {
		evs = append(evs, event.Event{ID: fmt.Sprintf("e%d", i), CompanyID: "c", ProjectID: "p", Level: event.LevelProject,
			Action: "UserCreated", Type: event.TypeInfo, UserID: fmt.Sprintf("u%d", i), Tenants: []string{"t1"},
			Data: []byte(`{"note":"hello world"}`), Occurred: time.Now().UnixMilli() - int64(i)})
	}
	if err := db.Store().Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	rep, err := db.Events().Check(ctx)
	if err != nil || rep.Events != 20 || rep.IDs != 20 {
		t.Fatalf("healthy database: %+v, %v", rep, err)
	}
	for _, sql := range []string{
		`UPDATE events SET attrs = array_remove(attrs, 'u:u3') WHERE id = 'e3'`,
		`UPDATE events SET tokens = array_to_tsvector('{other}') WHERE id = 'e4'`,
		`DELETE FROM event_ids WHERE id = 'e5'`,
		`UPDATE event_ids SET seq = seq + 1000 WHERE id = 'e6'`,
		`INSERT INTO events SELECT * FROM events WHERE id = 'e7'`,
	} {
		if _, err := db.Pool().Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rep, err = db.Events().Check(ctx)
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Check after damage = %v, want ErrCorrupt", err)
	}
	all := strings.Join(rep.Problems, "\n")
	for _, want := range []string{"c/e3: attrs", "c/e4: tokens", "no or a different event_ids row: c/e5", "no or a different event_ids row: c/e6", "stored twice: c/e7"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems do not mention %q:\n%s", want, all)
		}
	}
}
