// Package console serves the web console: a static single-page application
// embedded in the binary (no CDN, works offline, no inline script so a
// strict Content-Security-Policy holds), and the two API routes only the
// console needs: a live tail of new events over a streamed fetch()
// response, and a histogram of a search's matches over time.
//
// The page talks to the same management API as the SDKs, with the project
// ID and management key the user signs in with (kept in sessionStorage), so
// the console has no session or cookie of its own to protect.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/tenancy"
)

//go:embed assets
var assetsFS embed.FS

// ErrOptions is returned by Register for incomplete options.
var ErrOptions = errors.New("console: invalid options")

// Defaults of Options, with their reasons.
const (
	// defaultTailPoll is how often a live tail looks for new events: fast
	// enough to feel live, slow enough that idle tails cost nothing.
	defaultTailPoll = time.Second
	// defaultHeartbeat keeps proxies and the browser from timing out an
	// idle tail and lets the server notice a vanished client.
	defaultHeartbeat = 15 * time.Second
	// tailReadLimit bounds one store read of a tail, so a burst of ingest
	// is sent in pieces rather than held in memory at once.
	tailReadLimit = 500
	// tailWriteTimeout is how long one write to a tail's client may take
	// before the client is taken for gone (the server's WriteTimeout is
	// lifted for tails, which run for hours).
	tailWriteTimeout = 30 * time.Second
)

// Options configure the console. Store and Directory are required.
type Options struct {
	Store     store.Store
	Directory tenancy.Directory
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TailPoll and Heartbeat tune the live tail; 0 means the defaults.
	TailPoll  time.Duration
	Heartbeat time.Duration
}

// Console is the mounted console. Close ends the running live tails, which
// would otherwise hold the HTTP server's graceful shutdown until its
// deadline.
type Console struct {
	api    *httpapi.API
	opts   Options
	log    *slog.Logger
	assets map[string]asset
	index  asset

	// tailsCtx is cancelled by Close; every tail watches it.
	tailsCtx    context.Context
	cancelTails context.CancelFunc

	headMu sync.Mutex
	head   uint64 // last head Seq found, where the next search starts
}

type asset struct {
	body        []byte
	etag        string
	contentType string
}

// Register mounts the console on api: the page at / (and /audit,
// /settings, /connectors, which the page routes itself), its assets under
// /assets/, and the routes POST /v1/mgmt/audit/tail and
// POST /v1/mgmt/audit/histogram behind the API's authentication (role
// reader, project required).
func Register(api *httpapi.API, opts Options) (*Console, error) {
	if api == nil || opts.Store == nil || opts.Directory == nil {
		return nil, ErrOptions
	}
	if opts.Logger == nil {
		opts.Logger = api.Logger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TailPoll <= 0 {
		opts.TailPoll = defaultTailPoll
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = defaultHeartbeat
	}
	c := &Console{api: api, opts: opts, log: opts.Logger.With("component", "console")}
	c.tailsCtx, c.cancelTails = context.WithCancel(context.Background())
	if err := c.loadAssets(); err != nil {
		return nil, err
	}

	page := secureHeaders(http.HandlerFunc(c.servePage))
	for _, p := range []string{"GET /{$}", "GET /audit", "GET /settings", "GET /connectors"} {
		api.HandlePublic(p, page)
	}
	api.HandlePublic("GET /assets/", secureHeaders(http.HandlerFunc(c.serveAsset)))
	api.Handle("POST /v1/mgmt/audit/tail", tenancy.RoleReader, true, http.HandlerFunc(c.handleTail))
	api.Handle("POST /v1/mgmt/audit/histogram", tenancy.RoleReader, true, http.HandlerFunc(c.handleHistogram))
	return c, nil
}

// Close ends every running live tail; each tells its client it ended.
func (c *Console) Close() error {
	c.cancelTails()
	return nil
}

// contentSecurityPolicy allows only the console's own origin: no inline
// script or style, no framing, no plug-ins, no form posts elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// secureHeaders adds the headers every console response carries.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.ServeHTTP(w, r)
	})
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".ico":  "image/x-icon",
	".png":  "image/png",
}

// loadAssets reads the embedded files once and gives each a strong ETag,
// so browsers revalidate cheaply (the embedded files have no mtime).
func (c *Console) loadAssets() error {
	c.assets = map[string]asset{}
	err := fs.WalkDir(assetsFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetsFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		c.assets["/"+p] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		return fmt.Errorf("console: read embedded assets: %w", err)
	}
	idx, ok := c.assets["/assets/index.html"]
	if !ok {
		return fmt.Errorf("console: %w: assets/index.html is missing", ErrOptions)
	}
	c.index = idx
	return nil
}

func (c *Console) servePage(w http.ResponseWriter, r *http.Request) {
	c.serve(w, r, c.index)
}

func (c *Console) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := c.assets[path.Clean(r.URL.Path)]
	if !ok || strings.HasSuffix(r.URL.Path, "/index.html") {
		httpapi.WriteError(w, r, httpapi.Errorf(httpapi.CodeNotFound, "no console asset %s", r.URL.Path))
		return
	}
	c.serve(w, r, a)
}

func (c *Console) serve(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	// Revalidate every time: the ETag makes that a 304 without a body, and
	// a new binary's assets are never mixed with an old page's.
	h.Set("Cache-Control", "no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}
