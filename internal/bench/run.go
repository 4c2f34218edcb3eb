package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/gcpolicy"
	"github.com/audittrail/audittrail/internal/query"
)

// Options configure one benchmark run. Zero fields take the defaults of
// EnsureDefaults; End is the only one that changes the trail between runs.
type Options struct {
	Events  int
	Engines []string
	// DataDir holds one subdirectory per engine, emptied before each load.
	DataDir string
	// PostgresURL is a server and a user that may create databases; the
	// PostgreSQL engines each use a database named Database_<engine>.
	PostgresURL string
	Database    string
	Seed        uint64
	// End is the newest Occurred of the trail (epoch ms); the search
	// window is the 30 days before it.
	End             int64
	QueriesPerShape int
	PageSize        int
	BatchSize       int
	// SingleEvents are appended one per call from Concurrency goroutines.
	SingleEvents int
	Concurrency  int
	// VisibilityProbes is how many times the visibility latency is sampled.
	VisibilityProbes int
	// Warmup queries per shape run untimed before the timed ones.
	Warmup int
	// Warm has every engine read its data files back into the page cache
	// before the shapes, again every rewarmAfter (engines that can: warmer). The targets are stated
	// for a warm machine, and a kernel may page out file pages idle for a
	// while even with memory free: on the machine this was built on, a DAMON
	// scheme evicts pages untouched for 60 s, so a 10M trail's segments
	// written early in a 4-minute Compact were gone from memory by the
	// queries, and a point look-up read its rows from disk.
	Warm bool
	// ShapeBudget bounds the time one engine spends on one shape's timed
	// queries, so that a slow engine on a big trail cannot stretch a run to
	// hours; the report says how many queries ran. 0 means no bound.
	ShapeBudget time.Duration
	// CrashChild, when set, builds the command of a child process that runs
	// RunCrashChild(engine, dir, seed): the restart probe kills it with
	// SIGKILL and times the reopen. Nil skips the probe.
	CrashChild func(engine, dir string, seed uint64) *exec.Cmd
	// CrashAfter is how long the child appends, from its first
	// acknowledged batch, before it is killed; default 2 s.
	CrashAfter time.Duration
	// KeepData leaves each engine's directory and database in place after
	// the run, for inspection; by default they are removed.
	KeepData bool
	// ReuseDatabases has the engines on PostgreSQL query the databases a
	// run with KeepData (same Database, Events, Seed, and no single or
	// visibility appends) left, instead of loading the trail again: a 10M
	// load into a hand-indexed table takes the best part of an hour. Their
	// ingest figures are then absent; their single and visibility appends
	// are skipped, so the database stays as loaded, and it is kept.
	ReuseDatabases bool
	Logger         *slog.Logger
}

// Defaults of the benchmark program (issue 3).
const (
	DefaultEvents           = 1_000_000
	DefaultQueriesPerShape  = 200
	DefaultPageSize         = 100
	DefaultBatchSize        = 1000
	DefaultSingleEvents     = 20_000
	DefaultConcurrency      = 64
	DefaultVisibilityProbes = 100
	DefaultWarmup           = 5
	DefaultDatabase         = "audittrail_bench"
	DefaultPostgresURL      = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	visibilityTimeout       = 5 * time.Second
)

// ErrInvalidOptions is returned by Run for unusable options.
var ErrInvalidOptions = errors.New("bench: invalid options")

// EnsureDefaults fills unset fields.
func (o *Options) EnsureDefaults() {
	if o.Events == 0 {
		o.Events = DefaultEvents
	}
	if len(o.Engines) == 0 {
		o.Engines = []string{"embedded", "pgtable"}
	}
	if o.PostgresURL == "" {
		o.PostgresURL = DefaultPostgresURL
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.End == 0 {
		o.End = time.Now().Truncate(time.Minute).UnixMilli()
	}
	if o.QueriesPerShape == 0 {
		o.QueriesPerShape = DefaultQueriesPerShape
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.SingleEvents == 0 {
		o.SingleEvents = DefaultSingleEvents
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.VisibilityProbes == 0 {
		o.VisibilityProbes = DefaultVisibilityProbes
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CrashAfter == 0 {
		o.CrashAfter = 2 * time.Second
	}
}

// Validate reports options Run cannot work with. Negative counts for the
// optional phases (single events, probes, warm-up) turn them off.
func (o *Options) Validate() error {
	switch {
	case o.Events <= 0:
		return fmt.Errorf("%w: events must be positive", ErrInvalidOptions)
	case o.DataDir == "":
		return fmt.Errorf("%w: a data directory is required", ErrInvalidOptions)
	case o.QueriesPerShape <= 0 || o.PageSize <= 0 || o.PageSize > query.MaxSize || o.BatchSize <= 0:
		return fmt.Errorf("%w: queries per shape, page size (1..%d) and batch size must be positive", ErrInvalidOptions, query.MaxSize)
	case o.Concurrency <= 0:
		return fmt.Errorf("%w: concurrency must be positive", ErrInvalidOptions)
	}
	seen := map[string]bool{}
	for _, name := range o.Engines {
		if _, ok := registry[name]; !ok {
			return fmt.Errorf("%w %q (have %v)", ErrUnknownEngine, name, EngineNames())
		}
		if seen[name] {
			return fmt.Errorf("%w: engine %q listed twice", ErrInvalidOptions, name)
		}
		seen[name] = true
	}
	return nil
}

// Report is everything one run measured.
type Report struct {
	// Command is how the run was started, when the caller says.
	Command         string    `json:"command,omitempty"`
	Started         time.Time `json:"started"`
	Events          int       `json:"events"`
	Seed            uint64    `json:"seed"`
	End             int64     `json:"end"`
	QueriesPerShape int       `json:"queriesPerShape"`
	PageSize        int       `json:"pageSize"`
	ShapeBudgetSec  float64   `json:"shapeBudgetSeconds,omitempty"`
	BatchSize       int       `json:"batchSize"`
	Concurrency     int       `json:"concurrency"`
	GOMAXPROCS      int       `json:"gomaxprocs"`
	// GOGC and GoMemLimit are the garbage collector's pace in this process
	// (gcpolicy: the server's, unless the environment set its own).
	GOGC         int            `json:"gogc"`
	GoMemLimit   int64          `json:"goMemLimitBytes"`
	Trail        GenStats       `json:"trail"`
	AvgJSONBytes float64        `json:"avgJsonBytes"`
	Engines      []EngineReport `json:"engines"`
	// Disagreements are queries on which an engine's total or first page
	// differs from the first engine's: a bug in one of them.
	Disagreements []Disagreement `json:"disagreements"`
	// Targets are issue 3's targets checked for the embedded engine.
	Targets []Target `json:"targets,omitempty"`
}

// EngineReport is one engine's figures.
type EngineReport struct {
	Name string `json:"name"`
	Note string `json:"note"`
	// Error is set when the engine failed; the figures before it stand.
	Error string `json:"error,omitempty"`

	LoadSeconds   float64 `json:"loadSeconds"`   // wall clock, generation included
	AppendSeconds float64 `json:"appendSeconds"` // inside Append calls only
	// IngestPerSec is events / AppendSeconds, the engine's batch ingest rate.
	IngestPerSec float64 `json:"ingestEventsPerSec"`
	// Reused is set when the engine queried a database loaded by an
	// earlier run (Options.ReuseDatabases): no ingest figures.
	Reused bool `json:"reused,omitempty"`
	// PostLoadSeconds is work after the load before queries (VACUUM ANALYZE
	// for PostgreSQL tables); not part of the ingest rate.
	PostLoadSeconds float64 `json:"postLoadSeconds,omitempty"`
	// IngestCPUMicrosPerEvent is this process's CPU time during the load,
	// less the generator's, per event: the whole engine's cost when it runs
	// in process (embedded), only the client's for PostgreSQL engines. Unlike
	// the rate, it barely moves with other processes' load on the machine.
	IngestCPUMicrosPerEvent float64 `json:"ingestCpuMicrosPerEvent,omitempty"`

	SingleEvents     int     `json:"singleEvents"`
	SingleSeconds    float64 `json:"singleSeconds"`
	SinglePerSec     float64 `json:"singleEventsPerSec"`
	SingleP99Ms      float64 `json:"singleAppendP99Ms"`
	VisibilityProbes int     `json:"visibilityProbes"`
	VisibilityP50Ms  float64 `json:"visibilityP50Ms"`
	VisibilityP99Ms  float64 `json:"visibilityP99Ms"`
	VisibilityMaxMs  float64 `json:"visibilityMaxMs"`
	VisibilityMisses int     `json:"visibilityMisses"` // not found within 5 s

	// Restart: a child process appending to the engine's data was killed
	// with SIGKILL; RestartSeconds is from then until the reopened engine
	// answered a first search. RestartFound must be at least RestartAcked:
	// fewer means acknowledged events were lost.
	RestartSeconds float64 `json:"restartSeconds,omitempty"`
	RestartAcked   int     `json:"restartAcked,omitempty"`
	RestartFound   int     `json:"restartFound,omitempty"`

	DiskBytes int64 `json:"diskBytes"`
	// DiskBytesCompacted is measured after the store's Compact (flush and
	// background merges run to the end), for stores that have one; the
	// queries run after it. CompactSeconds is how long Compact took.
	DiskBytesCompacted int64   `json:"diskBytesCompacted,omitempty"`
	CompactSeconds     float64 `json:"compactSeconds,omitempty"`
	// WarmSeconds is the time spent warming the page cache before shapes
	// (Options.Warm), Warmings how many times, WarmBytes what one
	// warming read.
	WarmSeconds float64 `json:"warmSeconds,omitempty"`
	Warmings    int     `json:"warmings,omitempty"`
	WarmBytes   int64   `json:"warmBytes,omitempty"`
	// PeakRSSBytes is VmHWM of the benchmark process while this engine ran:
	// the engine's own memory when it runs in process (embedded), only the
	// client's for the PostgreSQL engines (the server is another process).
	PeakRSSBytes int64 `json:"peakRssBytes"`
	// ServerPeakPssBytes is the peak summed proportional set size of the
	// server processes (PostgreSQL engines), sampled twice a second. The
	// server is shared: other databases' work on it counts too.
	ServerPeakPssBytes int64 `json:"serverPeakPssBytes,omitempty"`
	// Memory is the process's memory per phase; PeakRSSBytes is the
	// largest of their peaks.
	Memory []MemPhase `json:"memory,omitempty"`

	Shapes []ShapeReport `json:"shapes"`
}

// ShapeReport is one query shape on one engine.
type ShapeReport struct {
	Shape string `json:"shape"`
	// Queries is how many timed queries ran: fewer than asked when the
	// shape's time budget ran out.
	Queries   int     `json:"queries"`
	P50Ms     float64 `json:"p50Ms"`
	P99Ms     float64 `json:"p99Ms"`
	MeanMs    float64 `json:"meanMs"`
	MeanTotal float64 `json:"meanTotal"`
	Errors    int     `json:"errors"`
}

// Disagreement is one query two engines answered differently.
type Disagreement struct {
	Shape       string `json:"shape"`
	Query       int    `json:"query"`
	Engine      string `json:"engine"`
	Total       int    `json:"total"` // -1: the query failed
	RefEngine   string `json:"refEngine"`
	RefTotal    int    `json:"refTotal"`
	PageDiffers bool   `json:"pageDiffers"`
	Description string `json:"description"`
}

// answer is what is kept of each query to compare engines: the total and a
// hash of the page's IDs (keeping the IDs would inflate the peak RSS).
type answer struct {
	total int
	page  uint64
	ran   bool // false: skipped when the shape's budget ran out
	ok    bool // false: the query failed
}

// Run generates the trail, loads it into every engine in turn, runs the
// queries and the ingest probes, and returns the report. An engine that
// fails is reported with its error and the run goes on with the next.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	rep := &Report{
		Started: time.Now().UTC(), Events: opts.Events, Seed: opts.Seed, End: opts.End,
		QueriesPerShape: opts.QueriesPerShape, PageSize: opts.PageSize, BatchSize: opts.BatchSize,
		ShapeBudgetSec: opts.ShapeBudget.Seconds(),
		Concurrency:    opts.Concurrency, GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	gc := gcpolicy.Current()
	rep.GOGC, rep.GoMemLimit = gc.Percent, gc.MemoryLimit
	var sets []QuerySet
	answers := map[string][][]answer{} // engine → shape index → query index

	for _, name := range opts.Engines {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		// The queries are drawn from the first trail that loads fully; every
		// engine then runs the same ones.
		var sample *Sample
		if sets == nil {
			sample = NewSample(opts.Seed, DefaultSampleSize)
		}
		er, ans, stats, err := runEngine(ctx, name, opts, sample, func() []QuerySet {
			if sets == nil {
				sets = BuildQueries(sample, QueryOptions{
					CompanyID: genCompanyID, End: opts.End, PerShape: opts.QueriesPerShape,
					PageSize: opts.PageSize, Seed: opts.Seed,
				})
			}
			return sets
		})
		// VmHWM stays at the peak after the engine closed; it was reset
		// at the end of each phase.
		er.PeakRSSBytes = peakRSS()
		for _, p := range er.Memory {
			er.PeakRSSBytes = max(er.PeakRSSBytes, p.PeakRSSBytes)
		}
		if rep.Trail.Events == 0 && stats.Events == opts.Events {
			rep.Trail, rep.AvgJSONBytes = stats, stats.AvgJSONBytes()
		}
		if err != nil {
			er.Error = err.Error()
			log.Error("engine failed", "engine", name, "err", err)
		}
		rep.Engines = append(rep.Engines, er)
		answers[name] = ans
	}
	rep.Disagreements = compareAnswers(opts.Engines, sets, answers)
	rep.Targets = rep.CheckTargets()
	return rep, nil
}

// runEngine's results are named so that the deferred server-memory
// sampler can fill in its peak on every return.
func runEngine(ctx context.Context, name string, opts Options, sample *Sample, querySets func() []QuerySet) (er EngineReport, answers [][]answer, stats GenStats, err error) {
	log := opts.Logger.With("engine", name)
	er = EngineReport{Name: name}
	runtime.GC()
	debug.FreeOSMemory()
	mem := &memPhases{log: log}
	mem.start()
	defer func() { er.Memory = mem.phases }()

	dir := filepath.Join(opts.DataDir, name)
	if err := resetDir(dir); err != nil {
		return er, nil, GenStats{}, err
	}
	reuse := opts.ReuseDatabases && storesInPostgres(name)
	eng, err := OpenEngine(ctx, name, EngineConfig{Dir: dir, PostgresURL: opts.PostgresURL, Database: opts.Database, Reuse: reuse, Logger: opts.Logger})
	if err != nil {
		return er, nil, GenStats{}, fmt.Errorf("open: %w", err)
	}
	er.Reused = reuse
	closed := false
	defer func() {
		if !closed {
			if err := eng.Close(); err != nil {
				log.Error("close", "err", err)
			}
		}
		if opts.KeepData || reuse {
			return
		}
		// A 10M-event run leaves gigabytes per engine; the next engine
		// should not pay for the previous one's page cache or disk.
		if err := os.RemoveAll(dir); err != nil {
			log.Error("remove data", "err", err)
		}
		if d, ok := eng.(dropper); ok {
			if err := d.Drop(context.WithoutCancel(ctx)); err != nil {
				log.Error("drop database", "err", err)
			}
		}
	}()
	er.Note = eng.Note()
	if sm, ok := eng.(serverMemory); ok {
		sampler := startPssSampler(sm.ServerCommand(), 500*time.Millisecond)
		defer func() { er.ServerPeakPssBytes = sampler.Stop() }()
	}

	if reuse {
		stats, newest, err := observeTrail(opts, sample)
		if err != nil {
			return er, nil, stats, err
		}
		if err := checkReused(ctx, eng, opts, newest); err != nil {
			return er, nil, stats, err
		}
		if er.DiskBytes, err = eng.DiskBytes(ctx); err != nil {
			return er, nil, stats, err
		}
		log.Info("reusing the kept database", "events", stats.Events)
		answers, err = runShapes(ctx, eng, querySets(), opts, &er, log)
		if err == nil {
			err = ctx.Err()
		}
		return er, answers, stats, err
	}

	// Load through the ingest path, in batches, oldest first.
	log.Info("loading", "events", opts.Events, "batch", opts.BatchSize)
	gen, err := NewGenerator(GenOptions{Events: opts.Events, Seed: opts.Seed, End: opts.End})
	if err != nil {
		return er, nil, GenStats{}, err
	}
	buf := make([]event.Event, opts.BatchSize)
	var appendTime time.Duration
	// The generator's CPU is counted on its own thread and left out of the
	// ingest CPU.
	runtime.LockOSThread()
	locked := true
	defer func() {
		if locked {
			runtime.UnlockOSThread()
		}
	}()
	var genCPU time.Duration
	cpu0 := processCPU()
	start := time.Now()
	lastLog := start
	for {
		g0 := threadCPU()
		batch := gen.Fill(buf)
		if len(batch) == 0 {
			break
		}
		if sample != nil {
			for i := range batch {
				sample.Observe(&batch[i])
			}
		}
		genCPU += threadCPU() - g0
		t0 := time.Now()
		if err := eng.Append(ctx, batch); err != nil {
			return er, nil, gen.Stats(), fmt.Errorf("append: %w", err)
		}
		appendTime += time.Since(t0)
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			log.Info("loading", "done", gen.Stats().Events, "eventsPerSec", int(float64(gen.Stats().Events)/appendTime.Seconds()))
		}
	}
	runtime.UnlockOSThread() // the queries run on any thread
	locked = false
	stats = gen.Stats()
	er.LoadSeconds = time.Since(start).Seconds()
	er.AppendSeconds = appendTime.Seconds()
	er.IngestPerSec = float64(stats.Events) / appendTime.Seconds()
	if cpu := processCPU() - cpu0 - genCPU; cpu > 0 && stats.Events > 0 {
		er.IngestCPUMicrosPerEvent = float64(cpu.Microseconds()) / float64(stats.Events)
	}
	log.Info("loaded", "seconds", er.LoadSeconds, "eventsPerSec", int(er.IngestPerSec))

	if v, ok := eng.(interface{ Vacuum(context.Context) error }); ok {
		t0 := time.Now()
		if err := v.Vacuum(ctx); err != nil {
			return er, nil, stats, err
		}
		er.PostLoadSeconds = time.Since(t0).Seconds()
	}
	if er.DiskBytes, err = eng.DiskBytes(ctx); err != nil {
		return er, nil, stats, err
	}
	mem.end("load")
	if c, ok := compacter(eng); ok {
		t0 := time.Now()
		if err := c.Compact(ctx); err != nil {
			return er, nil, stats, fmt.Errorf("compact: %w", err)
		}
		er.CompactSeconds = time.Since(t0).Seconds()
		if er.DiskBytesCompacted, err = eng.DiskBytes(ctx); err != nil {
			return er, nil, stats, err
		}
		mem.end("compact")
		log.Info("compacted", "seconds", er.CompactSeconds, "diskBytes", er.DiskBytesCompacted)
	}

	if answers, err = runShapes(ctx, eng, querySets(), opts, &er, log); err != nil {
		return er, answers, stats, err
	}
	mem.end("queries")

	if opts.SingleEvents > 0 {
		if err := runSingles(ctx, eng, opts, &er); err != nil {
			return er, answers, stats, err
		}
		log.Info("single appends", "clients", opts.Concurrency, "eventsPerSec", int(er.SinglePerSec))
		mem.end("single appends")
	}
	if opts.VisibilityProbes > 0 {
		if err := runVisibility(ctx, eng, opts, &er); err != nil {
			return er, answers, stats, err
		}
		log.Info("visibility", "p50ms", er.VisibilityP50Ms, "p99ms", er.VisibilityP99Ms, "misses", er.VisibilityMisses)
		mem.end("visibility probes")
	}
	if d, err := eng.DiskBytes(ctx); err == nil && d > er.DiskBytes {
		er.DiskBytes = d // counted again after the extra appends and background work
	}
	if p, ok := eng.(persistent); ok && p.PersistentDir() != "" && opts.CrashChild != nil {
		closed = true
		if err := eng.Close(); err != nil {
			return er, answers, stats, fmt.Errorf("close before restart probe: %w", err)
		}
		if err := runRestart(ctx, name, p.PersistentDir(), opts, &er); err != nil {
			return er, answers, stats, err
		}
		log.Info("restart after kill -9", "seconds", er.RestartSeconds, "acked", er.RestartAcked, "found", er.RestartFound)
		mem.end("reopen after kill -9")
	}
	return er, answers, stats, nil
}

// rewarmAfter is how long after a warming the next shape warms the page
// cache again. The kernel that made warming necessary evicts pages idle
// for 60 s, and a shape runs for at most ShapeBudget (10-60 s); warming
// before every shape would read a 10M PostgreSQL database (17-23 GB, more
// than the page cache holds beside the rest) from disk fifteen times.
var rewarmAfter = 30 * time.Second

// runShapes runs every query shape on eng, each after a few untimed
// queries, and warms the page cache first (Options.Warm) when it was last
// warmed rewarmAfter ago or more.
func runShapes(ctx context.Context, eng Engine, sets []QuerySet, opts Options, er *EngineReport, log *slog.Logger) ([][]answer, error) {
	answers := make([][]answer, len(sets))
	w, warms := eng.(warmer)
	var warmed time.Time
	for si, set := range sets {
		if err := ctx.Err(); err != nil {
			return answers, err
		}
		if opts.Warm && warms && (warmed.IsZero() || time.Since(warmed) >= rewarmAfter) {
			t0 := time.Now()
			n, err := w.Warm(ctx)
			if err != nil {
				return answers, fmt.Errorf("warm the page cache before %s (--warm=false skips it): %w", set.Shape, err)
			}
			warmed = time.Now()
			er.WarmSeconds += warmed.Sub(t0).Seconds()
			er.WarmBytes = n
			er.Warmings++
		}
		sr, ans := runShape(ctx, eng, set, opts.Warmup, opts.ShapeBudget)
		er.Shapes = append(er.Shapes, sr)
		answers[si] = ans
		log.Info("shape", "shape", set.Shape, "p50ms", sr.P50Ms, "p99ms", sr.P99Ms, "meanTotal", int(sr.MeanTotal), "errors", sr.Errors)
	}
	return answers, nil
}

func runShape(ctx context.Context, eng Engine, set QuerySet, warmup int, budget time.Duration) (ShapeReport, []answer) {
	sr := ShapeReport{Shape: set.Shape}
	for i := 0; i < warmup && i < len(set.Queries); i++ {
		_, _ = eng.Search(ctx, set.Queries[i])
	}
	lat := make([]time.Duration, 0, len(set.Queries))
	ans := make([]answer, len(set.Queries))
	var totalSum float64
	start := time.Now()
	for i, q := range set.Queries {
		if budget > 0 && time.Since(start) > budget {
			break
		}
		sr.Queries++
		ans[i].ran = true
		t0 := time.Now()
		res, err := eng.Search(ctx, q)
		d := time.Since(t0)
		if err != nil {
			sr.Errors++
			continue
		}
		lat = append(lat, d)
		totalSum += float64(res.Total)
		ans[i] = answer{total: res.Total, page: hashPage(res.Events), ran: true, ok: true}
	}
	if n := len(lat); n > 0 {
		sr.P50Ms, sr.P99Ms, sr.MeanMs = percentileMs(lat, 0.50), percentileMs(lat, 0.99), meanMs(lat)
		sr.MeanTotal = totalSum / float64(n)
	}
	return sr, ans
}

// runSingles appends SingleEvents events, one per call, from Concurrency
// goroutines: many clients each sending createEvent.
func runSingles(ctx context.Context, eng Engine, opts Options, er *EngineReport) error {
	gen, err := NewGenerator(GenOptions{Events: opts.SingleEvents, Seed: opts.Seed, End: time.Now().UnixMilli(),
		Span: time.Minute, FirstIndex: opts.Events})
	if err != nil {
		return err
	}
	events := make([]event.Event, opts.SingleEvents)
	events = gen.Fill(events)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	lat := make([][]time.Duration, opts.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range opts.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(events) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := eng.Append(ctx, events[i:i+1]); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return fmt.Errorf("single appends: %d failed, first: %w", failed.Load(), firstErr)
	}
	all := slices.Concat(lat...)
	er.SingleEvents = len(all)
	er.SingleSeconds = elapsed.Seconds()
	er.SinglePerSec = float64(len(all)) / elapsed.Seconds()
	er.SingleP99Ms = percentileMs(all, 0.99)
	return nil
}

// runVisibility appends one event at a time and measures how long after
// Append returned a search first finds it.
func runVisibility(ctx context.Context, eng Engine, opts Options, er *EngineReport) error {
	gen, err := NewGenerator(GenOptions{Events: opts.VisibilityProbes, Seed: opts.Seed, End: time.Now().UnixMilli(),
		Span: time.Minute, FirstIndex: opts.Events + opts.SingleEvents})
	if err != nil {
		return err
	}
	probes := gen.Fill(make([]event.Event, opts.VisibilityProbes))
	var lat []time.Duration
	for i := range probes {
		e := &probes[i]
		e.UserID = fmt.Sprintf("Uvisibility%d-%d", opts.Seed, i)
		if err := eng.Append(ctx, probes[i:i+1]); err != nil {
			return fmt.Errorf("visibility append: %w", err)
		}
		acked := time.Now()
		q := query.Query{CompanyID: e.CompanyID, ProjectID: e.ProjectID, IncludeProject: true, IncludeCompany: true,
			UserIDs: []string{e.UserID}, Size: 1}
		if e.Level == event.LevelCompany {
			q.IncludeProject = false
		}
		found := false
		for time.Since(acked) < visibilityTimeout {
			res, err := eng.Search(ctx, q)
			if err != nil {
				return fmt.Errorf("visibility search: %w", err)
			}
			if res.Total > 0 {
				found = true
				break
			}
			time.Sleep(time.Millisecond)
		}
		if !found {
			er.VisibilityMisses++
			continue
		}
		lat = append(lat, time.Since(acked))
	}
	er.VisibilityProbes = len(probes)
	if len(lat) > 0 {
		er.VisibilityP50Ms, er.VisibilityP99Ms = percentileMs(lat, 0.5), percentileMs(lat, 0.99)
		er.VisibilityMaxMs = float64(slices.Max(lat).Microseconds()) / 1000
	}
	return nil
}

// compareAnswers checks every engine against the first: same total, same
// first page. Both must match for the same query.
func compareAnswers(engines []string, sets []QuerySet, answers map[string][][]answer) []Disagreement {
	if len(engines) < 2 {
		return nil
	}
	ref := answers[engines[0]]
	var out []Disagreement
	for _, name := range engines[1:] {
		got := answers[name]
		for si, set := range sets {
			if si >= len(ref) || si >= len(got) {
				continue
			}
			for qi := range set.Queries {
				a, b := ref[si][qi], got[si][qi]
				if !a.ran || !b.ran || !a.ok && !b.ok {
					continue // not asked of both, or both failed: the error counts show it
				}
				if a.ok != b.ok || a.total != b.total || a.page != b.page {
					if !a.ok {
						a.total = -1
					}
					if !b.ok {
						b.total = -1
					}
					out = append(out, Disagreement{
						Shape: set.Shape, Query: qi, Engine: name, Total: b.total, RefEngine: engines[0],
						RefTotal: a.total, PageDiffers: a.page != b.page, Description: describeQuery(set.Queries[qi]),
					})
				}
			}
		}
	}
	return out
}

func hashPage(events []event.Event) uint64 {
	h := fnv.New64a()
	for i := range events {
		h.Write([]byte(events[i].ID))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func percentileMs(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	// Nearest rank: the smallest value with at least p of the sample at or
	// below it.
	i := int(float64(len(s))*p+0.999999) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

func meanMs(d []time.Duration) float64 {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return float64(t.Microseconds()) / 1000 / float64(len(d))
}

// describeQuery renders the filters of q that are set, for a disagreement
// row someone will want to reproduce.
func describeQuery(q query.Query) string {
	s := fmt.Sprintf("project=%s levels=%v/%v", q.ProjectID, q.IncludeProject, q.IncludeCompany)
	add := func(name string, v []string) {
		if len(v) > 0 {
			s += fmt.Sprintf(" %s=%v", name, v)
		}
	}
	add("userIds", q.UserIDs)
	add("loginIds", q.LoginIDs)
	add("remoteAddresses", q.RemoteAddresses)
	add("actions", q.Actions)
	add("excludedActions", q.ExcludedActions)
	add("geos", q.Geos)
	add("devices", q.Devices)
	add("methods", q.Methods)
	add("tenants", q.Tenants)
	add("text", q.TextTokens)
	if q.NoTenants {
		s += " noTenants"
	}
	s += fmt.Sprintf(" from=%d page=%d size=%d", q.From, q.Page, q.Size)
	return s
}

// compacter finds a store's Compact (the embedded engine's: flush and
// merge until its policy is satisfied).
func compacter(eng Engine) (interface{ Compact(context.Context) error }, bool) {
	var x any = eng
	if se, ok := eng.(*StoreEngine); ok {
		x = se.Store
	}
	c, ok := x.(interface{ Compact(context.Context) error })
	return c, ok
}

// storesInPostgres reports whether the engine keeps its data in a
// PostgreSQL database (the ones ReuseDatabases applies to).
func storesInPostgres(name string) bool { return name == "pgtable" || name == "postgres" }

// checkReused refuses a kept database that does not hold exactly the
// trail: its event count, and its newest Occurred (newest), which moves
// with End (by default the minute the run started).
func checkReused(ctx context.Context, eng Engine, opts Options, newest int64) error {
	r, ok := eng.(reusable)
	if !ok {
		return fmt.Errorf("%w: this engine cannot reuse a kept database", ErrInvalidOptions)
	}
	st, err := r.StoredTrail(ctx)
	if err != nil {
		return fmt.Errorf("read the kept database's trail: %w", err)
	}
	if st.Events != int64(opts.Events) {
		return fmt.Errorf("%w: the kept database holds %d events, the trail %d: load it again with --keep (same --events, --seed and --database, --single-events -1 --visibility-probes -1)", ErrInvalidOptions, st.Events, opts.Events)
	}
	if st.MaxOccurred != newest {
		return fmt.Errorf("%w: the kept database's trail ends at %d, this run's at %d: run with --end %d, the loading run's end",
			ErrInvalidOptions, st.MaxOccurred, newest, opts.End+st.MaxOccurred-newest)
	}
	return nil
}

// observeTrail generates the trail without loading it, for the sample the
// queries are drawn from, the trail's statistics and its newest Occurred.
func observeTrail(opts Options, sample *Sample) (GenStats, int64, error) {
	gen, err := NewGenerator(GenOptions{Events: opts.Events, Seed: opts.Seed, End: opts.End})
	if err != nil {
		return GenStats{}, 0, err
	}
	buf := make([]event.Event, opts.BatchSize)
	var newest int64
	for {
		batch := gen.Fill(buf)
		if len(batch) == 0 {
			return gen.Stats(), newest, nil
		}
		for i := range batch {
			newest = max(newest, batch[i].Occurred)
			if sample != nil {
				sample.Observe(&batch[i])
			}
		}
	}
}
