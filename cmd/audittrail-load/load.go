package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/server"
)

// childEnv, set to "serve", makes this binary run `audittrail serve`.
const childEnv = "AUDITTRAIL_LOAD_CHILD"

const usage = `audittrail-load: hold a mixed load against an audittrail server and measure it.

Usage:
  go run ./cmd/audittrail-load [flags]

Without --url it starts its own server (this binary, as a child process, on a
fresh data directory, search rate limit off) and samples that process's
resident memory from /proc/<pid>/status. With --url it loads that server;
credentials come from --project/--key, AUDITTRAIL_PROJECT_ID /
AUDITTRAIL_MANAGEMENT_KEY, or <--data-dir>/bootstrap.json, and --pid names
the server process to sample (the server's search rate limit must allow
--search-rate, e.g. serve --search-rate-limit 0).

The load: --clients goroutines each sending single events (POST
/v1/mgmt/audit/event) at --single-rate events/s in all (0 = as fast as they
can), --batch-clients sending batches of --batch-size events (POST
/v1/mgmt/audit/events) at --batch-rate batches/s in all, and --search-rate
searches/s (POST /v1/mgmt/audit/search, several query shapes). Every --every
it prints per kind: requests/s, events/s, p50/p99/p999 latency, errors, and
the server's RSS; at the end the same over the whole run and the RSS
timeline. Exit status 1 if any request failed.

Flags:
`

// Options configure one load run.
type Options struct {
	URL        string
	DataDir    string
	ProjectID  string
	Key        string
	PID        int
	Store      string // of the server started here: embedded or postgres
	PGURL      string
	Duration   time.Duration
	Every      time.Duration
	Clients    int
	SingleRate float64
	BatchCl    int
	BatchSize  int
	BatchRate  float64
	SearchRate float64
	JSON       bool
}

// Main parses args, runs the load, prints the report and returns the exit
// status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o Options
	fs := flag.NewFlagSet("audittrail-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.URL, "url", "", "server to load; empty starts one")
	fs.StringVar(&o.DataDir, "data-dir", "", "data directory: of the server started here (default a temporary one, removed after), or where bootstrap.json of --url's server is")
	fs.StringVar(&o.ProjectID, "project", os.Getenv("AUDITTRAIL_PROJECT_ID"), "project ID (with --url)")
	fs.StringVar(&o.Key, "key", os.Getenv("AUDITTRAIL_MANAGEMENT_KEY"), "management key (with --url)")
	fs.IntVar(&o.PID, "pid", 0, "process whose RSS to sample (with --url)")
	fs.StringVar(&o.Store, "store", "embedded", "store of the server started here: embedded or postgres")
	fs.StringVar(&o.PGURL, "postgres-url", "", "PostgreSQL URL for --store postgres")
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long to hold the load")
	fs.DurationVar(&o.Every, "every", 10*time.Second, "report interval")
	fs.IntVar(&o.Clients, "clients", 64, "single-event clients")
	fs.Float64Var(&o.SingleRate, "single-rate", 1000, "single events per second over all clients (0 = as fast as they can)")
	fs.IntVar(&o.BatchCl, "batch-clients", 2, "batch clients")
	fs.IntVar(&o.BatchSize, "batch-size", 1000, "events per batch")
	fs.Float64Var(&o.BatchRate, "batch-rate", 2, "batches per second over all batch clients (0 = as fast as they can)")
	fs.Float64Var(&o.SearchRate, "search-rate", 5, "searches per second")
	fs.BoolVar(&o.JSON, "json", false, "print the final result as JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	res, err := Run(ctx, o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "audittrail-load: %v\n", err)
		return 1
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		res.print(stdout)
	}
	if res.Errors() > 0 {
		return 1
	}
	return 0
}

// Kind names one sort of request.
type Kind string

const (
	KindSingle Kind = "single"
	KindBatch  Kind = "batch"
	KindSearch Kind = "search"
)

var kinds = []Kind{KindSingle, KindBatch, KindSearch}

// Stats summarise the requests of one kind over a span of time.
type Stats struct {
	Requests      int      `json:"requests"`
	Errors        int      `json:"errors"`
	Events        int      `json:"events"` // events acknowledged (ingest kinds)
	RequestsPerS  float64  `json:"requestsPerSecond"`
	EventsPerS    float64  `json:"eventsPerSecond"`
	P50Ms         float64  `json:"p50Ms"`
	P99Ms         float64  `json:"p99Ms"`
	P999Ms        float64  `json:"p999Ms"`
	MaxMs         float64  `json:"maxMs"`
	ErrorExamples []string `json:"errorExamples,omitempty"`
}

// RSSSample is the server's resident memory at one time: anonymous
// (heap, stacks) and file-backed (mapped segment files: page cache the
// kernel reclaims under pressure) parts.
type RSSSample struct {
	AtSeconds float64 `json:"atSeconds"`
	RSSBytes  int64   `json:"rssBytes"`
	AnonBytes int64   `json:"anonBytes"`
	FileBytes int64   `json:"fileBytes"`
}

// Result is what a run measured.
type Result struct {
	Options   Options        `json:"options"`
	Seconds   float64        `json:"seconds"`
	Total     map[Kind]Stats `json:"total"`
	Intervals []Interval     `json:"intervals"`
	// RSS is sampled every second; PeakRSS is the kernel's high-water mark.
	RSS     []RSSSample `json:"rss,omitempty"`
	PeakRSS int64       `json:"peakRssBytes,omitempty"`
}

// Interval is one periodic report.
type Interval struct {
	AtSeconds float64        `json:"atSeconds"`
	Stats     map[Kind]Stats `json:"stats"`
	RSSBytes  int64          `json:"rssBytes,omitempty"`
	AnonBytes int64          `json:"anonBytes,omitempty"`
	FileBytes int64          `json:"fileBytes,omitempty"`
}

// Errors counts failed requests of every kind.
func (r *Result) Errors() int {
	n := 0
	for _, s := range r.Total {
		n += s.Errors
	}
	return n
}

// recorder collects latencies per kind: all of them for the final
// percentiles (a 10-minute run keeps a few million durations, tens of MB),
// and the current interval's.
type recorder struct {
	mu    sync.Mutex
	kinds map[Kind]*samples
}

type samples struct {
	all, cur          []time.Duration
	errs, curErrs     int
	events, curEvents int
	examples          []string
}

func newRecorder() *recorder {
	r := &recorder{kinds: map[Kind]*samples{}}
	for _, k := range kinds {
		r.kinds[k] = &samples{}
	}
	return r
}

func (r *recorder) record(k Kind, d time.Duration, events int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.kinds[k]
	if err != nil {
		s.errs++
		s.curErrs++
		if len(s.examples) < 5 {
			s.examples = append(s.examples, err.Error())
		}
		return
	}
	s.all = append(s.all, d)
	s.cur = append(s.cur, d)
	s.events += events
	s.curEvents += events
}

func summarize(lat []time.Duration, errs, events int, secs float64) Stats {
	st := Stats{Requests: len(lat) + errs, Errors: errs, Events: events}
	if secs > 0 {
		st.RequestsPerS = float64(st.Requests) / secs
		st.EventsPerS = float64(events) / secs
	}
	if len(lat) == 0 {
		return st
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	pct := func(p float64) float64 {
		i := int(float64(len(sorted))*p+0.999999) - 1
		return ms(sorted[min(max(i, 0), len(sorted)-1)])
	}
	st.P50Ms, st.P99Ms, st.P999Ms, st.MaxMs = pct(0.50), pct(0.99), pct(0.999), ms(sorted[len(sorted)-1])
	return st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// interval summarises and resets the current interval.
func (r *recorder) interval(secs float64) map[Kind]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[Kind]Stats{}
	for k, s := range r.kinds {
		out[k] = summarize(s.cur, s.curErrs, s.curEvents, secs)
		s.cur, s.curErrs, s.curEvents = s.cur[:0], 0, 0
	}
	return out
}

func (r *recorder) total(secs float64) map[Kind]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[Kind]Stats{}
	for k, s := range r.kinds {
		st := summarize(s.all, s.errs, s.events, secs)
		st.ErrorExamples = s.examples
		out[k] = st
	}
	return out
}

// Run holds the load for o.Duration (or until ctx ends) and returns what
// it measured. Progress lines go to progress.
func Run(ctx context.Context, o Options, progress, stderr io.Writer) (*Result, error) {
	if o.Clients < 0 || o.BatchCl < 0 || o.BatchSize < 1 || o.Duration <= 0 || o.Every <= 0 {
		return nil, fmt.Errorf("invalid options: clients %d, batch clients %d, batch size %d, duration %s, every %s",
			o.Clients, o.BatchCl, o.BatchSize, o.Duration, o.Every)
	}
	if o.URL == "" {
		srv, err := startServer(ctx, o, stderr)
		if err != nil {
			return nil, err
		}
		defer srv.stop(stderr)
		o.URL, o.PID, o.ProjectID, o.Key = srv.url, srv.cmd.Process.Pid, srv.creds.ProjectID, srv.creds.ManagementKey
	} else if o.Key == "" && o.DataDir != "" {
		creds, err := server.ReadBootstrap(o.DataDir)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		o.ProjectID, o.Key = creds.ProjectID, creds.ManagementKey
	}
	if o.Key == "" {
		return nil, errors.New("no management key: pass --key, set AUDITTRAIL_MANAGEMENT_KEY, or --data-dir with bootstrap.json")
	}
	hc := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        o.Clients + o.BatchCl + 32,
			MaxIdleConnsPerHost: o.Clients + o.BatchCl + 32,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	c, err := client.New(client.Config{BaseURL: o.URL, ProjectID: o.ProjectID, ManagementKey: o.Key, HTTPClient: hc, UserAgent: "audittrail-load"})
	if err != nil {
		return nil, err
	}

	rec := newRecorder()
	res := &Result{Options: o, Total: map[Kind]Stats{}}
	res.Options.Key = "" // never printed
	var rssMu sync.Mutex
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var wg sync.WaitGroup

	// Single events: each client paced at its share of the rate.
	for w := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			pace(runCtx, o.SingleRate/float64(o.Clients), func() {
				t := time.Now()
				_, err := c.Audit().CreateEvent(runCtx, singleEvent(rng, w))
				if runCtx.Err() == nil {
					rec.record(KindSingle, time.Since(t), 1, err)
				}
			})
		}()
	}
	for w := range o.BatchCl {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			pace(runCtx, o.BatchRate/float64(o.BatchCl), func() {
				recs := make([]client.Record, o.BatchSize)
				for i := range recs {
					recs[i] = batchRecord(rng)
				}
				t := time.Now()
				ids, err := c.Audit().Ingest(runCtx, recs)
				if runCtx.Err() == nil {
					rec.record(KindBatch, time.Since(t), len(ids), err)
				}
			})
		}()
	}
	if o.SearchRate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Open loop: a slow search does not delay the next one, so the
			// rate holds; at most 32 run at once.
			slots := make(chan struct{}, 32)
			rng := rand.New(rand.NewPCG(7, 3))
			var sw sync.WaitGroup
			pace(runCtx, o.SearchRate, func() {
				q := searchShape(rng)
				select {
				case slots <- struct{}{}:
				case <-runCtx.Done():
					return
				}
				sw.Add(1)
				go func() {
					defer func() { <-slots; sw.Done() }()
					t := time.Now()
					_, _, err := c.Audit().SearchAll(runCtx, q)
					if runCtx.Err() == nil {
						rec.record(KindSearch, time.Since(t), 0, err)
					}
				}()
			})
			sw.Wait()
		}()
	}
	if o.PID > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				if m, err := readRSS(o.PID); err == nil {
					rssMu.Lock()
					res.RSS = append(res.RSS, RSSSample{AtSeconds: time.Since(start).Seconds(), RSSBytes: m["VmRSS"],
						AnonBytes: m["RssAnon"], FileBytes: m["RssFile"]})
					rssMu.Unlock()
				}
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}

	// Periodic reports.
	tick := time.NewTicker(o.Every)
	last := start
	report := func(now time.Time) {
		iv := Interval{AtSeconds: now.Sub(start).Seconds(), Stats: rec.interval(now.Sub(last).Seconds())}
		last = now
		rssMu.Lock()
		if n := len(res.RSS); n > 0 {
			iv.RSSBytes, iv.AnonBytes, iv.FileBytes = res.RSS[n-1].RSSBytes, res.RSS[n-1].AnonBytes, res.RSS[n-1].FileBytes
		}
		rssMu.Unlock()
		res.Intervals = append(res.Intervals, iv)
		printInterval(progress, iv)
	}
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case now := <-tick.C:
			report(now)
		}
	}
	tick.Stop()
	wg.Wait()
	end := time.Now()
	if end.Sub(last) > o.Every/4 {
		report(end)
	}
	res.Seconds = end.Sub(start).Seconds()
	res.Total = rec.total(res.Seconds)
	if o.PID > 0 {
		if m, err := readRSS(o.PID); err == nil {
			res.PeakRSS = m["VmHWM"]
		}
	}
	return res, nil
}

// pace calls fn rate times a second until ctx ends (as fast as it returns
// when rate is 0). A call that overruns its slot is not made up for later:
// the achieved rate shows the server falling behind.
func pace(ctx context.Context, rate float64, fn func()) {
	if rate <= 0 {
		for ctx.Err() == nil {
			fn()
		}
		return
	}
	every := time.Duration(float64(time.Second) / rate)
	// Spread the clients' first calls over one period.
	next := time.Now().Add(time.Duration(rand.Int64N(int64(every))))
	for {
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		fn()
		next = next.Add(every)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
}

var (
	actions = []string{"LoginSucceed", "LoginSucceed", "LoginSucceed", "LoginFailed", "Logout", "UserCreated",
		"UserModified", "AccessKeyCreated", "PasswordReset", "TenantUpdated", "RoleAssigned", "SCIMEvent"}
	methods = []string{"otp", "password", "oauth", "saml", "magiclink", "webauthn"}
	geos    = []string{"US", "US", "DE", "GB", "FR", "IL", "IN", "JP", "BR", "CA"}
	devices = []string{"Desktop", "Mobile", "Tablet", "Bot"}
	words   = []string{"checkout", "invoice", "billing", "admin", "portal", "mobile", "sso", "rotation", "export", "audit"}
)

func singleEvent(rng *rand.Rand, w int) client.CreateEventOptions {
	u := fmt.Sprintf("user-%d", rng.IntN(20000))
	return client.CreateEventOptions{
		Action: actions[rng.IntN(len(actions))], Type: "info", ActorID: u, UserID: u,
		TenantID: fmt.Sprintf("tenant-%d", rng.IntN(200)), Method: methods[rng.IntN(len(methods))],
		Geo: geos[rng.IntN(len(geos))], Device: devices[rng.IntN(len(devices))],
		RemoteAddress: fmt.Sprintf("10.%d.%d.%d", w, rng.IntN(256), rng.IntN(256)),
		Data: map[string]any{"client": w, "note": words[rng.IntN(len(words))] + " " + words[rng.IntN(len(words))],
			"request_details": map[string]any{"userAgent": "Mozilla/5.0 (X11; Linux x86_64) load", "path": "/v1/auth/otp/verify"}},
	}
}

func batchRecord(rng *rand.Rand) client.Record {
	u := fmt.Sprintf("user-%d", rng.IntN(20000))
	return client.Record{
		Action: actions[rng.IntN(len(actions))], Type: "info", ActorID: u, UserID: u,
		Tenants: []string{fmt.Sprintf("tenant-%d", rng.IntN(200))}, Method: methods[rng.IntN(len(methods))],
		Geo: geos[rng.IntN(len(geos))], Device: devices[rng.IntN(len(devices))],
		RemoteAddress: fmt.Sprintf("192.168.%d.%d", rng.IntN(256), rng.IntN(256)),
		LoginIDs:      []string{u + "@example.com"},
		Data:          map[string]any{"note": words[rng.IntN(len(words))], "batch": true},
	}
}

// searchShape picks one of the console's everyday queries, page size 50.
func searchShape(rng *rand.Rand) client.SearchOptions {
	q := client.SearchOptions{Size: 50}
	switch rng.IntN(6) {
	case 0:
		q.UserIDs = []string{fmt.Sprintf("user-%d", rng.IntN(20000))}
	case 1:
		q.Actions = []string{"LoginFailed", "PasswordReset"}
	case 2:
		q.Text = words[rng.IntN(len(words))]
	case 3:
		q.Tenants = []string{fmt.Sprintf("tenant-%d", rng.IntN(200)), fmt.Sprintf("tenant-%d", rng.IntN(200))}
	case 4:
		q.Geos, q.Methods = []string{geos[rng.IntN(len(geos))]}, []string{methods[rng.IntN(len(methods))]}
	default:
		q.Page = rng.IntN(20) // a page somewhere in the newest thousand
	}
	return q
}

// readRSS returns the memory lines of /proc/<pid>/status (VmRSS, VmHWM,
// RssAnon, RssFile) in bytes.
func readRSS(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(name, "Vm") && !strings.HasPrefix(name, "Rss") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		m[name] = kb << 10
	}
	if m["VmRSS"] == 0 {
		return nil, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, sc.Err()
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func printInterval(w io.Writer, iv Interval) {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%4.0fs", iv.AtSeconds)
	for _, k := range kinds {
		s := iv.Stats[k]
		fmt.Fprintf(&b, " | %s", k)
		if k != KindSearch {
			fmt.Fprintf(&b, " %.0f ev/s", s.EventsPerS)
		}
		fmt.Fprintf(&b, " %.1f req/s p50 %.1f p99 %.1f p999 %.1f ms err %d", s.RequestsPerS, s.P50Ms, s.P99Ms, s.P999Ms, s.Errors)
	}
	if iv.RSSBytes > 0 {
		fmt.Fprintf(&b, " | rss %s (anon %s, file %s)", mib(iv.RSSBytes), mib(iv.AnonBytes), mib(iv.FileBytes))
	}
	fmt.Fprintln(w, b.String())
}

func (r *Result) print(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "\naudittrail-load: %s against %s (%d single clients at %g ev/s, %d batch clients at %g batches/s of %d, %g searches/s)\n",
		time.Duration(r.Seconds*float64(time.Second)).Round(time.Second), o.URL, o.Clients, o.SingleRate, o.BatchCl, o.BatchRate, o.BatchSize, o.SearchRate)
	fmt.Fprintf(w, "%-7s %9s %7s %10s %9s %9s %9s %9s %9s\n", "kind", "requests", "errors", "events/s", "req/s", "p50 ms", "p99 ms", "p999 ms", "max ms")
	for _, k := range kinds {
		s := r.Total[k]
		fmt.Fprintf(w, "%-7s %9d %7d %10.0f %9.1f %9.1f %9.1f %9.1f %9.1f\n", k, s.Requests, s.Errors, s.EventsPerS, s.RequestsPerS, s.P50Ms, s.P99Ms, s.P999Ms, s.MaxMs)
		for _, e := range s.ErrorExamples {
			fmt.Fprintf(w, "        error: %s\n", e)
		}
	}
	if len(r.RSS) == 0 {
		return
	}
	fmt.Fprintf(w, "server RSS over time (anonymous + file-backed):")
	for _, iv := range r.Intervals {
		fmt.Fprintf(w, " %.0fs=%.0f+%.0f", iv.AtSeconds, float64(iv.AnonBytes)/(1<<20), float64(iv.FileBytes)/(1<<20))
	}
	fmt.Fprint(w, " MiB")
	lo, hi := r.RSS[0].RSSBytes, r.RSS[0].RSSBytes
	for _, s := range r.RSS {
		lo, hi = min(lo, s.RSSBytes), max(hi, s.RSSBytes)
	}
	var anonHi int64
	for _, s := range r.RSS {
		anonHi = max(anonHi, s.AnonBytes)
	}
	fmt.Fprintf(w, "\nserver RSS: min %s, max %s (anonymous at most %s), peak (VmHWM) %s; max over the first half %s, over the second half %s\n",
		mib(lo), mib(hi), mib(anonHi), mib(r.PeakRSS), mib(r.halfMaxRSS(0)), mib(r.halfMaxRSS(1)))
}

// halfMaxRSS is the highest RSS sampled in the first (0) or second (1)
// half of the run: memory that keeps growing shows as a second half well
// above the first.
func (r *Result) halfMaxRSS(half int) int64 {
	var m int64
	for _, s := range r.RSS {
		if (s.AtSeconds >= r.Seconds/2) == (half == 1) {
			m = max(m, s.RSSBytes)
		}
	}
	return m
}

// child is a server this program started.
type child struct {
	cmd    *exec.Cmd
	url    string
	creds  server.Credentials
	tmpDir string
	exited chan struct{}
}

func startServer(ctx context.Context, o Options, stderr io.Writer) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{exited: make(chan struct{})}
	dir := o.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "audittrail-load-"); err != nil {
			return nil, err
		}
		c.tmpDir = dir
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"serve", "--data-dir", dir, "--addr", addr, "--search-rate-limit", "0", "--log-level", "warn", "--store", o.Store}
	if o.PGURL != "" {
		args = append(args, "--postgres-url", o.PGURL)
	}
	c.cmd = exec.Command(self, args[1:]...)
	c.cmd.Env = append(os.Environ(), childEnv+"=serve")
	c.cmd.Stdout, c.cmd.Stderr = io.Discard, stderr
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	c.url = "http://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(c.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-c.exited:
			return nil, errors.New("the server exited at start (its log is above)")
		case <-ctx.Done():
			c.stop(stderr)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop(stderr)
			return nil, errors.New("the server did not become healthy within 2 minutes")
		}
	}
	if c.creds, err = server.ReadBootstrap(dir); err != nil {
		c.stop(stderr)
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return c, nil
}

// stop ends the server with SIGTERM (its ordered shutdown) and removes a
// temporary data directory.
func (c *child) stop(stderr io.Writer) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		fmt.Fprintln(stderr, "audittrail-load: the server did not stop within a minute; killing it")
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	if c.tmpDir != "" {
		os.RemoveAll(filepath.Clean(c.tmpDir))
	}
}
