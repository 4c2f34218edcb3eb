package httpapi

import (
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
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s data: %w", action, err)
	}
	e := event.Event{
		CompanyID: p.CompanyID,
		Level:     event.LevelCompany,
		Action:    action,
		Type:      typ,
		ActorID:   p.Key.ID,
		Occurred:  a.now().UnixMilli(),
		Data:      raw,
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("company event %s: %w", action, err)
	}
	_, err = a.ingest(r, "admin", []event.Event{e})
	return err
}
