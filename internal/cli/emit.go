package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strconv"

	"github.com/audittrail/audittrail/client"
)

// Batches sent while reading NDJSON: well under the server's limits
// (10,000 events, 10 MiB) so one oversized line cannot push a batch over.
const (
	emitBatchEvents = 1000
	emitBatchBytes  = 4 << 20
	// maxLine bounds one NDJSON line; the server refuses larger events
	// anyway (64 KiB of data plus the fields).
	maxLine = 1 << 20
)

func runEmit(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "[flags]", `Create one event from flags (Descope's createEvent), or, without --action,
a batch from NDJSON on stdin: one record per line in the shape search
returns ("occurred" as epoch ms, string or number; "externalIds" for login
IDs). Prints the new ids, one per line.

Batches of up to 1000 events are each stored whole or not at all; when one
fails, the events of earlier batches stay stored (the error names the line).
Give events an "id" to make a re-run safe: a known id is never stored twice.

Examples:
  audittrail emit --action ReportExported --actor u1 --tenant acme --data '{"rows":12}'
  audittrail emit < events.ndjson`)
	conn := addConnFlags(fs)
	action := fs.String("action", "", "`action` of the single event (omit to read NDJSON from stdin)")
	typ := fs.String("type", client.TypeInfo, "`type`: info, warn or error")
	user := fs.String("user", "", "user `ID`")
	actor := fs.String("actor", "", "actor `ID` (who did it)")
	tenant := fs.String("tenant", "", "tenant `ID`")
	data := fs.String("data", "", "data as a JSON `object`")
	occurred := fs.String("occurred", "", "when it happened (default now): RFC 3339, a date, epoch ms or an age like 5m")
	level := fs.String("level", "", "`level`: project (default) or company")
	id := fs.String("id", "", "client event `ID`, for idempotent retries")
	device := fs.String("device", "", "`device`")
	method := fs.String("method", "", "authentication `method`")
	geo := fs.String("geo", "", "country `code`")
	ip := fs.String("ip", "", "remote `address`")
	var loginIDs listFlag
	fs.Var(&loginIDs, "login-id", "login `ID` (repeatable or comma separated)")
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}
	if *action == "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, n := range []string{"type", "user", "actor", "tenant", "data", "occurred", "level", "id", "device", "method", "geo", "ip", "login-id"} {
			if set[n] {
				return usagef(name, "--%s needs --action (without it, events are read from stdin)", n)
			}
		}
		if e.isTerminal(e.stdin) {
			return usagef(name, "give --action, or pipe NDJSON events to stdin")
		}
		return emitBatch(ctx, e, c)
	}

	opts := client.CreateEventOptions{
		UserID: *user, Action: *action, Type: *typ, ActorID: *actor, TenantID: *tenant, ID: *id,
		Device: *device, Method: *method, Geo: *geo, RemoteAddress: *ip, LoginIDs: loginIDs,
	}
	switch client.Level(*level) {
	case "", client.LevelProject, client.LevelCompany:
		opts.Level = client.Level(*level)
	default:
		return usagef(name, "--level %q: want project or company", *level)
	}
	if *data != "" {
		if err := json.Unmarshal([]byte(*data), &opts.Data); err != nil || opts.Data == nil {
			return usagef(name, "--data: want a JSON object like '{\"k\":\"v\"}'")
		}
	}
	if opts.Occurred, err = parseTime(*occurred, e.now()); err != nil {
		return usagef(name, "--occurred %q: %v", *occurred, err)
	}
	newID, err := c.Audit().CreateEvent(ctx, opts)
	if err != nil {
		return err
	}
	if newID != "" {
		fmt.Fprintln(e.stdout, newID)
	}
	return nil
}

// batchIndex finds "events[12]" in a server message to name the line.
var batchIndex = regexp.MustCompile(`^events\[(\d+)\]`)

// emitBatch streams NDJSON from stdin to the batch endpoint.
func emitBatch(ctx context.Context, e *env, c *client.Client) error {
	sc := bufio.NewScanner(e.stdin)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		batch   []client.Record
		lines   []int // input line of each batched record
		bytesIn int
		lineNo  int
		stored  int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ids, err := c.Audit().Ingest(ctx, batch)
		if err != nil {
			var apiErr *client.Error
			if errors.As(err, &apiErr) {
				if m := batchIndex.FindStringSubmatch(apiErr.Message); m != nil {
					if i, convErr := strconv.Atoi(m[1]); convErr == nil && i < len(lines) {
						apiErr.Message = fmt.Sprintf("stdin line %d: %s", lines[i], apiErr.Message[len(m[0]):])
					}
				}
			}
			if stored > 0 {
				return fmt.Errorf("%w (the %d events before that batch are stored)", err, stored)
			}
			return err
		}
		for _, id := range ids {
			fmt.Fprintln(e.stdout, id)
		}
		stored += len(batch)
		batch, lines, bytesIn = batch[:0], lines[:0], 0
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r client.Record
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("stdin line %d: not a JSON event: %w", lineNo, err)
		}
		if len(batch) > 0 && (len(batch) == emitBatchEvents || bytesIn+len(line) > emitBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, r)
		lines = append(lines, lineNo)
		bytesIn += len(line)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("stdin line %d: longer than %d bytes", lineNo+1, maxLine)
		}
		return fmt.Errorf("read stdin: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "emitted %d events\n", stored)
	return nil
}
