// Package event holds the audit event model shared by every layer: its wire
// form (the record Descope's search returns), validation, and the free-text
// tokenisation that both storage backends must agree on.
package event

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Level says whether an event belongs to one project or to the whole company.
type Level string

const (
	LevelProject Level = "project"
	LevelCompany Level = "company"
)

// Types an event may carry; Descope's SDKs refuse anything else.
const (
	TypeInfo  = "info"
	TypeWarn  = "warn"
	TypeError = "error"
)

// Event is one audit record. Its JSON form is the record of Descope's search
// response plus the extensions `id` and `level`; `occurred` is written as a
// string of epoch milliseconds because the Descope Go SDK cannot decode a
// number there, and is read from either a string or a number.
type Event struct {
	// ID is unique within a company: the sender's own id when given, so a
	// retried batch never stores an event twice, else one we generate.
	ID        string `json:"id"`
	CompanyID string `json:"-"`
	// ProjectID is empty for company-level events.
	ProjectID     string          `json:"projectId"`
	Level         Level           `json:"level"`
	UserID        string          `json:"userId"`
	Action        string          `json:"action"`
	Type          string          `json:"type"`
	ActorID       string          `json:"actorId"`
	Occurred      int64           `json:"-"` // epoch milliseconds
	Device        string          `json:"device"`
	Method        string          `json:"method"`
	Geo           string          `json:"geo"`
	RemoteAddress string          `json:"remoteAddress"`
	LoginIDs      []string        `json:"externalIds"`
	Tenants       []string        `json:"tenants"`
	Data          json.RawMessage `json:"data,omitempty"`
	// Seq is the store-assigned ingest sequence number: strictly increasing
	// in commit order across the whole store, never reused. Streams read by it.
	Seq uint64 `json:"-"`
}

type eventJSON Event

type wireEvent struct {
	*eventJSON
	Occurred string `json:"occurred"`
}

// MarshalJSON writes `occurred` as a string and lists as [] rather than null.
func (e Event) MarshalJSON() ([]byte, error) {
	c := e
	if c.LoginIDs == nil {
		c.LoginIDs = []string{}
	}
	if c.Tenants == nil {
		c.Tenants = []string{}
	}
	return json.Marshal(wireEvent{eventJSON: (*eventJSON)(&c), Occurred: strconv.FormatInt(e.Occurred, 10)})
}

type wireEventIn struct {
	*eventJSON
	Occurred json.RawMessage `json:"occurred"`
}

// UnmarshalJSON accepts `occurred` as a number or a numeric string.
func (e *Event) UnmarshalJSON(b []byte) error {
	in := wireEventIn{eventJSON: (*eventJSON)(e)}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	ms, err := ParseMillis(in.Occurred)
	if err != nil {
		return &FieldError{Field: "occurred", Reason: err.Error()}
	}
	e.Occurred = ms
	return nil
}

// ParseMillis reads epoch milliseconds given as a JSON number or a JSON
// string holding an integer. Absent or null gives 0.
func ParseMillis(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errors.New("must be epoch milliseconds")
		}
		if s == "" {
			return 0, nil
		}
		raw = []byte(s)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(raw), 64)
		if ferr != nil || f != f || f > 9e18 || f < -9e18 {
			return 0, errors.New("must be epoch milliseconds")
		}
		n = int64(f)
	}
	return n, nil
}

// FieldError names the field of an event that is invalid.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Limits on one event, chosen so that a single hostile event cannot make a
// search or a stream delivery expensive.
const (
	MaxIDLen        = 128
	MaxFieldLen     = 1024 // userId, actorId, action, device, method, geo, remoteAddress, each login ID and tenant
	MaxListLen      = 100  // login IDs, tenants
	MaxDataBytes    = 64 << 10
	MaxDataDepth    = 32
	MaxFutureSkewMs = int64(24 * time.Hour / time.Millisecond)
)

// Validate checks an event that is complete except for ID and Seq. It does
// not fill defaults: callers do that before, so the error names what the
// sender actually sent.
func (e *Event) Validate() error {
	if len(e.ID) > MaxIDLen {
		return &FieldError{"id", fmt.Sprintf("longer than %d bytes", MaxIDLen)}
	}
	if e.Action == "" {
		return &FieldError{"action", "is required"}
	}
	switch e.Type {
	case TypeInfo, TypeWarn, TypeError:
	default:
		return &FieldError{"type", `must be "info", "warn" or "error"`}
	}
	switch e.Level {
	case LevelProject:
		if e.ProjectID == "" {
			return &FieldError{"projectId", "is required for a project-level event"}
		}
	case LevelCompany:
		if e.ProjectID != "" {
			return &FieldError{"projectId", "must be empty for a company-level event"}
		}
	default:
		return &FieldError{"level", `must be "project" or "company"`}
	}
	if e.Occurred <= 0 {
		return &FieldError{"occurred", "must be positive epoch milliseconds"}
	}
	if e.Occurred > time.Now().UnixMilli()+MaxFutureSkewMs {
		return &FieldError{"occurred", "is more than a day in the future"}
	}
	for _, f := range []struct{ name, v string }{
		{"id", e.ID}, {"userId", e.UserID}, {"action", e.Action}, {"actorId", e.ActorID},
		{"device", e.Device}, {"method", e.Method}, {"geo", e.Geo}, {"remoteAddress", e.RemoteAddress},
	} {
		if err := checkString(f.name, f.v); err != nil {
			return err
		}
	}
	for _, l := range []struct {
		name string
		v    []string
	}{{"externalIds", e.LoginIDs}, {"tenants", e.Tenants}} {
		if len(l.v) > MaxListLen {
			return &FieldError{l.name, fmt.Sprintf("has more than %d entries", MaxListLen)}
		}
		for i, s := range l.v {
			if err := checkString(fmt.Sprintf("%s[%d]", l.name, i), s); err != nil {
				return err
			}
		}
	}
	return checkData(e.Data)
}

func checkString(field, s string) error {
	if len(s) > MaxFieldLen {
		return &FieldError{field, fmt.Sprintf("longer than %d bytes", MaxFieldLen)}
	}
	if !validText(s) {
		return &FieldError{field, "is not valid UTF-8 or holds a NUL byte"}
	}
	return nil
}

// checkData requires `data` to be absent, null or a JSON object of bounded
// size and depth.
func checkData(d json.RawMessage) error {
	d = bytes.TrimSpace(d)
	if len(d) == 0 || string(d) == "null" {
		return nil
	}
	if len(d) > MaxDataBytes {
		return &FieldError{"data", fmt.Sprintf("larger than %d bytes", MaxDataBytes)}
	}
	if d[0] != '{' {
		return &FieldError{"data", "must be a JSON object"}
	}
	if depth := jsonDepth(d); depth > MaxDataDepth {
		return &FieldError{"data", fmt.Sprintf("nested deeper than %d levels", MaxDataDepth)}
	}
	if !json.Valid(d) {
		return &FieldError{"data", "is not valid JSON"}
	}
	if !validText(string(d)) {
		return &FieldError{"data", "is not valid UTF-8 or holds a NUL byte"}
	}
	return nil
}

// jsonDepth counts bracket nesting outside strings; it runs before
// json.Valid so that deep input is refused without recursing over it.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				max = depth
			}
		case '}', ']':
			depth--
		}
	}
	return max
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a fresh event id: 48 bits of milliseconds then 80 random
// bits, so ids sort roughly by creation time and never collide in practice.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return idEncoding.EncodeToString(b[:])
}
