package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

// TestServerRestart stops the server (a private one) for a moment: every
// call must fail with store.ErrUnavailable while it is down, and the same
// DB must work again once it is back, with nothing acknowledged lost.
func TestServerRestart(t *testing.T) {
	srv := pgtest.StartPrivateServer(t)
	dbURL := srv.URL()
	db, err := Open(context.Background(), Options{URL: dbURL, MaxConns: 4, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := db.Store()
	mk := func(id string) []event.Event {
		return []event.Event{{ID: id, CompanyID: "c", ProjectID: "p", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: time.Now().UnixMilli()}}
	}
	if err := st.Append(context.Background(), mk("before")); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 10}
	for name, call := range map[string]func() error{
		"Append":   func() error { return st.Append(ctx, mk("during")) },
		"Search":   func() error { _, err := st.Search(ctx, q); return err },
		"Get":      func() error { _, err := st.Get(ctx, "c", "before"); return err },
		"ReadFrom": func() error { _, err := st.ReadFrom(ctx, 0, 10); return err },
		"Delete":   func() error { _, err := st.DeleteBefore(ctx, "c", 1); return err },
		"Company":  func() error { _, err := db.Directory().Company(ctx, "c"); return err },
		"Limiter":  func() error { _, err := db.Limiter().Allow(ctx, "k", 1, time.Second); return err },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while the server is down: %v, want ErrUnavailable", name, err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("server down for %v", time.Since(down).Round(time.Millisecond))

	// The same pool recovers by itself: no reopen.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := st.Append(context.Background(), mk("after"))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("append after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err := st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range res.Events {
		ids = append(ids, e.ID)
	}
	// "during" was refused, so it must not be there; "before" was
	// acknowledged, so it must.
	if strings.Join(ids, ",") != "after,before" && strings.Join(ids, ",") != "before,after" {
		t.Fatalf("after restart the store holds %v, want before and after", ids)
	}
}
