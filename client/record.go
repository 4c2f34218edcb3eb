package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Level says whether an event belongs to one project or to the company.
type Level string

const (
	LevelProject Level = "project"
	LevelCompany Level = "company"
)

// Event types; the server refuses any other.
const (
	TypeInfo  = "info"
	TypeWarn  = "warn"
	TypeError = "error"
)

// Record is one audit event as search returns it and as Ingest sends it.
//
// On the wire `occurred` is a string of epoch milliseconds (Descope's form);
// here it is a time.Time in UTC, truncated to the millisecond when sent. The
// zero time means "unset": Ingest then lets the server use the time of
// arrival. LoginIDs travel as `externalIds`, Descope's wire name.
type Record struct {
	ID            string
	ProjectID     string // empty for company-level events
	Level         Level
	UserID        string
	Action        string
	Type          string
	ActorID       string
	Occurred      time.Time
	Device        string
	Method        string
	Geo           string
	RemoteAddress string
	LoginIDs      []string
	Tenants       []string
	// Data is free-form; JSON numbers decode as float64, so integers beyond
	// 2^53 lose precision.
	Data map[string]any
	// LeafIndex is the record's index in its tree of the tamper-evident
	// ledger, when the search asked for it (SearchOptions.WithLeafIndex)
	// and the ledger holds the record; never sent.
	LeafIndex *uint64
	// RequestContext, sent with Ingest, lets the server fill Device,
	// RemoteAddress, Geo and data.request_details where they are empty. It
	// is not stored, so search never returns it.
	RequestContext *RequestContext
}

// OccurredMillis is Occurred as epoch milliseconds, 0 when unset.
func (r Record) OccurredMillis() int64 { return timeToMillis(r.Occurred) }

type recordJSON struct {
	ID            string         `json:"id,omitempty"`
	ProjectID     string         `json:"projectId,omitempty"`
	Level         Level          `json:"level,omitempty"`
	UserID        string         `json:"userId"`
	Action        string         `json:"action"`
	Type          string         `json:"type,omitempty"`
	ActorID       string         `json:"actorId"`
	Occurred      string         `json:"occurred,omitempty"`
	Device        string         `json:"device"`
	Method        string         `json:"method"`
	Geo           string         `json:"geo"`
	RemoteAddress string         `json:"remoteAddress"`
	LoginIDs      []string       `json:"externalIds"`
	Tenants       []string       `json:"tenants"`
	Data          map[string]any `json:"data,omitempty"`
	// RequestContext is only sent, never stored.
	RequestContext *RequestContext `json:"requestContext,omitempty"`
	// LeafIndex is only received (search's withLeafIndex).
	LeafIndex *uint64 `json:"leafIndex,omitempty"`
}

// MarshalJSON writes the wire record. Fields the server defaults (id,
// projectId, level, type, occurred) are left out when empty so that the
// server fills them; lists are [] rather than null.
func (r Record) MarshalJSON() ([]byte, error) {
	w := recordJSON{
		ID: r.ID, ProjectID: r.ProjectID, Level: r.Level, UserID: r.UserID, Action: r.Action,
		Type: r.Type, ActorID: r.ActorID, Device: r.Device, Method: r.Method, Geo: r.Geo,
		RemoteAddress: r.RemoteAddress, LoginIDs: r.LoginIDs, Tenants: r.Tenants, Data: r.Data,
		RequestContext: r.RequestContext,
	}
	if ms := timeToMillis(r.Occurred); ms != 0 {
		w.Occurred = strconv.FormatInt(ms, 10)
	}
	if w.LoginIDs == nil {
		w.LoginIDs = []string{}
	}
	if w.Tenants == nil {
		w.Tenants = []string{}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the wire record; `occurred` may be a string or a
// number of epoch milliseconds.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w struct {
		recordJSON
		Occurred json.RawMessage `json:"occurred"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ms, err := parseMillis(w.Occurred)
	if err != nil {
		return fmt.Errorf("record %q: occurred: %w", w.ID, err)
	}
	*r = Record{
		ID: w.ID, ProjectID: w.ProjectID, Level: w.Level, UserID: w.UserID, Action: w.Action,
		Type: w.Type, ActorID: w.ActorID, Occurred: millisToTime(ms), Device: w.Device,
		Method: w.Method, Geo: w.Geo, RemoteAddress: w.RemoteAddress, LoginIDs: w.LoginIDs,
		Tenants: w.Tenants, Data: w.Data, LeafIndex: w.LeafIndex,
	}
	return nil
}

var errMillis = errors.New("must be epoch milliseconds as a number or a numeric string")

func parseMillis(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errMillis
		}
		if s == "" {
			return 0, nil
		}
		raw = []byte(s)
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != f || f > 9e18 || f < -9e18 {
		return 0, errMillis
	}
	return int64(f), nil
}

func timeToMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func millisToTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
