// Package server is the composition root of `audittrail serve`:
// configuration → store → tenancy directory → rate limiter → HTTP API,
// then bootstrap, the retention loop, and an ordered shutdown on SIGTERM.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/internal/catalog"
	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/console"
	"github.com/audittrail/audittrail/internal/enrich"
	"github.com/audittrail/audittrail/internal/gcpolicy"
	"github.com/audittrail/audittrail/internal/httpapi"
	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgerpg"
	"github.com/audittrail/audittrail/internal/metrics"
	"github.com/audittrail/audittrail/internal/ratelimit"
	"github.com/audittrail/audittrail/internal/ratelimit/redislimit"
	"github.com/audittrail/audittrail/internal/scim"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/postgres"
	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/registry"
	"github.com/audittrail/audittrail/internal/stream/streamhttp"
	"github.com/audittrail/audittrail/internal/tenancy"
)

// maxHeaderBytes bounds a request's headers; the connection timeouts are
// settings (config.Defaults).
const maxHeaderBytes = 64 << 10

// streamReloadInterval bounds how late a connector change made through
// another instance of a fleet takes effect on this one.
const streamReloadInterval = time.Second

// On-disk names inside --data-dir.
const (
	BootstrapFile = "bootstrap.json"
	eventsDir     = "events"
	tenancyFile   = "tenancy.json"
	streamsFile   = "streams.json"
)

// ErrUnsupported is returned for a configuration this build cannot serve.
var ErrUnsupported = errors.New("server: unsupported configuration")

// Main runs `audittrail serve` and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return MainWith(ctx, args, stdout, stderr)
}

// MainWith is Main with extensions (subsystems that mount routes and run
// beside the API), for cmd/audittrail to list explicitly.
func MainWith(ctx context.Context, args []string, stdout, stderr io.Writer, exts ...Extension) int {
	cfg, err := config.Load(config.Sources{Args: args, Usage: stderr})
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "audittrail serve: %v\n", err)
		return 2
	}
	logger := NewLogger(cfg, stderr)
	gc := gcpolicy.Apply()
	logger.Info("garbage collector pace", "gogc", gc.Percent, "memoryLimitBytes", gc.MemoryLimit)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, restore the default handling so that a
		// second Ctrl-C ends a shutdown that takes too long.
		<-ctx.Done()
		stop()
	}()
	if err := Run(ctx, cfg, RunOptions{Logger: logger, Stdout: stdout, Extensions: exts}); err != nil {
		logger.Error("audittrail serve stopped", "error", err)
		return 1
	}
	return 0
}

// NewLogger builds the process logger from --log-level and --log-format.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// RunOptions are the process-level things Run needs besides the config.
type RunOptions struct {
	Logger *slog.Logger
	// Stdout receives the bootstrap credentials, printed once.
	Stdout io.Writer
	// Listener, when set, is served instead of listening on cfg.Addr
	// (tests pass one bound to port 0).
	Listener net.Listener
	// Started, when set, is called with the listening address once the
	// server accepts connections (before it is ready: see /healthz).
	Started func(addr net.Addr)
	// Extensions start in order after bootstrap and stop in reverse order
	// after HTTP requests have drained, before the store closes.
	Extensions []Extension
}

// Components are what an extension may build on.
type Components struct {
	Config    config.Config
	Logger    *slog.Logger
	Store     store.Store
	Directory tenancy.Directory
	// API is where an extension mounts its routes (API.Handle for
	// authenticated ones, API.HandlePublic otherwise) and its metrics.
	API *httpapi.API
	// Streams is the running stream delivery manager (connectors).
	Streams *stream.Manager
}

// Extension adds a subsystem (stream delivery, the console, live tail) to
// the server: it mounts its routes and starts its background work, and
// returns how to stop it. Routes mounted before /healthz turns 200 are
// never seen half-registered by a client that waits for health.
type Extension func(ctx context.Context, c Components) (stop func(context.Context) error, err error)

// Server holds the running components.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	store   store.Store
	dir     tenancy.Directory
	limiter ratelimit.Limiter
	api     *httpapi.API
	ready   atomic.Bool
	metrics *metrics.Registry
	// enricher fills device, geo and request details at ingest.
	enricher *enrich.Enricher
	streams  *stream.Manager
	// apiReady is s.api once built: connectors start delivering (and may
	// pause themselves) before it exists.
	apiReady atomic.Pointer[httpapi.API]
	// ledger keeps the tamper-evident trees (nil with --ledger=false);
	// ledgerTrees is where it keeps them (see ledger.go).
	ledger      *ledger.Ledger
	ledgerTrees ledger.TreeStore
	// closeDB releases what store, dir and limiter share (a pool).
	closeDB func() error
	// Stream connector state and delivery lease: a file and LocalLease
	// alone, the database's in a fleet.
	streamState  stream.StateStore
	streamLease  stream.Lease
	streamReload time.Duration
	// bootstrapLock, when set, serialises bootstrap across the instances
	// sharing one directory.
	bootstrapLock func(ctx context.Context) (unlock func(), err error)
}

func (s *Server) bootstrap(ctx context.Context, stdout io.Writer) error {
	if s.bootstrapLock != nil {
		unlock, err := s.bootstrapLock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	return Bootstrap(ctx, s.dir, s.cfg.DataDir, stdout, s.log)
}

// Run serves until ctx is cancelled, then shuts down in order: stop
// accepting, drain requests (cfg.ShutdownTimeout), stop background work,
// close the store (which flushes and fsyncs) and the directory.
func Run(ctx context.Context, cfg config.Config, ro RunOptions) (err error) {
	if ro.Logger == nil {
		ro.Logger = slog.Default()
	}
	if ro.Stdout == nil {
		ro.Stdout = io.Discard
	}
	log := ro.Logger
	log.Info("starting audittrail", "config", cfg)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: log, metrics: metrics.NewRegistry()}
	if err := s.open(ctx); err != nil {
		// Release what did open (a store's directory lock, a pool).
		if cerr := s.close(); cerr != nil {
			log.Warn("closing after a failed start", "error", cerr)
		}
		return err
	}
	var shutdownStart time.Time
	defer func() {
		if cerr := s.close(); cerr != nil && err == nil {
			err = cerr
		}
		if !shutdownStart.IsZero() {
			log.Info("shutdown complete", "duration", time.Since(shutdownStart))
		}
	}()

	var health func() (string, any)
	if d, ok := s.store.(damageReporter); ok {
		health = func() (string, any) { return storeHealth(d) }
	}
	s.api, err = httpapi.New(httpapi.Options{
		Store:     s.store,
		Directory: s.dir,
		Authenticate: func(ctx context.Context, managementKey string) (tenancy.Key, error) {
			return tenancy.AuthenticateKey(ctx, s.dir, managementKey)
		},
		Keys:            tenancy.Issuer{},
		Enricher:        s.enricher,
		Limiter:         s.limiter,
		SearchRateLimit: cfg.SearchRateLimit,
		AfterAppend:     s.afterAppend,
		Logger:          log,
		Metrics:         s.metrics,
		Ready:           s.ready.Load,
		Health:          health,
	})
	if err != nil {
		return err
	}
	s.apiReady.Store(s.api)
	s.metrics.NewCollector("streams", func(w io.Writer) error { return s.streams.WritePrometheus(context.Background(), w) })
	if d, ok := s.store.(damageReporter); ok {
		s.metrics.NewCollector("store_damage", func(w io.Writer) error { return writeDamageMetrics(w, d.Damage()) })
	}
	// The built-in subsystems mount their routes before the first request.
	catalog.Register(s.api)
	scim.Register(s.api, scim.Deps{Store: s.store, Enricher: s.enricher, AfterAppend: s.afterAppend, Logger: log.With("component", "scim")})
	streamhttp.Register(s.api, s.streams, streamhttp.Options{Directory: s.dir, Logger: log.With("component", "streamhttp")})
	s.registerLedger()
	cons, err := console.Register(s.api, console.Options{Store: s.store, Directory: s.dir,
		Logger: log.With("component", "console")})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}

	ln := ro.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
	}
	srv := &http.Server{
		Handler:           httpapi.CORS(cfg.CORSOrigins, s.api),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "")
	if ro.Started != nil {
		ro.Started(ln.Addr())
	}

	// Bootstrap after listening so /healthz can say "starting" meanwhile;
	// the store has already recovered in open.
	if err := s.bootstrap(ctx, ro.Stdout); err != nil {
		shutdownHTTP(srv, cfg.ShutdownTimeout, log)
		return fmt.Errorf("bootstrap: %w", err)
	}
	var stops []func(context.Context) error
	stopExtensions := func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](ctx); err != nil {
				log.Error("stopping an extension", "error", err)
			}
		}
	}
	// Delivery resumes once the store is recovered and before the API says
	// ready, so nothing appended after ready waits for a connector to load.
	if err := s.streams.Start(ctx); err != nil {
		shutdownHTTP(srv, cfg.ShutdownTimeout, log)
		return fmt.Errorf("start stream delivery: %w", err)
	}
	comps := Components{Config: cfg, Logger: log, Store: s.store, Directory: s.dir, API: s.api, Streams: s.streams}
	for _, ext := range ro.Extensions {
		stop, err := ext(ctx, comps)
		if err != nil {
			shutdownHTTP(srv, cfg.ShutdownTimeout, log)
			stopExtensions()
			return fmt.Errorf("start extension: %w", err)
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}
	s.ready.Store(true)
	log.Info("ready")

	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	if cfg.RetentionInterval > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			s.retentionLoop(bgCtx, cfg.RetentionInterval)
		}()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-serveErr:
		stopBackground()
		bg.Wait()
		stopExtensions()
		return fmt.Errorf("serve: %w", err)
	}
	shutdownStart = time.Now()
	s.ready.Store(false)
	// Live tails never end by themselves; end them so that draining the
	// other requests is not held up until the deadline.
	_ = cons.Close()
	shutdownHTTP(srv, cfg.ShutdownTimeout, log)
	stopBackground()
	bg.Wait()
	stopExtensions()
	return nil
}

// shutdownHTTP stops accepting, lets in-flight requests finish within
// timeout, then cuts what is left.
func shutdownHTTP(srv *http.Server, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("requests still running at the shutdown deadline; closing their connections", "error", err)
		_ = srv.Close()
	}
}

// open builds the store, the directory and the limiter for cfg.Store.
func (s *Server) open(ctx context.Context) error {
	switch s.cfg.Store {
	case config.StoreEmbedded:
		start := time.Now()
		st, err := embedded.Open(embedded.Options{Dir: filepath.Join(s.cfg.DataDir, eventsDir), Logger: s.log.With("component", "store")})
		if err != nil {
			return fmt.Errorf("open embedded store: %w", err)
		}
		s.store = st
		s.log.Info("store recovered", "store", "embedded", "duration", time.Since(start))
		dir, err := tenancy.OpenFileDirectory(filepath.Join(s.cfg.DataDir, tenancyFile))
		if err != nil {
			return fmt.Errorf("open tenancy directory: %w", err)
		}
		s.dir = dir
		if err := s.openLedger(s.fileLedgerTrees, nil); err != nil {
			return err
		}
	case config.StorePostgres:
		start := time.Now()
		db, err := postgres.Open(ctx, postgres.Options{URL: s.cfg.PostgresURL.Reveal(), Logger: s.log.With("component", "postgres")})
		if err != nil {
			return fmt.Errorf("open postgres: %w", err)
		}
		// Connectors live in the database and each is delivered by the one
		// instance holding its advisory lock; the others reload the records.
		lease := db.StreamLease(postgres.LeaseOptions{Logger: s.log.With("component", "stream-lease")})
		s.streamState, s.streamLease, s.streamReload = db.StreamState(), lease, streamReloadInterval
		s.closeDB = func() error { lease.Close(); db.Close(); return nil }
		s.bootstrapLock = func(ctx context.Context) (func(), error) {
			// Instances starting together on an empty database would each
			// create a company; a session advisory lock lets one bootstrap
			// while the others wait and then find its company.
			conn, err := db.Pool().Acquire(ctx)
			if err != nil {
				return nil, fmt.Errorf("acquire a connection: %w", err)
			}
			if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('audittrail.bootstrap'))"); err != nil {
				conn.Release()
				return nil, fmt.Errorf("take the bootstrap lock: %w", err)
			}
			return func() {
				_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext('audittrail.bootstrap'))")
				conn.Release()
			}, nil
		}
		s.store, s.dir, s.limiter = db.Store(), db.Directory(), db.Limiter()
		// After the store is set: the ledger follows it.
		if err := s.openLedger(func() (ledger.TreeStore, error) { return ledgerpg.New(db.Pool()), nil }, streamLedgerLease(lease)); err != nil {
			return err
		}
		s.log.Info("store ready", "store", "postgres", "duration", time.Since(start))
	default:
		return fmt.Errorf("%w: store %q", ErrUnsupported, s.cfg.Store)
	}
	if s.cfg.RedisURL != "" {
		// Redis shares the search limit across instances whatever the store.
		lim, err := redislimit.New(redislimit.Options{URL: s.cfg.RedisURL.Reveal()})
		if err != nil {
			return fmt.Errorf("open redis rate limiter: %w", err)
		}
		s.limiter = lim
	}
	if s.limiter == nil {
		s.limiter = ratelimit.NewMemory()
	}
	if s.streamState == nil {
		state, err := stream.OpenFileState(filepath.Join(s.cfg.DataDir, streamsFile))
		if err != nil {
			return fmt.Errorf("open stream state: %w", err)
		}
		s.streamState = state
	}
	var err error
	s.streams, err = stream.New(stream.Options{Store: s.store, State: s.streamState, Lease: s.streamLease, ReloadInterval: s.streamReload, Destinations: registry.Destinations(), Logger: s.log,
		AutoPauseAfter: s.cfg.StreamAutoPauseAfter,
		OnAutoPause:    s.recordAutoPause,
		Evidence:       s.streamEvidence()})
	if err != nil {
		return fmt.Errorf("stream delivery: %w", err)
	}
	en, err := enrich.New(enrich.Options{GeoIPDB: s.cfg.GeoIPDB, CountryHeader: s.cfg.CountryHeader, Logger: s.log.With("component", "enrich")})
	if err != nil {
		return fmt.Errorf("enrichment: %w", err)
	}
	s.enricher = en
	return nil
}

// recordAutoPause is the stream manager's OnAutoPause: the trail records a
// connector pausing itself as it records a pause by a user.
func (s *Server) recordAutoPause(ctx context.Context, spec stream.Spec, failingFor time.Duration) {
	api := s.apiReady.Load()
	if api == nil {
		s.log.Error("a connector paused itself before the API was ready; not recorded in the trail", "connector", spec.ID)
		return
	}
	streamhttp.RecordAutoPause(ctx, api, s.log.With("component", "streamhttp"), spec, failingFor)
}

// close releases the components in reverse order of use.
func (s *Server) close() error {
	var errs []error
	if s.streams != nil {
		// Cursors are saved here; the store must still be open.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		if err := s.streams.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close stream delivery: %w", err))
		}
		cancel()
	}
	// The ledger reads the store: stop it before the store closes.
	if err := s.closeLedger(); err != nil {
		errs = append(errs, err)
	}
	if s.store != nil {
		start := time.Now()
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		s.log.Info("store closed", "duration", time.Since(start))
	}
	if s.dir != nil {
		if err := s.dir.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close tenancy directory: %w", err))
		}
	}
	if s.closeDB != nil {
		if err := s.closeDB(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	if s.enricher != nil {
		if err := s.enricher.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close enricher: %w", err))
		}
	}
	if c, ok := s.limiter.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close rate limiter: %w", err))
		}
	}
	return errors.Join(errs...)
}
