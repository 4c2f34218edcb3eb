package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. An *Error matches the one for its status with errors.Is,
// so callers need not compare status codes:
//
//	if errors.Is(err, client.ErrRateLimited) { … }
var (
	ErrBadRequest      = errors.New("audittrail: bad request")
	ErrUnauthorized    = errors.New("audittrail: unauthorized")
	ErrForbidden       = errors.New("audittrail: forbidden")
	ErrNotFound        = errors.New("audittrail: not found")
	ErrTooLarge        = errors.New("audittrail: request too large")
	ErrRateLimited     = errors.New("audittrail: rate limited")
	ErrUnavailable     = errors.New("audittrail: service unavailable")
	ErrInvalidResponse = errors.New("audittrail: invalid response")
)

// Error is a non-2xx answer of the server, in Descope's error format.
type Error struct {
	StatusCode  int
	ErrorCode   string // e.g. "E011004"; empty when the body was not Descope's format
	Description string // errorDescription: the class of error
	Message     string // errorMessage: what exactly was wrong
	// RetryAfter is the server's Retry-After header (429, 503); 0 if absent.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audittrail: HTTP %d", e.StatusCode)
	if e.ErrorCode != "" {
		b.WriteString(" " + e.ErrorCode)
	}
	switch {
	case e.Message != "" && e.Description != "" && e.Message != e.Description:
		b.WriteString(": " + e.Description + ": " + e.Message)
	case e.Message != "":
		b.WriteString(": " + e.Message)
	case e.Description != "":
		b.WriteString(": " + e.Description)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is lets errors.Is match an *Error against the sentinel of its status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrTooLarge:
		return e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

// decodeError reads a non-2xx response. A body that is not Descope's format
// (a proxy's page, say) still gives an *Error, with its start as Message.
func decodeError(resp *http.Response) error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		ErrorCode        string `json:"errorCode"`
		ErrorDescription string `json:"errorDescription"`
		ErrorMessage     string `json:"errorMessage"`
	}
	if json.Unmarshal(b, &body) == nil && body.ErrorCode != "" {
		e.ErrorCode, e.Description, e.Message = body.ErrorCode, body.ErrorDescription, body.ErrorMessage
		return e
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e.Message = msg
	return e
}

// parseRetryAfter reads the header as delay-seconds or an HTTP date
// (RFC 9110 §10.2.3); anything else, or a date in the past, gives 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > math.MaxInt64/int64(time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
