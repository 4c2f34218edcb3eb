package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/audittrail/audittrail/client"
)

const connectorVerbs = "list|get ID|create|pause ID|resume ID|test ID|replay ID --from TIME|delete ID"

// runConnectors manages stream connectors (writer or admin key).
func runConnectors(ctx context.Context, e *env, name string, args []string) error {
	verb, rest, err := subcommand(e, name, args, connectorVerbs)
	if err != nil {
		return err
	}
	full := name + " " + verb
	synopsis := map[string]string{"list": "", "get": "ID", "create": "--name NAME --type TYPE --config JSON|@FILE",
		"pause": "ID", "resume": "ID", "test": "ID", "replay": "ID --from TIME", "delete": "ID"}[verb]
	fs := newFlagSet(e, full, synopsis, "Manage stream connectors: where events are delivered (writer or admin key).")
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
		cs, err := c.Connectors().List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONValue(e.stdout, cs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTYPE\tPROJECT\tLEVEL\tSTATE\tDELIVERED\tLAG\tLAST ERROR")
		for _, v := range cs {
			project := v.ProjectID
			if project == "" {
				project = "all"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", cell(v.ID), cell(v.Name), cell(v.Type), cell(project), cell(v.Level),
				cell(v.Health.State), v.Health.Delivered, v.Health.LagEvents, cell(clip(v.Health.LastError, 60)))
		}
		return tw.Flush()
	case "create":
		var opts client.ConnectorOptions
		fs.StringVar(&opts.Name, "name", "", "connector `name` (required)")
		fs.StringVar(&opts.Description, "description", "", "free `text`")
		fs.StringVar(&opts.Type, "type", "", "destination `type`: webhook, splunk, datadog, sumo, otlp, syslog, nats, kafka or s3 (required)")
		fs.StringVar(&opts.Level, "level", "", "`level` of events: project, company or both (default: project for a project's connector, else both)")
		fs.StringVar(&opts.ProjectID, "for-project", "", "project `ID` the connector streams (default: the key's project if limited to one, else every project)")
		fs.BoolVar(&opts.MaskPII, "mask-pii", false, "mask login IDs, names, e-mails and phone numbers")
		config := fs.String("config", "", "destination config as `JSON`, or @FILE to read it from a file (required)")
		var actions, notActions, tenants, notTenants listFlag
		fs.Var(&actions, "action", "deliver only these `actions` (repeatable or comma separated)")
		fs.Var(&notActions, "exclude-action", "never deliver these `actions`")
		fs.Var(&tenants, "tenant", "deliver only events of these `tenants`")
		fs.Var(&notTenants, "exclude-tenant", "never deliver events of these `tenants`")
		if _, err := parse(e, fs, rest, 0, 0); err != nil {
			return err
		}
		if opts.Name == "" || opts.Type == "" || *config == "" {
			return usagef(full, "--name, --type and --config are required")
		}
		raw, err := readConfig(*config)
		if err != nil {
			return usagef(full, "--config: %v", err)
		}
		opts.Config = raw
		for _, f := range []struct {
			typ, op string
			values  []string
		}{{"actions", "includes", actions}, {"actions", "excludes", notActions}, {"tenants", "includes", tenants}, {"tenants", "excludes", notTenants}} {
			if len(f.values) > 0 {
				opts.Filters = append(opts.Filters, client.ConnectorFilter{FilterType: f.typ, Operator: f.op, Values: f.values})
			}
		}
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		v, err := c.Connectors().Create(ctx, opts)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONValue(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "created connector %s (%s, %s)\n", v.ID, v.Name, v.Type)
		return nil
	case "get", "pause", "resume", "test", "delete", "replay":
		from := ""
		if verb == "replay" {
			fs.StringVar(&from, "from", "", "replay events that occurred since `TIME`: an age like 2h, an RFC 3339 time, a date or epoch ms (required)")
		}
		pos, err := parse(e, fs, rest, 1, 1)
		if err != nil {
			return err
		}
		id := pos[0]
		c, err := conn.client(e, full)
		if err != nil {
			return err
		}
		cs := c.Connectors()
		switch verb {
		case "get", "pause", "resume":
			call := map[string]func(context.Context, string) (client.Connector, error){"get": cs.Get, "pause": cs.Pause, "resume": cs.Resume}[verb]
			v, err := call(ctx, id)
			if err != nil {
				return err
			}
			if *asJSON || verb == "get" {
				return writeJSONValue(e.stdout, v)
			}
			fmt.Fprintf(e.stdout, "connector %s is %s\n", v.ID, v.Health.State)
			return nil
		case "test":
			if err := cs.Test(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "connector %s: the destination acknowledged a test event\n", id)
			return nil
		case "delete":
			if err := cs.Delete(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "deleted connector %s\n", id)
			return nil
		case "replay":
			if from == "" {
				return usagef(full, "--from is required")
			}
			t, err := parseTime(from, e.now())
			if err != nil {
				return usagef(full, "--from %q: %v", from, err)
			}
			cursor, err := cs.Replay(ctx, id, t)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "connector %s replays from %s (cursor %d)\n", id, formatTime(t), cursor)
			return nil
		}
	}
	return usagef(name, "unknown subcommand %q: want %s", verb, connectorVerbs)
}

// readConfig reads --config: inline JSON or @FILE.
func readConfig(v string) (json.RawMessage, error) {
	b := []byte(v)
	if path, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("not valid JSON")
	}
	return json.RawMessage(b), nil
}
