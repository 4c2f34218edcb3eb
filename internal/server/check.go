package server

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/audittrail/audittrail/internal/config"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/postgres"
)

// CheckResult is what `audittrail check` found.
type CheckResult struct {
	Store string `json:"store"`
	// Embedded: the engine's own report, and what Open had to repair or
	// set aside (torn log tail, damaged segments).
	Embedded *embedded.Report `json:"embedded,omitempty"`
	// Damage is what opening the embedded store repaired or set aside,
	// with the ids of the events lost.
	Damage []embedded.Damage `json:"damage,omitempty"`
	// Postgres: the database's report.
	Postgres *postgres.CheckReport `json:"postgres,omitempty"`
	Problems []string              `json:"problems"`
	OK       bool                  `json:"ok"`
}

const checkUsage = `audittrail check: verify the event store, offline.

Usage:
  audittrail check [--data-dir DIR] [--json]
  audittrail check --store postgres --postgres-url URL [--json]

The embedded store is opened as 'serve' opens it (a torn log tail is cut,
damaged segments are repaired or set aside, all of it reported), then every
checksum, row, posting and key is verified. The server must be stopped (the
directory is locked while it runs); check a copy to leave a crashed
directory untouched, since closing writes the log out as a segment.
PostgreSQL is checked in place and may be in use. Exit status 0 when all
is well, 1 when a problem was found, 2 for a usage error.

Flags:
`

// CheckMain runs `audittrail check` and returns the exit code.
func CheckMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, checkUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", envOr("AUDITTRAIL_DATA_DIR", "./data"), "data directory of the embedded store")
	storeName := fs.String("store", envOr("AUDITTRAIL_STORE", config.StoreEmbedded), "embedded or postgres")
	pgURL := fs.String("postgres-url", os.Getenv("AUDITTRAIL_POSTGRES_URL"), "PostgreSQL URL for --store postgres")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := Check(ctx, *storeName, *dataDir, *pgURL, log)
	if err != nil {
		fmt.Fprintf(stderr, "audittrail check: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printCheck(stdout, res)
	}
	if !res.OK {
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Check opens the store named by storeName and verifies it. An error means
// the check could not run; problems found are in the result.
func Check(ctx context.Context, storeName, dataDir, pgURL string, log *slog.Logger) (CheckResult, error) {
	res := CheckResult{Store: storeName}
	switch storeName {
	case config.StoreEmbedded:
		e, err := embedded.Open(embedded.Options{Dir: filepath.Join(dataDir, eventsDir), Logger: log})
		if err != nil {
			return res, err
		}
		res.Damage = e.Damage()
		rep, err := e.Check(ctx)
		if cerr := e.Close(); cerr != nil && err == nil {
			err = cerr
		}
		res.Embedded = &rep
		res.Problems = append(res.Problems, rep.Problems...)
		if err != nil && len(rep.Problems) == 0 {
			return res, err
		}
	case config.StorePostgres:
		if pgURL == "" {
			return res, errors.New("--store postgres needs --postgres-url")
		}
		db, err := postgres.Open(ctx, postgres.Options{URL: pgURL, Logger: log})
		if err != nil {
			return res, err
		}
		defer db.Close()
		rep, err := db.Events().Check(ctx)
		res.Postgres = &rep
		res.Problems = append(res.Problems, rep.Problems...)
		if err != nil && len(rep.Problems) == 0 {
			return res, err
		}
	default:
		return res, fmt.Errorf("%w: store %q", ErrUnsupported, storeName)
	}
	if res.Problems == nil {
		res.Problems = []string{}
	}
	res.OK = len(res.Problems) == 0
	return res, nil
}

func printCheck(w io.Writer, r CheckResult) {
	switch {
	case r.Embedded != nil:
		e := r.Embedded
		fmt.Fprintf(w, "embedded store: %d segments, %d segment rows, %d tail events, %d live events\n",
			e.Segments, e.SegmentRows, e.TailEvents, e.LiveEvents)
	case r.Postgres != nil:
		fmt.Fprintf(w, "postgres store: %d events, %d event_ids rows\n", r.Postgres.Events, r.Postgres.IDs)
	}
	for _, d := range r.Damage {
		fmt.Fprintf(w, "repaired at open: %s (%s): %s; %d rows kept, %d lost", d.File, d.Kind, d.Reason, d.RowsKept, d.RowsLost)
		if len(d.LostIDs) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(d.LostIDs, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	if r.OK {
		fmt.Fprintln(w, "ok")
	} else {
		fmt.Fprintf(w, "%d problems\n", len(r.Problems))
	}
}
