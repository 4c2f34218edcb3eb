package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// The error catalogue: every errorCode this API answers with. The E011xxx
// and E130429 codes are Descope's; the others follow the same pattern.
const (
	CodeBadRequest      = "E011001" // malformed body
	CodeMissingArgument = "E011002"
	CodeValidation      = "E011003"
	CodeInvalidArgument = "E011004" // also: `from` beyond the search window
	CodeUnauthenticated = "E011401"
	CodeForbidden       = "E011403"
	CodeNotFound        = "E011404"
	CodeMethod          = "E011405"
	CodeTooLarge        = "E011413"
	CodeMediaType       = "E011415"
	CodeRateLimited     = "E130429"
	CodeInternal        = "E010500"
	CodeUnavailable     = "E013503"
	CodeBadGateway      = "E013502" // a stream destination refused or failed
)

var descriptions = map[string]string{
	CodeBadRequest:      "Bad request",
	CodeMissingArgument: "Missing arguments",
	CodeValidation:      "Request validation failed",
	CodeInvalidArgument: "Invalid arguments",
	CodeUnauthenticated: "Unauthenticated request",
	CodeForbidden:       "Forbidden",
	CodeNotFound:        "Not found",
	CodeMethod:          "Method not allowed",
	CodeTooLarge:        "Request too large",
	CodeMediaType:       "Unsupported media type",
	CodeRateLimited:     "Rate limit exceeded",
	CodeInternal:        "Internal error",
	CodeUnavailable:     "Service unavailable",
	CodeBadGateway:      "The destination failed or refused the delivery",
}

var codeStatus = map[string]int{
	CodeBadRequest:      http.StatusBadRequest,
	CodeMissingArgument: http.StatusBadRequest,
	CodeValidation:      http.StatusBadRequest,
	CodeInvalidArgument: http.StatusBadRequest,
	CodeUnauthenticated: http.StatusUnauthorized,
	CodeForbidden:       http.StatusForbidden,
	CodeNotFound:        http.StatusNotFound,
	CodeMethod:          http.StatusMethodNotAllowed,
	CodeTooLarge:        http.StatusRequestEntityTooLarge,
	CodeMediaType:       http.StatusUnsupportedMediaType,
	CodeRateLimited:     http.StatusTooManyRequests,
	CodeInternal:        http.StatusInternalServerError,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeBadGateway:      http.StatusBadGateway,
}

// Sentinel errors that handlers (ours and those mounted by other packages)
// return; WriteError maps them.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
	ErrNotFound        = errors.New("not found")
)

// Error is an API error with its public code and message. Err, when set,
// is internal detail: it goes to the log, never to the client.
type Error struct {
	Code       string
	Message    string
	RetryAfter time.Duration
	Err        error
	// field: Message starts with a field name, so a batch prefixes it
	// as events[i].<field>.
	field bool
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a client error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is Descope's error shape; the SDKs need errorCode non-empty.
type errorBody struct {
	ErrorCode        string `json:"errorCode"`
	ErrorDescription string `json:"errorDescription"`
	ErrorMessage     string `json:"errorMessage"`
}

// classify is the one mapping from an error to what the client sees.
func classify(err error) *Error {
	var apiErr *Error
	var fieldErr *event.FieldError
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &maxBytes):
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", maxBytes.Limit)}
	case errors.As(err, &fieldErr):
		return &Error{Code: CodeInvalidArgument, Message: fieldErr.Error()}
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, tenancy.ErrUnauthenticated):
		return &Error{Code: CodeUnauthenticated, Message: "invalid or missing management key", Err: err}
	case errors.Is(err, ErrForbidden), errors.Is(err, tenancy.ErrForbidden):
		return &Error{Code: CodeForbidden, Message: "the management key does not allow this call", Err: err}
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound), errors.Is(err, tenancy.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: "not found", Err: err}
	case errors.Is(err, tenancy.ErrInvalid):
		return &Error{Code: CodeInvalidArgument, Message: strings.TrimPrefix(err.Error(), "tenancy: "), Err: err}
	case errors.Is(err, tenancy.ErrExists):
		return &Error{Code: CodeInvalidArgument, Message: "already exists", Err: err}
	case errors.Is(err, syscall.ENOSPC):
		return &Error{Code: CodeUnavailable, Message: "storage is full: nothing was stored; retry once the server has disk space again", Err: err}
	case errors.Is(err, store.ErrCorrupt):
		return &Error{Code: CodeInternal, Message: "stored data needed by this request is damaged; the server's log and /metrics name it", Err: err}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed), errors.Is(err, tenancy.ErrClosed):
		return &Error{Code: CodeUnavailable, Message: "storage is unavailable, retry later", Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Message: "request cancelled or timed out", Err: err}
	default:
		return &Error{Code: CodeInternal, Message: "internal error", Err: err}
	}
}

// WriteError answers err in Descope's error format. Handlers mounted from
// other packages call it too, so every error of the service looks the same.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	status, ok := codeStatus[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if info := infoFrom(r.Context()); info != nil {
		info.errCode = e.Code
		info.err = err
	}
	if status >= 500 {
		loggerFrom(r.Context()).LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", requestIDFrom(r.Context())), slog.String("code", e.Code), slog.Any("error", err))
	}
	if e.Code == CodeRateLimited {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	writeJSON(w, status, errorBody{ErrorCode: e.Code, ErrorDescription: descriptions[e.Code], ErrorMessage: e.Message})
}

// retryAfterSeconds rounds up to whole seconds and never answers 0, which
// clients would read as "retry at once".
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; they always marshal.
		status = http.StatusInternalServerError
		b = []byte(`{"errorCode":"E010500","errorDescription":"Internal error","errorMessage":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
