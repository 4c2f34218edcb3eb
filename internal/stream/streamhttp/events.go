package streamhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/stream"
)

// Company-level actions the connector routes record: an audit trail audits
// changes to where its own data flows.
const (
	ActionConnectorCreated  = "ConnectorCreated"
	ActionConnectorModified = "ConnectorModified"
	ActionConnectorDeleted  = "ConnectorDeleted"
	ActionConnectorPaused   = "ConnectorPaused"
	ActionConnectorResumed  = "ConnectorResumed"
	ActionConnectorTested   = "ConnectorTested"
	ActionConnectorReplayed = "ConnectorReplayed"
	// ActionConnectorAutoPaused is recorded by the server itself (actor
	// httpapi.SystemActor) when a connector pauses itself after failing
	// for --stream-auto-pause-after.
	ActionConnectorAutoPaused = "ConnectorAutoPaused"
)

// actionTypes are the event types of the actions: deleting or pausing a
// connector stops data leaving, which a reviewer should notice.
var actionTypes = map[string]string{
	ActionConnectorCreated:  event.TypeInfo,
	ActionConnectorModified: event.TypeInfo,
	ActionConnectorDeleted:  event.TypeWarn,
	ActionConnectorPaused:   event.TypeWarn,
	ActionConnectorResumed:  event.TypeInfo,
	ActionConnectorTested:   event.TypeInfo,
	ActionConnectorReplayed: event.TypeInfo,
	// Nothing leaves for this destination until someone resumes it.
	ActionConnectorAutoPaused: event.TypeWarn,
}

// record stores the company-level event of a connector call that
// succeeded. Its data names the connector and never holds its config: the
// config holds tokens and secrets, and even a URL may carry a password.
func (h *handlers) record(r *http.Request, action string, v stream.View, extra map[string]any) error {
	data := map[string]any{"connectorId": v.ID, "name": v.Name, "type": v.Type, "projectId": v.ProjectID}
	for k, val := range extra {
		data[k] = val
	}
	if err := h.api.RecordCompanyEvent(r, principal(r), action, actionTypes[action], data); err != nil {
		return fmt.Errorf("record %s: %w", action, err)
	}
	return nil
}

// sameName finds the connector stream.Manager.Set would update for spec.
func (h *handlers) sameName(ctx context.Context, spec stream.Spec) (stream.View, bool, error) {
	all, err := h.m.List(ctx, spec.CompanyID, spec.ProjectID)
	if err != nil {
		return stream.View{}, false, err
	}
	for _, v := range all {
		if v.ProjectID == spec.ProjectID && v.Type == spec.Type && v.Name == spec.Name {
			return v, true, nil
		}
	}
	return stream.View{}, false, nil
}

// changedFields names the fields an update changed, never their values.
// prev and next are redacted views, so a replaced secret leaves their
// configs equal: a config sent that is not the redacted one given back
// counts as changed, even when it repeats the same secrets.
func changedFields(prev, next stream.Spec, sentConfig json.RawMessage) []string {
	changed := []string{}
	add := func(field string, differs bool) {
		if differs {
			changed = append(changed, field)
		}
	}
	add("name", prev.Name != next.Name)
	add("description", prev.Description != next.Description)
	add("type", prev.Type != next.Type)
	add("projectId", prev.ProjectID != next.ProjectID)
	add("level", prev.Level != next.Level)
	add("filters", !sameJSON(prev.Filters, next.Filters))
	add("maskPII", prev.MaskPII != next.MaskPII)
	add("config", !sameJSON(prev.Config, next.Config) || (len(sentConfig) > 0 && !sameJSON(sentConfig, prev.Config)))
	return changed
}

// sameJSON compares two values as JSON documents (key order and spacing
// aside; an empty list equals none).
func sameJSON(a, b any) bool {
	return reflect.DeepEqual(jsonValue(a), jsonValue(b))
}

func jsonValue(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return string(raw)
	}
	if l, ok := out.([]any); ok && len(l) == 0 {
		return nil
	}
	return out
}

// RecordAutoPause records that a connector paused itself (the server's
// stream.Options.OnAutoPause). Like record, its data names the connector,
// never its config nor the destination's last error, which may name hosts.
func RecordAutoPause(ctx context.Context, api *httpapi.API, log *slog.Logger, spec stream.Spec, failingFor time.Duration) {
	data := map[string]any{"connectorId": spec.ID, "name": spec.Name, "type": spec.Type, "projectId": spec.ProjectID,
		"failingForSeconds": int64(failingFor.Seconds())}
	if err := api.RecordSystemEvent(ctx, spec.CompanyID, ActionConnectorAutoPaused, actionTypes[ActionConnectorAutoPaused], data); err != nil {
		log.Error("cannot record a connector's automatic pause in the trail", "connector", spec.ID, "err", err)
	}
}
