package client

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// RequestContext describes the request of the end user (or identity
// provider) that caused an event. The server fills the device class, the
// remote address, the country and data.request_details from it where the
// event leaves them empty; it never stores credential headers.
type RequestContext struct {
	IP            string            `json:"ip,omitempty"`
	UserAgent     string            `json:"userAgent,omitempty"`
	Method        string            `json:"method,omitempty"`
	URL           string            `json:"url,omitempty"`
	Host          string            `json:"host,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	ContentLength int64             `json:"contentLength,omitempty"`
}

// SCIMOperation is one SCIM 2.0 call as an identity provider made it to
// your SCIM server, and how the server answered.
type SCIMOperation struct {
	Method string // GET, POST, PUT, PATCH or DELETE
	Path   string // e.g. /scim/v2/Users/2819c223 or /scim/v2/Groups/e9e30dba
	// Request is the body the identity provider sent; Result the resource
	// after the call (nil on failure or a 204); Error the SCIM error
	// answered on failure; Previous the resource before the call, which a
	// PUT needs for its Change and which adds old values to a PATCH's.
	// Each may be a json.RawMessage, a map or any struct that encodes to a
	// JSON object.
	Request, Result, Error, Previous any
	// UserID defaults to the id of the User resource; ActorID is usually the
	// identity provider's app or connector; TenantID the tenant it serves.
	UserID, ActorID, TenantID string
	// Occurred is zero for "now".
	Occurred time.Time
	// ID makes a retry idempotent: a second record with the same id is not
	// stored again.
	ID             string
	RequestContext *RequestContext
}

type scimRequest struct {
	Method         string          `json:"method"`
	Path           string          `json:"path"`
	Request        any             `json:"request,omitempty"`
	Result         any             `json:"result,omitempty"`
	Error          any             `json:"error,omitempty"`
	Previous       any             `json:"previous,omitempty"`
	UserID         string          `json:"userId,omitempty"`
	ActorID        string          `json:"actorId,omitempty"`
	TenantID       string          `json:"tenantId,omitempty"`
	Occurred       string          `json:"occurred,omitempty"`
	ID             string          `json:"id,omitempty"`
	RequestContext *RequestContext `json:"requestContext,omitempty"`
}

// RecordSCIM records a SCIMEvent for op (audittrail only; Descope records
// its own SCIM events) and returns its id. The server redacts passwords
// and other secrets, names the action (UserCreated, GroupMembersAdded…)
// in data.scim_action and derives data.Change.
func (a *Audit) RecordSCIM(ctx context.Context, op SCIMOperation) (string, error) {
	if op.Method == "" || op.Path == "" {
		return "", fmt.Errorf("%w: a SCIM operation needs Method and Path", ErrBadRequest)
	}
	req := scimRequest{
		Method: op.Method, Path: op.Path, Request: op.Request, Result: op.Result, Error: op.Error,
		Previous: op.Previous, UserID: op.UserID, ActorID: op.ActorID, TenantID: op.TenantID,
		ID: op.ID, RequestContext: op.RequestContext,
	}
	if ms := timeToMillis(op.Occurred); ms != 0 {
		req.Occurred = strconv.FormatInt(ms, 10)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := a.c.call(ctx, http.MethodPost, "/v1/mgmt/audit/scim", req, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}
