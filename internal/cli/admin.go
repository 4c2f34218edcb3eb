package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/audittrail/audittrail/client"
)

// subcommand splits "projects list …" into the verb and its arguments.
func subcommand(e *env, name string, args []string, verbs string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usagef(name, "missing subcommand: %s", verbs)
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprintf(e.stdout, "Usage: audittrail %s %s [flags]\nRun 'audittrail %s <subcommand> --help' for its flags.\n", name, verbs, name)
		return "", nil, flag.ErrHelp
	}
	return args[0], args[1:], nil
}

func writeJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func runProjects(ctx context.Context, e *env, name string, args []string) error {
	verb, rest, err := subcommand(e, name, args, "list|create NAME|delete ID")
	if err != nil {
		return err
	}
	full := name + " " + verb
	fs := newFlagSet(e, full, map[string]string{"list": "", "create": "NAME", "delete": "ID"}[verb], "Manage the company's projects (admin key).")
	conn := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	switch verb {
	case "list":
		if _, err := parse(e, fs, rest, 0, 0); err != nil {
			return err
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		ps, err := c.Projects().List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONValue(e.stdout, ps)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", cell(p.ID), cell(p.Name), formatTime(p.Created))
		}
		return tw.Flush()
	case "create":
		pos, err := parse(e, fs, rest, 1, 1)
		if err != nil {
			return err
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		p, err := c.Projects().Create(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONValue(e.stdout, p)
		}
		fmt.Fprintf(e.stdout, "created project %s (%s)\n", p.ID, p.Name)
		return nil
	case "delete":
		pos, err := parse(e, fs, rest, 1, 1)
		if err != nil {
			return err
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		if err := c.Projects().Delete(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted project %s\n", pos[0])
		return nil
	}
	return usagef(name, "unknown subcommand %q: want list, create or delete", verb)
}

func runKeys(ctx context.Context, e *env, name string, args []string) error {
	verb, rest, err := subcommand(e, name, args, "list|create|revoke ID|rotate ID")
	if err != nil {
		return err
	}
	full := name + " " + verb
	fs := newFlagSet(e, full, map[string]string{"list": "", "create": "--name NAME --role ROLE", "revoke": "ID", "rotate": "ID"}[verb],
		"Manage management keys (admin key). A new or rotated secret is printed once: store it now.")
	conn := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	switch verb {
	case "list":
		if _, err := parse(e, fs, rest, 0, 0); err != nil {
			return err
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		ks, err := c.Keys().List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONValue(e.stdout, ks)
		}
		now := e.now()
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tPROJECTS\tSTATUS\tCREATED\tEXPIRES")
		for _, k := range ks {
			projects := "all"
			if len(k.ProjectIDs) > 0 {
				projects = strings.Join(k.ProjectIDs, ",")
			}
			status := "active"
			switch {
			case !k.Revoked.IsZero():
				status = "revoked"
			case !k.Active(now):
				status = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(k.ID), cell(k.Name), cell(k.Role), cell(projects),
				status, formatTime(k.Created), formatTime(k.Expires))
		}
		return tw.Flush()
	case "create":
		keyName := fs.String("name", "", "key `name` (required)")
		role := fs.String("role", client.RoleReader, "`role`: admin, writer or reader")
		var projects listFlag
		fs.Var(&projects, "projects", "project `IDs` the key may use (repeatable or comma separated; default all)")
		expires := fs.String("expires", "", "lifetime like 90d or 12h (default never)")
		if _, err := parse(e, fs, rest, 0, 0); err != nil {
			return err
		}
		if *keyName == "" {
			return usagef(full, "--name is required")
		}
		switch *role {
		case client.RoleAdmin, client.RoleWriter, client.RoleReader:
		default:
			return usagef(full, "--role %q: want admin, writer or reader", *role)
		}
		var lifetime time.Duration
		if *expires != "" {
			d, ok := parseAge(*expires)
			if !ok {
				return usagef(full, "--expires %q: want a lifetime like 90d, 2w or 12h", *expires)
			}
			lifetime = d
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		k, secret, err := c.Keys().Create(ctx, client.CreateKeyOptions{Name: *keyName, Role: *role, ProjectIDs: projects, ExpiresIn: lifetime})
		if err != nil {
			return err
		}
		return printSecret(e, *asJSON, "created", k, secret)
	case "revoke", "rotate":
		pos, err := parse(e, fs, rest, 1, 1)
		if err != nil {
			return err
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		if verb == "revoke" {
			k, err := c.Keys().Revoke(ctx, pos[0])
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSONValue(e.stdout, k)
			}
			fmt.Fprintf(e.stdout, "revoked key %s\n", pos[0])
			return nil
		}
		k, secret, err := c.Keys().Rotate(ctx, pos[0])
		if err != nil {
			return err
		}
		return printSecret(e, *asJSON, "rotated", k, secret)
	}
	return usagef(name, "unknown subcommand %q: want list, create, revoke or rotate", verb)
}

// printSecret shows a key's secret the one time the server reveals it: on
// stdout alone (so `$(audittrail keys create …)` captures just the secret),
// with the explanation on stderr.
func printSecret(e *env, asJSON bool, verb string, k client.Key, secret string) error {
	if asJSON {
		return writeJSONValue(e.stdout, struct {
			Key    client.Key `json:"key"`
			Secret string     `json:"secret"`
		}{k, secret})
	}
	fmt.Fprintf(e.stderr, "%s key %s (%s, role %s); its secret, shown this once:\n", verb, k.ID, k.Name, k.Role)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

func runSettings(ctx context.Context, e *env, name string, args []string) error {
	verb, rest, err := subcommand(e, name, args, "get|set")
	if err != nil {
		return err
	}
	full := name + " " + verb
	fs := newFlagSet(e, full, "[flags]", "Read or change the company settings (admin key).")
	conn := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var window, retention, rate optionalInt
	if verb == "set" {
		fs.Var(&window, "search-window-days", "how many `days` back a search may reach")
		fs.Var(&retention, "retention-days", "`days` events are kept (at least the search window)")
		fs.Var(&rate, "search-rate-limit", "searches per minute per project (`n`, 0 = no limit, \"default\" = the server's)")
	}
	switch verb {
	case "get", "set":
	default:
		return usagef(name, "unknown subcommand %q: want get or set", verb)
	}
	if _, err := parse(e, fs, rest, 0, 0); err != nil {
		return err
	}
	if verb == "set" && window.v == nil && retention.v == nil && rate.v == nil && !rate.def {
		return usagef(full, "nothing to set: give --search-window-days, --retention-days or --search-rate-limit")
	}
	c, err := conn.client(e, full)
	if err != nil {
		return err
	}
	var s client.CompanySettings
	if verb == "get" {
		s, err = c.Settings().Get(ctx)
	} else {
		s, err = c.Settings().Update(ctx, client.SettingsUpdate{
			SearchWindowDays: window.v, RetentionDays: retention.v, SearchRateLimit: rate.v, DefaultSearchRateLimit: rate.def,
		})
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONValue(e.stdout, s)
	}
	limit := "server default"
	if s.SearchRateLimit != nil {
		limit = strconv.Itoa(*s.SearchRateLimit) + " per minute"
		if *s.SearchRateLimit == 0 {
			limit = "none"
		}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "search window\t%d days\n", s.SearchWindowDays)
	fmt.Fprintf(tw, "retention\t%d days\n", s.RetentionDays)
	fmt.Fprintf(tw, "search rate limit\t%s\n", limit)
	return tw.Flush()
}

// optionalInt is an int flag that knows whether it was given; "default"
// sets def instead (only the rate limit has a server default).
type optionalInt struct {
	v   *int
	def bool
}

func (o *optionalInt) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.Itoa(*o.v)
}

func (o *optionalInt) Set(s string) error {
	if s == "default" {
		o.v, o.def = nil, true
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a whole number ≥ 0")
	}
	o.v = &n
	return nil
}
