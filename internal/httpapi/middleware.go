package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
)

type ctxKey int

const (
	infoKey ctxKey = iota
	principalKey
)

// requestInfo travels in the request context so that inner layers (auth,
// WriteError) can tell the outer request log what they learnt.
type requestInfo struct {
	id        string
	logger    *slog.Logger
	projectID string
	keyID     string
	errCode   string
	err       error
}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey).(*requestInfo)
	return info
}

func loggerFrom(ctx context.Context) *slog.Logger {
	if info := infoFrom(ctx); info != nil && info.logger != nil {
		return info.logger
	}
	return slog.Default()
}

func requestIDFrom(ctx context.Context) string {
	if info := infoFrom(ctx); info != nil {
		return info.id
	}
	return ""
}

// RequestID returns the id the request log carries for this request.
func RequestID(ctx context.Context) string { return requestIDFrom(ctx) }

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter remembers the status and size for the request log. It keeps
// Flush working for streamed responses (export, live tail).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveTop is the outermost layer: request id, recovery, routing, the
// request log and the HTTP metrics.
func (a *API) serveTop(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{id: newRequestID(), logger: a.log}
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && printableASCII(id) {
		info.id = id
	}
	r = r.WithContext(context.WithValue(r.Context(), infoKey, info))
	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set("X-Request-Id", info.id)

	_, pattern := a.mux.Handler(r)
	route := pattern
	if route == "" {
		route = "unmatched"
	}

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v) // the handler asked net/http to cut the connection
			}
			a.log.Error("panic serving request", "request_id", info.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw.status == 0 {
				WriteError(sw, r, fmt.Errorf("panic: %v", v))
			} else {
				// Part of a response is out: cut the connection so the
				// client cannot take the truncated body for a whole one.
				defer panic(http.ErrAbortHandler)
			}
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		a.met.requests.With(route, strconv.Itoa(status)).Inc()
		a.met.requestSeconds.With(route).Observe(elapsed.Seconds())
		attrs := []slog.Attr{
			slog.String("request_id", info.id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
			slog.Int64("bytes", sw.bytes),
		}
		if info.projectID != "" {
			attrs = append(attrs, slog.String("project", info.projectID))
		}
		if info.keyID != "" {
			attrs = append(attrs, slog.String("key_id", info.keyID))
		}
		if info.errCode != "" {
			attrs = append(attrs, slog.String("error_code", info.errCode))
			if status < 500 && info.err != nil {
				attrs = append(attrs, slog.String("error", info.err.Error()))
			}
		}
		level := slog.LevelInfo
		if pattern == "GET /healthz" || pattern == "GET /metrics" {
			level = slog.LevelDebug
		}
		a.log.LogAttrs(r.Context(), level, "request", attrs...)
	}()

	if pattern == "" {
		// The mux would answer 404 or 405 in plain text; answer in our
		// error format instead, keeping the Allow header it computes.
		a.mux.ServeHTTP(&notFoundWriter{statusWriter: sw, r: r}, r)
		return
	}
	a.mux.ServeHTTP(sw, r)
}

// notFoundWriter turns the mux's plain-text 404/405 into an API error;
// anything else the mux answers (a redirect to a cleaned path) passes.
type notFoundWriter struct {
	*statusWriter
	r       *http.Request
	decided bool
	swallow bool
}

func (w *notFoundWriter) WriteHeader(code int) {
	if w.decided {
		return
	}
	w.decided = true
	switch code {
	case http.StatusMethodNotAllowed, http.StatusNotFound:
		w.swallow = true
		w.Header().Del("Content-Type")
		w.Header().Del("X-Content-Type-Options")
		if code == http.StatusMethodNotAllowed {
			WriteError(w.statusWriter, w.r, Errorf(CodeMethod, "method %s is not allowed on %s", w.r.Method, w.r.URL.Path))
		} else {
			WriteError(w.statusWriter, w.r, Errorf(CodeNotFound, "no route for %s %s", w.r.Method, w.r.URL.Path))
		}
	default:
		w.statusWriter.WriteHeader(code)
	}
}

func (w *notFoundWriter) Write(b []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.statusWriter.Write(b)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// CORS lets the listed browser origins call the API from their pages. With
// no origins (the default) it adds nothing: no Access-Control-* header is
// ever sent, so browsers keep other sites' scripts from reading responses.
// Credentials (cookies) are never allowed: the API authenticates with an
// Authorization header that a page must add itself.
func CORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !allowed[origin] {
			if preflight {
				// A refused preflight: the browser will not send the request.
				w.WriteHeader(http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
		next.ServeHTTP(w, r)
	})
}
