package servertest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server/servertest"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// TestStartIngestRestart: the harness serves the real API, keeps data over
// a restart, and its extra companies and keys authenticate.
func TestStartIngestRestart(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	id, err := inst.Client(t).Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "HarnessCheck", ActorID: "a", TenantID: "t", Type: "info"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inst.Logs(), "ready") {
		t.Fatalf("logs do not show the server ready:\n%s", inst.Logs())
	}
	inst.Restart(t)
	got, err := inst.Client(t).Audit().Get(ctx, id)
	if err != nil || got.Action != "HarnessCheck" {
		t.Fatalf("event after restart: %+v %v", got, err)
	}

	other := inst.NewCompany(t)
	oc := inst.ClientFor(t, other.ProjectID, other.ManagementKey)
	if _, err := oc.Audit().Get(ctx, id); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("another company reads the event: %v", err)
	}
	reader := inst.ClientFor(t, inst.Creds.ProjectID, inst.NewKey(t, tenancy.RoleReader, inst.Creds.ProjectID))
	if _, err := reader.Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "X", ActorID: "a", TenantID: "t", Type: "info"}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("reader key created an event: %v", err)
	}
	if inst.Components.Streams == nil || inst.Components.Directory == nil {
		t.Fatal("components not captured")
	}
	inst.Stop(t)
	inst.Stop(t) // idempotent
}

// TestPostgres: the harness runs the server on a fresh PostgreSQL
// database, and a restart finds the data there.
func TestPostgres(t *testing.T) {
	inst := servertest.Start(t, servertest.Options{Store: servertest.StorePostgres})
	ctx := context.Background()
	id, err := inst.Client(t).Audit().CreateEvent(ctx, client.CreateEventOptions{Action: "OnPostgres", ActorID: "a", TenantID: "t", Type: "info"})
	if err != nil {
		t.Fatal(err)
	}
	inst.Restart(t)
	if got, err := inst.Client(t).Audit().Get(ctx, id); err != nil || got.Action != "OnPostgres" {
		t.Fatalf("event after restart: %+v %v", got, err)
	}
}
