// Package scim turns a SCIM 2.0 operation, as an identity provider (Okta,
// Microsoft Entra ID, OneLogin…) sent it to a SCIM server, into a SCIMEvent
// audit row: the action it amounts to, the request with secrets redacted,
// the result or the error, and the field-level Change derived from PATCH
// operations, from PUT against the previous resource, and from group
// membership changes.
package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/audittrail/audittrail/internal/catalog"
	"github.com/audittrail/audittrail/internal/event"
)

// ErrInvalid is returned for an operation that cannot be recorded.
var ErrInvalid = errors.New("scim: invalid operation")

// Operation is one SCIM call as the identity provider made it and the SCIM
// server answered it.
type Operation struct {
	Method string // GET, POST, PUT, PATCH, DELETE (any case)
	// Path is the request path, e.g. /scim/v2/Users/{id} or /Groups/{id};
	// anything before the resource type is ignored, so is a query.
	Path string
	// Request is the body the identity provider sent (absent for GET and
	// DELETE).
	Request json.RawMessage
	// Result is the resource after the call; absent on failure or for a
	// 204 answer.
	Result json.RawMessage
	// Error is the SCIM error answered, when the call failed.
	Error json.RawMessage
	// Previous is the resource before the call, when the sender knows it:
	// a PUT's Change needs it, and with it PATCH changes carry old values.
	Previous json.RawMessage

	UserID, ActorID, TenantID string
	Occurred                  int64 // epoch ms
}

// Resource types.
const (
	TypeUser  = "User"
	TypeGroup = "Group"
)

// Event builds the SCIMEvent row of op: a project-level event without
// project, company or id, which the caller fills before storing.
func Event(op Operation) (event.Event, error) {
	method := strings.ToUpper(strings.TrimSpace(op.Method))
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		return event.Event{}, fmt.Errorf("%w: method %q", ErrInvalid, op.Method)
	}
	resType, resID, err := splitPath(op.Path)
	if err != nil {
		return event.Event{}, err
	}
	request, err := object("request", op.Request)
	if err != nil {
		return event.Event{}, err
	}
	result, err := object("result", op.Result)
	if err != nil {
		return event.Event{}, err
	}
	previous, err := object("previous", op.Previous)
	if err != nil {
		return event.Event{}, err
	}
	scimErr, err := object("error", op.Error)
	if err != nil {
		return event.Event{}, err
	}
	if resID == "" && method == "POST" {
		// A create names the new resource only in its result.
		resID, _ = getFold(result, "id").(string)
	}

	var change map[string]any
	if scimErr == nil && (resType == TypeUser || resType == TypeGroup) {
		change, err = deriveChange(method, request, result, previous)
		if err != nil {
			return event.Event{}, err
		}
	}
	action := actionOf(method, resType, resID, change)
	typ := event.TypeInfo
	switch {
	case scimErr != nil:
		typ = event.TypeError
	case strings.HasSuffix(action, "Deleted") || action == "UserDeactivated":
		typ = event.TypeWarn
	}

	data := map[string]any{
		"scim_action":        action,
		"scim_method":        method,
		"scim_path":          op.Path,
		"scim_resource_type": resType,
	}
	if resID != "" {
		data["scim_resource_id"] = resID
	}
	if f := queryFilter(op.Path); f != "" {
		// Who an IdP looked up (userName eq "…") is worth finding by text.
		data["scim_filter"] = f
	}
	if request != nil {
		data["scim_request"] = redact(request)
	}
	if result != nil && scimErr == nil {
		data["scim_result"] = redact(result)
	}
	if scimErr != nil {
		data["error"] = redact(scimErr)
	}
	if len(change) > 0 {
		data["Change"] = change
	}
	raw, err := fitData(data)
	if err != nil {
		return event.Event{}, err
	}

	e := event.Event{
		Level:    event.LevelProject,
		Action:   catalog.SCIMEvent,
		Type:     typ,
		UserID:   op.UserID,
		ActorID:  op.ActorID,
		Method:   "scim",
		Occurred: op.Occurred,
		Data:     raw,
	}
	if resType == TypeUser {
		if e.UserID == "" {
			e.UserID = resID
		}
		// The userName is the login id an IdP provisions.
		for _, r := range []map[string]any{result, request, previous} {
			if name, ok := getFold(r, "userName").(string); ok && name != "" && r != nil {
				e.LoginIDs = []string{name}
				break
			}
		}
	}
	if op.TenantID != "" {
		e.Tenants = []string{op.TenantID}
	}
	return e, nil
}

// splitPath finds the resource type and id in a SCIM request path.
func splitPath(p string) (resType, id string, err error) {
	if p == "" || len(p) > 2048 {
		return "", "", fmt.Errorf("%w: path is required (at most 2048 bytes)", ErrInvalid)
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	segs := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	for i := len(segs) - 1; i >= 0; i-- {
		switch strings.ToLower(segs[i]) {
		case "users":
			resType = TypeUser
		case "groups":
			resType = TypeGroup
		default:
			continue
		}
		if i+1 < len(segs) {
			if id, err = url.PathUnescape(segs[i+1]); err != nil {
				return "", "", fmt.Errorf("%w: path %q: %v", ErrInvalid, p, err)
			}
		}
		return resType, id, nil
	}
	if len(segs) == 0 {
		return "", "", fmt.Errorf("%w: path %q names no resource", ErrInvalid, p)
	}
	return segs[len(segs)-1], "", nil
}

// queryFilter returns the ?filter= of a request path, "" when absent or
// not a valid SCIM filter (an IdP's lookups always are).
func queryFilter(p string) string {
	_, q, ok := strings.Cut(p, "?")
	if !ok {
		return ""
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return ""
	}
	f := v.Get("filter")
	if _, err := ParseFilter(f); err != nil || len(f) > 1024 {
		return ""
	}
	return f
}

// object decodes an optional JSON object member.
func object(name string, raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s must be a JSON object", ErrInvalid, name)
	}
	return m, nil
}

func deriveChange(method string, request, result, previous map[string]any) (map[string]any, error) {
	c := newChanges(previous)
	switch method {
	case "PATCH":
		if request == nil {
			return nil, fmt.Errorf("%w: PATCH needs the request body", ErrInvalid)
		}
		ops, err := patchOps(request)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		for i, op := range ops {
			if err := c.applyOp(op); err != nil {
				return nil, fmt.Errorf("%w: Operations[%d]: %w", ErrInvalid, i, err)
			}
		}
	case "PUT":
		after := result
		if after == nil {
			after = request
		}
		if previous == nil || after == nil {
			return nil, nil // nothing to compare with
		}
		c.diff(previous, after)
		if _, ok := getFold(request, "password").(string); ok {
			c.m[keyPassword] = Redacted
		}
	default:
		return nil, nil
	}
	return c.m, nil
}

// actionOf names what the call amounts to (see catalog.SCIMActions).
func actionOf(method, resType, id string, change map[string]any) string {
	var verb string
	switch method {
	case "POST":
		verb = "Created"
	case "PUT":
		verb = "Updated"
	case "PATCH":
		verb = "Patched"
	case "DELETE":
		verb = "Deleted"
	case "GET":
		verb = "Read"
		if id == "" {
			switch resType {
			case TypeUser:
				return "UsersListed"
			case TypeGroup:
				return "GroupsListed"
			}
		}
	}
	switch resType {
	case TypeUser:
		if (method == "PATCH" || method == "PUT") && len(change) == 1 {
			if s, ok := newValue(change[keyStatus]).(string); ok {
				if s == "disabled" {
					return "UserDeactivated"
				}
				return "UserReactivated"
			}
		}
		return "User" + verb
	case TypeGroup:
		if method == "PATCH" && len(change) > 0 {
			added, removed, other := false, false, false
			for k := range change {
				switch k {
				case "added_members":
					added = true
				case "removed_members":
					removed = true
				default:
					other = true
				}
			}
			switch {
			case other:
			case added && removed:
				return "GroupMembersChanged"
			case added:
				return "GroupMembersAdded"
			case removed:
				return "GroupMembersRemoved"
			}
		}
		return "Group" + verb
	}
	return "SCIMRequest"
}

func newValue(v any) any {
	if m, ok := v.(map[string]any); ok {
		if n, ok := m["new"]; ok && len(m) == 2 {
			return n
		}
	}
	return v
}

// sensitive reports whether a key names a secret that must not be stored.
func sensitive(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"password", "secret", "token", "credential", "apikey", "api_key", "privatekey", "private_key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// redact copies v with every secret replaced by Redacted: values of
// sensitive keys, and the value of a PATCH operation whose path is one.
func redact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if sensitive(k) {
				out[k] = Redacted
				continue
			}
			out[k] = redact(x)
		}
		if path, ok := getFold(v, "path").(string); ok && sensitive(path) {
			for k := range out {
				if strings.EqualFold(k, "value") {
					out[k] = Redacted
				}
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = redact(x)
		}
		return out
	}
	return v
}

// fitData encodes data within the event size limit, dropping the result
// and then the request when a large group would not fit.
func fitData(data map[string]any) (json.RawMessage, error) {
	for _, drop := range []string{"", "scim_result", "scim_request"} {
		if drop != "" {
			if _, ok := data[drop]; !ok {
				continue
			}
			delete(data, drop)
			data["scim_truncated"] = true
		}
		raw, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("encode SCIM event data: %w", err)
		}
		if len(raw) <= event.MaxDataBytes {
			return raw, nil
		}
	}
	return nil, fmt.Errorf("%w: the change is larger than %d bytes", ErrInvalid, event.MaxDataBytes)
}
