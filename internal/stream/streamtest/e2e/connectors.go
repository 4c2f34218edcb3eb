package e2e

import (
	"context"
	"encoding/json"

	"github.com/audittrail/audittrail/internal/stream"
)

// TEMPORARY until client.Connectors() lands: the same calls on the
// server's manager.

// Connector creates a company-wide connector (every project and the
// company level) through the API and returns its id.
func (r *Run) Connector(typ, name string, config any) string {
	r.t.Helper()
	raw, _ := json.Marshal(config)
	v, err := r.Inst.Components.Streams.Create(context.Background(), stream.Spec{CompanyID: r.Inst.Creds.CompanyID, Name: name, Type: typ, Level: stream.LevelBoth, Config: raw})
	if err != nil {
		r.t.Fatalf("create %s connector %s: %v", typ, name, err)
	}
	return v.ID
}

// Health is the connector's health as the API reports it.
func (r *Run) Health(id string) stream.Health {
	r.t.Helper()
	h, err := r.Inst.Components.Streams.Health(context.Background(), r.Inst.Creds.CompanyID, id)
	if err != nil {
		r.t.Fatalf("health of %s: %v", id, err)
	}
	return h
}

// Pause stops the connector's delivery; its cursor stays.
func (r *Run) Pause(id string) {
	r.t.Helper()
	if _, err := r.Inst.Components.Streams.Pause(context.Background(), r.Inst.Creds.CompanyID, id); err != nil {
		r.t.Fatalf("pause %s: %v", id, err)
	}
}

// Resume restarts a paused connector from its cursor.
func (r *Run) Resume(id string) {
	r.t.Helper()
	if _, err := r.Inst.Components.Streams.Resume(context.Background(), r.Inst.Creds.CompanyID, id); err != nil {
		r.t.Fatalf("resume %s: %v", id, err)
	}
}

// Delete removes the connector.
func (r *Run) Delete(id string) {
	r.t.Helper()
	if err := r.Inst.Components.Streams.Delete(context.Background(), r.Inst.Creds.CompanyID, id); err != nil {
		r.t.Fatalf("delete %s: %v", id, err)
	}
}
