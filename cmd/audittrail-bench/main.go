// Command audittrail-bench loads a generated, Descope-like audit trail into
// the embedded engine and into PostgreSQL, runs a fixed set of query shapes
// on each and prints one table (or --json) with latencies, their ratios,
// ingest rates, bytes on disk and peak memory. See internal/bench.
//
//	go run ./cmd/audittrail-bench --events 1000000 --engines embedded,pgtable,postgres
//
// Engines: embedded (internal/store/embedded, in this process), pgtable (one
// hand-indexed PostgreSQL table, the baseline), postgres
// (internal/store/postgres) and memory (the reference store; small trails
// only). The PostgreSQL engines create, use and drop their own databases
// (<--database>_pgtable, <--database>_postgres) on --postgres-url. Progress
// goes to stderr, the table or JSON to stdout. The same --seed gives the
// same trail, shifted to end at the current minute.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/internal/bench"
	"github.com/audittrail/audittrail/internal/gcpolicy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "audittrail-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var opts bench.Options
	var engines string
	var asJSON bool
	flag.IntVar(&opts.Events, "events", bench.DefaultEvents, "events to generate and load")
	flag.StringVar(&engines, "engines", "embedded,pgtable,postgres", "comma-separated engines, the first being the reference for ratios and agreement: "+strings.Join(bench.EngineNames(), ", "))
	flag.StringVar(&opts.DataDir, "data-dir", os.TempDir()+"/audittrail-bench", "directory for the embedded engines' data (emptied)")
	flag.StringVar(&opts.PostgresURL, "postgres-url", bench.DefaultPostgresURL, "PostgreSQL server; the bench creates its own databases there")
	flag.StringVar(&opts.Database, "database", bench.DefaultDatabase, "prefix of the databases the bench drops and creates")
	flag.Uint64Var(&opts.Seed, "seed", 1, "generator seed: the same seed gives the same trail")
	flag.IntVar(&opts.QueriesPerShape, "queries-per-shape", bench.DefaultQueriesPerShape, "timed queries per shape")
	flag.IntVar(&opts.PageSize, "page-size", bench.DefaultPageSize, "page size of the queries (the deep page is always 50)")
	flag.IntVar(&opts.BatchSize, "batch", bench.DefaultBatchSize, "events per Append during the load")
	flag.IntVar(&opts.SingleEvents, "single-events", bench.DefaultSingleEvents, "events appended one per call by concurrent clients (negative: skip)")
	flag.IntVar(&opts.Concurrency, "clients", bench.DefaultConcurrency, "concurrent clients for the single-event appends")
	flag.IntVar(&opts.VisibilityProbes, "visibility-probes", bench.DefaultVisibilityProbes, "append-then-search probes of visibility latency (negative: skip)")
	flag.DurationVar(&opts.ShapeBudget, "shape-budget", 60*time.Second, "most time one engine spends on one shape's timed queries (0: no limit)")
	flag.BoolVar(&opts.KeepData, "keep", false, "keep each engine's directory and database after the run")
	flag.BoolVar(&opts.Warm, "warm", true, "before the query shapes (again every 30 s), have each engine read its data back into the page cache (the kernel may evict idle file pages: the targets are for a warm machine)")
	flag.BoolVar(&opts.ReuseDatabases, "reuse-databases", false, "query the PostgreSQL engines' databases a --keep run left (same --database, --events, --seed and --end; run with --single-events -1 --visibility-probes -1) instead of loading them again; they are kept")
	flag.Int64Var(&opts.End, "end", 0, "the trail's newest Occurred, epoch ms (default: now, to the minute); --reuse-databases needs the loading run's (its JSON report's \"end\")")
	flag.BoolVar(&asJSON, "json", false, "print the report as JSON")
	// The restart probe starts this program again as a child that appends
	// until it is killed; these flags are how it knows.
	childEngine := flag.String("crash-child-engine", "", "internal: run as the restart probe's child on this engine")
	childDir := flag.String("crash-child-dir", "", "internal: the child's data directory")
	restart := flag.Bool("restart-probe", true, "kill -9 a process appending to each embedded engine and time the reopen")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	jsonOut := flag.String("json-out", "", "also write the JSON report to this file")
	render := flag.String("render", "", "print the table of a saved JSON report, run nothing")
	growth := flag.String("growth", "", "comma-separated JSON reports of runs of different sizes: print how the figures grow, run nothing")
	flag.Parse()
	// The engine runs in this process as it would in the server: at the
	// server's pace of garbage collection.
	gcpolicy.Apply()
	if *childEngine != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return bench.RunCrashChild(ctx, *childEngine, *childDir, opts.Seed, os.Stdout)
	}
	if *restart {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		opts.CrashChild = func(engine, dir string, seed uint64) *exec.Cmd {
			return exec.Command(exe, "--crash-child-engine", engine, "--crash-child-dir", dir, "--seed", strconv.FormatUint(seed, 10))
		}
	}
	if *render != "" {
		r, err := bench.ReadReport(*render)
		if err != nil {
			return err
		}
		return r.WriteTable(os.Stdout)
	}
	if *growth != "" {
		var runs []*bench.Report
		for _, path := range strings.Split(*growth, ",") {
			r, err := bench.ReadReport(strings.TrimSpace(path))
			if err != nil {
				return err
			}
			runs = append(runs, r)
		}
		return bench.WriteGrowth(os.Stdout, runs)
	}
	for _, e := range strings.Split(engines, ",") {
		if e = strings.TrimSpace(e); e != "" {
			opts.Engines = append(opts.Engines, e)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	// Progress goes to stderr so that --json output stays clean.
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, opts)
	if err != nil && rep == nil {
		return err
	}
	rep.Command = strings.Join(os.Args, " ")
	if *jsonOut != "" {
		if werr := writeJSONFile(*jsonOut, rep); werr != nil {
			return werr
		}
	}
	if asJSON {
		if werr := rep.WriteJSON(os.Stdout); werr != nil {
			return werr
		}
	} else if werr := rep.WriteTable(os.Stdout); werr != nil {
		return werr
	}
	return err
}

func writeJSONFile(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
