package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/audittrail/audittrail/client"
)

// defaultTableSize keeps a terminal table readable; the API's own default
// (1000) is for programs.
const defaultTableSize = 100

// filterFlags are the search filters shared by search and export.
type filterFlags struct {
	users, actions, excluded, actors, devices, methods, geos, ips, loginIDs, tenants listFlag
	levels, changed                                                                  listFlag
	noTenants, oldestFirst                                                           bool
	text, from, to                                                                   string
}

func addFilterFlags(fs *flag.FlagSet) *filterFlags {
	f := &filterFlags{}
	fs.Var(&f.users, "user", "user `ID` (repeatable or comma separated)")
	fs.Var(&f.actions, "action", "`action`, e.g. LoginFailed (repeatable or comma separated)")
	fs.Var(&f.excluded, "exclude-action", "`action` to leave out (repeatable or comma separated)")
	fs.Var(&f.actors, "actor", "actor `ID` (repeatable or comma separated)")
	fs.Var(&f.devices, "device", "`device`: Bot, Mobile, Desktop, Tablet, Unknown (repeatable or comma separated)")
	fs.Var(&f.methods, "method", "authentication `method`, e.g. otp, oauth (repeatable or comma separated)")
	fs.Var(&f.geos, "geo", "country `code`, e.g. US (repeatable or comma separated)")
	fs.Var(&f.ips, "ip", "remote `address` (repeatable or comma separated)")
	fs.Var(&f.loginIDs, "login-id", "login `ID` (repeatable or comma separated)")
	fs.Var(&f.tenants, "tenant", "tenant `ID` (repeatable or comma separated)")
	fs.BoolVar(&f.noTenants, "no-tenants", false, "also match events without any tenant (only those without --tenant)")
	fs.StringVar(&f.text, "text", "", "free `text`: every word must prefix-match a word of the event")
	fs.StringVar(&f.from, "from", "", "oldest `time`: an age (7d, 36h, 15m), RFC 3339 (UTC if no zone), a date or epoch ms")
	fs.StringVar(&f.to, "to", "", "newest `time`, in the same forms as --from")
	fs.Var(&f.levels, "level", "`level`: project or company (default both)")
	fs.Var(&f.changed, "changed-field", "`field` changed in data.Change, e.g. phone (repeatable or comma separated)")
	fs.BoolVar(&f.oldestFirst, "oldest-first", false, "oldest events first (default newest first)")
	return f
}

func (f *filterFlags) options(cmd string, now time.Time) (client.SearchOptions, error) {
	from, err := parseTime(f.from, now)
	if err != nil {
		return client.SearchOptions{}, usagef(cmd, "--from %q: %v", f.from, err)
	}
	to, err := parseTime(f.to, now)
	if err != nil {
		return client.SearchOptions{}, usagef(cmd, "--to %q: %v", f.to, err)
	}
	if !from.IsZero() && !to.IsZero() && from.After(to) {
		return client.SearchOptions{}, usagef(cmd, "--from %s is after --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	var levels []client.Level
	for _, l := range f.levels {
		switch client.Level(strings.ToLower(l)) {
		case client.LevelProject:
			levels = append(levels, client.LevelProject)
		case client.LevelCompany:
			levels = append(levels, client.LevelCompany)
		default:
			return client.SearchOptions{}, usagef(cmd, "--level %q: want project or company", l)
		}
	}
	return client.SearchOptions{
		UserIDs: f.users, Actions: f.actions, ExcludedActions: f.excluded, ActorIDs: f.actors,
		Devices: f.devices, Methods: f.methods, Geos: f.geos, RemoteAddresses: f.ips,
		LoginIDs: f.loginIDs, Tenants: f.tenants, NoTenants: f.noTenants, Text: f.text,
		From: from, To: to, Levels: levels, ChangedFields: f.changed, OldestFirst: f.oldestFirst,
	}, nil
}

func runSearch(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "[flags]", `Search audit events, newest first, one page at a time. Prints an aligned
table and the total number of matches, or NDJSON records with --json
(the total then goes to stderr).

Examples:
  audittrail search --from 7d --action LoginFailed,LoginExceedMaxAttempts
  audittrail search --tenant acme --no-tenants --text "john chrome" --json`)
	conn := addConnFlags(fs)
	filters := addFilterFlags(fs)
	size := fs.Int("size", defaultTableSize, "page `size`, at most 1000")
	page := fs.Int("page", 0, "zero-based page `number`")
	asJSON := fs.Bool("json", false, "print NDJSON records instead of a table")
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	if *size < 1 || *size > client.MaxPageSize {
		return usagef(name, "--size %d: want 1 to %d", *size, client.MaxPageSize)
	}
	if *page < 0 {
		return usagef(name, "--page %d: want 0 or more", *page)
	}
	opts, err := filters.options(name, e.now())
	if err != nil {
		return err
	}
	opts.Size, opts.Page = *size, *page
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}
	recs, total, err := c.Audit().SearchAll(ctx, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeNDJSON(e.stdout, recs); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%d of %d matching events\n", len(recs), total)
		return nil
	}
	return writeTable(e.stdout, recs, total, *page, *size)
}

func writeNDJSON(w io.Writer, recs []client.Record) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write record %s: %w", r.ID, err)
		}
	}
	return nil
}

// tableTime is fixed-width and in UTC, so columns line up and two people
// comparing output see the same times.
const tableTime = "2006-01-02 15:04:05.000Z"

func writeTable(w io.Writer, recs []client.Record, total, page, size int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OCCURRED (UTC)\tTYPE\tACTION\tUSER\tACTOR\tLOGIN IDS\tTENANTS\tIP\tGEO\tDEVICE\tMETHOD\tID\tCHANGES")
	for _, r := range recs {
		occurred := "-"
		if !r.Occurred.IsZero() {
			occurred = r.Occurred.UTC().Format(tableTime)
		}
		fmt.Fprintln(tw, strings.Join([]string{
			occurred, cell(r.Type), cell(r.Action), cell(r.UserID), cell(r.ActorID),
			cell(strings.Join(r.LoginIDs, ",")), cell(strings.Join(r.Tenants, ",")),
			cell(r.RemoteAddress), cell(r.Geo), cell(r.Device), cell(r.Method), cell(r.ID), changeSummary(r.Data),
		}, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	var err error
	switch {
	case len(recs) == 0 && total == 0:
		_, err = fmt.Fprintln(w, "\nno matching events")
	case len(recs) == 0:
		_, err = fmt.Fprintf(w, "\npage %d is past the end: %d matching events\n", page, total)
	default:
		first := page*size + 1
		_, err = fmt.Fprintf(w, "\n%d–%d of %d matching events", first, first+len(recs)-1, total)
		if first+len(recs)-1 < total {
			_, err = fmt.Fprintf(w, " (next: --page %d)", page+1)
		}
		fmt.Fprintln(w)
	}
	return err
}

// maxCell bounds a table cell; --json shows everything.
const maxCell = 40

// cell makes a value safe and short for a table: a sender controls these
// strings, so control characters (tabs, newlines, terminal escapes) are
// replaced rather than let loose on the reader's terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxCell-1 && utf8.RuneCountInString(s) > maxCell {
			b.WriteRune('…')
			break
		}
		if unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Cf, r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func runGet(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "ID", "Print one event, by id, as indented JSON.")
	conn := addConnFlags(fs)
	pos, err := parse(e, fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}
	r, err := c.Audit().Get(ctx, pos[0])
	if err != nil {
		return err
	}
	return writeJSONValue(e.stdout, r)
}
