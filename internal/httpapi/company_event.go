package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/audittrail/audittrail/internal/event"
)

// RecordCompanyEvent stores the company-level event of a management action
// (projects, keys, settings, connectors), with the calling key as actor.
// Callers run it after the change: an audit row claiming a change that
// failed would be worse than the rare change whose row could not be
// written, and that failure reaches the caller as an error. data must hold
// no secret: company-level events are read and streamed like any other.
func (a *API) RecordCompanyEvent(r *http.Request, p Principal, action, typ string, data map[string]any) error {
	return a.recordCompanyEvent(r.Context(), p.CompanyID, p.Key.ID, action, typ, data)
}

// SystemActor is the actor of company-level events that audittrail records
// on its own, not on a caller's behalf (a connector pausing itself).
const SystemActor = "audittrail"

// RecordSystemEvent stores a company-level event of something the server
// did by itself, with SystemActor as actor; the same rules as
// RecordCompanyEvent hold for data.
func (a *API) RecordSystemEvent(ctx context.Context, companyID, action, typ string, data map[string]any) error {
	return a.recordCompanyEvent(ctx, companyID, SystemActor, action, typ, data)
}

func (a *API) recordCompanyEvent(ctx context.Context, companyID, actorID, action, typ string, data map[string]any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s data: %w", action, err)
	}
	e := event.Event{
		CompanyID: companyID,
		Level:     event.LevelCompany,
		Action:    action,
		Type:      typ,
		ActorID:   actorID,
		Occurred:  a.now().UnixMilli(),
		Data:      raw,
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("company event %s: %w", action, err)
	}
	_, err = a.ingest(ctx, "admin", []event.Event{e})
	return err
}
