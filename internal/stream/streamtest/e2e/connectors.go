package e2e

import (
	"context"

	"github.com/audittrail/audittrail/client"
)

// The connector calls the tests make, through the SDK and the HTTP API,
// failing the test on error.

// Connector creates a company-wide connector (every project and the
// company level) and returns its id.
func (r *Run) Connector(typ, name string, config any) string {
	r.t.Helper()
	c, err := r.Client.Connectors().Create(context.Background(), client.ConnectorOptions{
		Name: name, Type: typ, Level: client.ConnectorLevelBoth, Config: config,
	})
	if err != nil {
		r.t.Fatalf("create %s connector %s: %v", typ, name, err)
	}
	if c.ID == "" || c.Type != typ || c.Level != client.ConnectorLevelBoth || c.ProjectID != "" {
		r.t.Fatalf("created connector %+v, want a company-wide %s connector", c, typ)
	}
	r.started(c.ID, c.Health.Cursor)
	return c.ID
}

// ProjectConnector creates a connector with a writer key limited to
// project (made through the API), as a project's own team would: the
// server makes it that project's, at level project. It returns its id.
func (r *Run) ProjectConnector(project, typ, name string, config any) string {
	r.t.Helper()
	ctx := context.Background()
	_, secret, err := r.Client.Keys().Create(ctx, client.CreateKeyOptions{Name: "writer " + name, Role: client.RoleWriter, ProjectIDs: []string{project}})
	if err != nil {
		r.t.Fatalf("create a writer key for %s: %v", project, err)
	}
	c, err := r.Inst.ClientFor(r.t, project, secret).Connectors().Create(ctx, client.ConnectorOptions{Name: name, Type: typ, Config: config})
	if err != nil {
		r.t.Fatalf("create %s connector %s for %s: %v", typ, name, project, err)
	}
	if c.ProjectID != project || c.Level != client.ConnectorLevelProject {
		r.t.Fatalf("connector made with a key of %s: project %q level %q, want that project at level project", project, c.ProjectID, c.Level)
	}
	r.started(c.ID, c.Health.Cursor)
	return c.ID
}

// Health is the connector's health as the API reports it.
func (r *Run) Health(id string) client.ConnectorHealth {
	r.t.Helper()
	h, err := r.Client.Connectors().Health(context.Background(), id)
	if err != nil {
		r.t.Fatalf("health of %s: %v", id, err)
	}
	return h
}

// Pause stops the connector's delivery; its cursor stays.
func (r *Run) Pause(id string) {
	r.t.Helper()
	if c, err := r.Client.Connectors().Pause(context.Background(), id); err != nil || c.Health.State != client.ConnectorPaused {
		r.t.Fatalf("pause %s: %v (state %q)", id, err, c.Health.State)
	}
}

// Resume restarts a paused connector from its cursor.
func (r *Run) Resume(id string) {
	r.t.Helper()
	if _, err := r.Client.Connectors().Resume(context.Background(), id); err != nil {
		r.t.Fatalf("resume %s: %v", id, err)
	}
}

// Delete removes the connector.
func (r *Run) Delete(id string) {
	r.t.Helper()
	if err := r.Client.Connectors().Delete(context.Background(), id); err != nil {
		r.t.Fatalf("delete %s: %v", id, err)
	}
}
