// Package cli implements the client subcommands of the audittrail binary
// (search, export, emit, projects, keys, settings) on top of the public Go
// SDK. It is the edge of the program: it reads the environment and the
// terminal, which the libraries never do.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/audittrail/audittrail/client"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the call failed: server error, network, bad input data
	exitUsage = 2 // the command line is wrong
	// exitInterrupted is the shell's convention for death by SIGINT.
	exitInterrupted = 130
)

// env is everything a command may touch of the outside world, so tests can
// drive the commands without a process, a terminal or a real clock.
type env struct {
	getenv     func(string) string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	isTerminal func(any) bool
	now        func() time.Time
	// progressEvery is the pause between plain progress lines when stderr
	// is not a terminal (a log file or CI output must not fill with \r).
	progressEvery time.Duration
	httpClient    *http.Client
}

// Main runs one client subcommand and returns the process exit code.
// Ctrl-C cancels the call in flight (an export then removes its partial
// file) and exits 130.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, &env{
		getenv:        os.Getenv,
		stdin:         os.Stdin,
		stdout:        stdout,
		stderr:        stderr,
		isTerminal:    isTerminal,
		now:           time.Now,
		progressEvery: 2 * time.Second,
	}, args)
}

// usageError is a wrong command line: exit 2 and a hint.
type usageError struct {
	cmd string
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, a ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, a...)}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, name string, args []string) error
}

// commands is filled in init to break the reference cycle through help.
var commands []command

func init() {
	commands = []command{
		{"search", "search events: every Descope filter as a flag, a table or NDJSON", runSearch},
		{"export", "write every matching event as NDJSON or CSV, with progress", runExport},
		{"get", "print one event by id", runGet},
		{"emit", "create one event from flags, or a batch from NDJSON on stdin", runEmit},
		{"projects", "list, create or delete projects (admin key)", runProjects},
		{"keys", "list, create, revoke or rotate management keys (admin key)", runKeys},
		{"settings", "get or set company settings (admin key)", runSettings},
		{"connectors", "list, create, pause, resume, test, replay or delete stream connectors", runConnectors},
		{"evidence", "tamper evidence: the checkpoint key, signed checkpoints, an export with proofs", runEvidence},
		{"verify", "check an export's proofs offline, or the server against saved checkpoints", runVerify},
		{"version", "print the version", runVersion},
		{"help", "show help for a command", runHelp},
	}
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		printUsage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help":
		printUsage(e.stdout)
		return exitOK
	case "-v", "--version", "-version":
		name = "version"
	}
	cmd := findCommand(name)
	if cmd == nil {
		fmt.Fprintf(e.stderr, "audittrail: unknown command %q\n\n", name)
		printUsage(e.stderr)
		return exitUsage
	}
	err := cmd.run(ctx, e, name, args[1:])
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "audittrail: interrupted")
		return exitInterrupted
	}
	return report(e, err)
}

// report prints err the way a person at a terminal wants it and picks the
// exit code.
func report(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK // the flag set already printed the usage
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "audittrail %s: %s\n", ue.cmd, ue.msg)
		fmt.Fprintf(e.stderr, "Run 'audittrail help %s' for usage.\n", ue.cmd)
		return exitUsage
	}
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if msg == "" {
			msg = apiErr.Description
		}
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		detail := fmt.Sprintf("HTTP %d", apiErr.StatusCode)
		if apiErr.ErrorCode != "" {
			detail = apiErr.ErrorCode + ", " + detail
		}
		fmt.Fprintf(e.stderr, "audittrail: %s (%s)\n", msg, detail)
		if apiErr.RetryAfter > 0 {
			fmt.Fprintf(e.stderr, "audittrail: retry after %s\n", apiErr.RetryAfter)
		}
		return exitError
	}
	fmt.Fprintf(e.stderr, "audittrail: %v\n", err)
	if errors.Is(err, syscall.ECONNREFUSED) {
		fmt.Fprintln(e.stderr, "audittrail: is the server running? Start it with 'audittrail serve', or set AUDITTRAIL_URL / --url.")
	}
	return exitError
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `audittrail: a self-hosted audit trail, wire-compatible with Descope's audit API.

Usage:
  audittrail serve [flags]          run the server (see 'audittrail serve --help')
  audittrail <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Connection (every command but serve, version and help):
  --url URL        server URL        (env AUDITTRAIL_URL, default `+client.DefaultBaseURL+`)
  --project ID     project ID        (env AUDITTRAIL_PROJECT_ID)
  --key KEY        management key    (env AUDITTRAIL_MANAGEMENT_KEY, or a file named by
                                      AUDITTRAIL_MANAGEMENT_KEY_FILE)
  Without a key, the bootstrap.json that 'audittrail serve' wrote in $AUDITTRAIL_DATA_DIR
  (default ./data) is used, so a fresh local server needs no setup.

Exit status: 0 success, 1 the call failed (the server's message is printed), 2 usage error.
Run 'audittrail help <command>' for the flags of a command.
`)
}

func runHelp(ctx context.Context, e *env, _ string, args []string) error {
	if len(args) == 0 {
		printUsage(e.stdout)
		return nil
	}
	cmd := findCommand(args[0])
	if cmd == nil || cmd.name == "help" {
		return usagef("help", "unknown command %q", args[0])
	}
	return cmd.run(ctx, e, cmd.name, []string{"--help"})
}

func runVersion(_ context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "", "Print the version of this binary.")
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	version, revision := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				revision = " " + s.Value[:12]
			}
		}
	}
	fmt.Fprintf(e.stdout, "audittrail %s%s (client %s, %s %s/%s)\n", version, revision, client.Version,
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// newFlagSet makes a flag set that never exits the process nor prints on
// its own: parse prints the usage on --help and report prints errors, so a
// mistake is told once, not buried under the whole flag list. synopsis
// follows "audittrail <name>" in the usage line.
func newFlagSet(_ *env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: audittrail %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags wherever they appear among the positional arguments
// (Go's flag package stops at the first positional one), and checks that
// between min and max positional arguments remain (max < 0: no limit).
func parse(e *env, fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(e.stdout)
				fs.Usage()
				return nil, err
			}
			return nil, &usageError{cmd: fs.Name(), msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < min {
		return nil, usagef(fs.Name(), "missing argument")
	}
	if max >= 0 && len(pos) > max {
		return nil, usagef(fs.Name(), "unexpected argument %q", pos[max])
	}
	return pos, nil
}

// listFlag collects a repeatable flag whose values may also be comma
// separated: --tenant a --tenant b,c gives [a b c].
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// connFlags are the connection flags every server command takes.
type connFlags struct {
	url, project, key string
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.url, "url", "", "server `URL` (env AUDITTRAIL_URL, default "+client.DefaultBaseURL+")")
	fs.StringVar(&c.project, "project", "", "project `ID` (env AUDITTRAIL_PROJECT_ID)")
	fs.StringVar(&c.key, "key", "", "management `key` (env AUDITTRAIL_MANAGEMENT_KEY)")
	return c
}

// bootstrapFile is what `audittrail serve` writes on its first start.
type bootstrapFile struct {
	CompanyID     string `json:"companyId"`
	ProjectID     string `json:"projectId"`
	ManagementKey string `json:"managementKey"`
}

// client builds the SDK client: flags win over the environment, which wins
// over a local server's bootstrap.json.
func (c *connFlags) client(e *env, cmd string) (*client.Client, error) {
	url := firstNonEmpty(c.url, e.getenv("AUDITTRAIL_URL"))
	project := firstNonEmpty(c.project, e.getenv("AUDITTRAIL_PROJECT_ID"))
	key := firstNonEmpty(c.key, e.getenv("AUDITTRAIL_MANAGEMENT_KEY"))
	if key == "" {
		if path := e.getenv("AUDITTRAIL_MANAGEMENT_KEY_FILE"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read AUDITTRAIL_MANAGEMENT_KEY_FILE: %w", err)
			}
			key = strings.TrimSpace(string(b))
		}
	}
	if key == "" {
		dir := firstNonEmpty(e.getenv("AUDITTRAIL_DATA_DIR"), "data")
		if b, err := os.ReadFile(filepath.Join(dir, "bootstrap.json")); err == nil {
			var bf bootstrapFile
			if json.Unmarshal(b, &bf) == nil && bf.ManagementKey != "" {
				key = bf.ManagementKey
				project = firstNonEmpty(project, bf.ProjectID)
			}
		}
	}
	if key == "" {
		return nil, usagef(cmd, "no management key: set AUDITTRAIL_MANAGEMENT_KEY or pass --key")
	}
	cl, err := client.New(client.Config{BaseURL: url, ProjectID: project, ManagementKey: key, HTTPClient: e.httpClient, UserAgent: "audittrail-cli"})
	if err != nil {
		return nil, usagef(cmd, "%v", err)
	}
	return cl, nil
}

func firstNonEmpty(s ...string) string {
	if i := slices.IndexFunc(s, func(v string) bool { return v != "" }); i >= 0 {
		return s[i]
	}
	return ""
}

// isTerminal reports whether w is a character device (a terminal), using
// only the standard library.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
