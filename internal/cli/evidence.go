package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/ledger"
)

func runEvidence(ctx context.Context, e *env, name string, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, `Usage: audittrail evidence <key|checkpoint|export> [flags]

Tamper evidence (docs/tamper-evidence.md):
  key          print the server's checkpoint verifier key (pin it for verify)
  checkpoint   have the server sign a checkpoint now and append it to a file,
               to check the server against later with 'audittrail verify --checkpoints'
  export       export events (every search filter) with a proofs file beside
               the export, which 'audittrail verify' checks without the server
`)
		if len(args) == 0 {
			return usagef(name, "missing subcommand")
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "key":
		return runEvidenceKey(ctx, e, name+" key", rest)
	case "checkpoint":
		return runEvidenceCheckpoint(ctx, e, name+" checkpoint", rest)
	case "export":
		return runEvidenceExport(ctx, e, name+" export", rest)
	}
	return usagef(name, "unknown subcommand %q (want key, checkpoint or export)", sub)
}

func runEvidenceKey(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "", "Print the verifier key the server publishes at /.well-known/audittrail/checkpoint-key.")
	conn := addConnFlags(fs)
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}
	k, err := c.Ledger().CheckpointKey(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k.VerifierKey)
	return nil
}

func treeFlag(cmd, v string) (client.Tree, error) {
	switch client.Tree(v) {
	case client.TreeProject, client.TreeCompany:
		return client.Tree(v), nil
	}
	return "", usagef(cmd, "--tree %q: want project or company", v)
}

func runEvidenceCheckpoint(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "[flags]", `Have the server sign a checkpoint of the tree now (covering every event
stored before the call) and print it, or append it to a file of saved
checkpoints (one JSON line each) with -o.

Example:
  audittrail evidence checkpoint -o checkpoints.ndjson   # daily, from cron`)
	conn := addConnFlags(fs)
	tree := fs.String("tree", "project", "`tree`: project, or company (admin key)")
	output := fs.String("o", "", "append to `file` instead of printing")
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	t, err := treeFlag(name, *tree)
	if err != nil {
		return err
	}
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}
	cp, err := c.Ledger().NewCheckpoint(ctx, t)
	if err != nil {
		return err
	}
	if *output == "" {
		fmt.Fprint(e.stdout, cp.Note)
		return nil
	}
	f, err := os.OpenFile(*output, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", *output, err)
	}
	b, _ := json.Marshal(cp)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *output, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", *output, err)
	}
	fmt.Fprintf(e.stderr, "saved checkpoint of %s: %d events\n", cp.Tree, cp.Size)
	return nil
}

func runEvidenceExport(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "-o FILE [flags]", `Export every matching event as NDJSON to FILE, then have the server sign a
checkpoint and write FILE.proofs: a header with the checkpoints and the
server's verifier key, then one inclusion proof per exported event. Check
the pair anywhere, without the server, with 'audittrail verify FILE'.

Example:
  audittrail evidence export --from 30d -o trail.ndjson`)
	conn := addConnFlags(fs)
	filters := addFilterFlags(fs)
	output := fs.String("o", "", "write the export to `file` (and the proofs to file.proofs)")
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	if *output == "" || *output == "-" {
		return usagef(name, "-o FILE is required: the proofs go beside it")
	}
	opts, err := filters.options(name, e.now())
	if err != nil {
		return err
	}
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}
	n, err := exportBundle(ctx, c, opts, *output)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "exported %d events to %s with their proofs in %s\n", n, *output, *output+proofsSuffix)
	return nil
}

// narrowed reports whether opts leave out events that lie between two
// exported ones in the log, so that leaf indexes may legitimately skip:
// any filter, and explicit time bounds (an event's occurred time need not
// follow ingest order). The default export, the whole search window, is
// not narrowed.
func narrowed(o client.SearchOptions) bool {
	if !o.From.IsZero() || !o.To.IsZero() {
		return true
	}
	lists := [][]string{o.UserIDs, o.Actions, o.ExcludedActions, o.ActorIDs, o.Devices, o.Methods, o.Geos,
		o.RemoteAddresses, o.LoginIDs, o.Tenants, o.ChangedFields}
	for _, l := range lists {
		if len(l) > 0 {
			return true
		}
	}
	return o.Text != "" || o.NoTenants || len(o.Levels) == 1
}

// exportBundle writes the export and its proofs file; both appear only
// once complete.
func exportBundle(ctx context.Context, c *client.Client, opts client.SearchOptions, output string) (int64, error) {
	dir := filepath.Dir(output)
	events, err := os.CreateTemp(dir, "."+filepath.Base(output)+".*.partial")
	if err != nil {
		return 0, fmt.Errorf("create output: %w", err)
	}
	defer func() { events.Close(); os.Remove(events.Name()) }()
	proofs, err := os.CreateTemp(dir, "."+filepath.Base(output)+".proofs.*.partial")
	if err != nil {
		return 0, fmt.Errorf("create output: %w", err)
	}
	defer func() { proofs.Close(); os.Remove(proofs.Name()) }()

	n, err := c.Audit().Export(ctx, client.ExportOptions{SearchOptions: opts}, client.FormatNDJSON, events)
	if err != nil {
		return 0, err
	}
	key, err := c.Ledger().CheckpointKey(ctx)
	if err != nil {
		return 0, fmt.Errorf("checkpoint key: %w", err)
	}
	// The checkpoints come after the export, so they cover every exported
	// event (an on-demand checkpoint waits for the ledger to reach them).
	if _, err := events.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	trees, err := treesOf(events)
	if err != nil {
		return 0, err
	}
	h := bundleHeader{Format: bundleFormat, VerifierKey: key.VerifierKey, Filtered: narrowed(opts), Exported: time.Now().UTC().Format(time.RFC3339)}
	sizes := map[client.Tree]uint64{}
	for _, t := range trees {
		cp, err := c.Ledger().NewCheckpoint(ctx, t)
		if err != nil {
			return 0, fmt.Errorf("checkpoint of the %s tree: %w", t, err)
		}
		sizes[t] = cp.Size
		h.Checkpoints = append(h.Checkpoints, cp.Note)
	}
	pw := bufio.NewWriter(proofs)
	if err := writeJSONLine(pw, h); err != nil {
		return 0, err
	}
	if _, err := events.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if err := writeProofs(ctx, c, events, sizes, pw); err != nil {
		return 0, err
	}
	if err := pw.Flush(); err != nil {
		return 0, fmt.Errorf("write proofs: %w", err)
	}
	for _, f := range []*os.File{events, proofs} {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	if err := os.Rename(proofs.Name(), output+proofsSuffix); err != nil {
		return 0, err
	}
	if err := os.Rename(events.Name(), output); err != nil {
		return 0, err
	}
	return n, nil
}

// lineTree reads the id and the tree of one export line.
func lineTree(raw []byte) (id string, t client.Tree, err error) {
	var head struct {
		ID    string       `json:"id"`
		Level client.Level `json:"level"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", "", fmt.Errorf("export line is not an event: %w", err)
	}
	if head.Level == client.LevelCompany {
		return head.ID, client.TreeCompany, nil
	}
	return head.ID, client.TreeProject, nil
}

func treesOf(r io.Reader) ([]client.Tree, error) {
	seen := map[client.Tree]bool{}
	var out []client.Tree
	s := newLineScanner(r)
	for s.Scan() {
		if len(strings.TrimSpace(s.Text())) == 0 {
			continue
		}
		_, t, err := lineTree(s.Bytes())
		if err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, s.Err()
}

// writeProofs writes one proof line per export line, asking the server for
// them a window of lines at a time.
func writeProofs(ctx context.Context, c *client.Client, events io.Reader, sizes map[client.Tree]uint64, w io.Writer) error {
	type item struct {
		id   string
		tree client.Tree
	}
	var window []item
	flush := func() error {
		byTree := map[client.Tree][]string{}
		for _, it := range window {
			byTree[it.tree] = append(byTree[it.tree], it.id)
		}
		got := map[client.Tree][]client.InclusionProof{}
		for t, ids := range byTree {
			ps, err := c.Ledger().InclusionProofs(ctx, t, sizes[t], ids)
			if err != nil {
				return fmt.Errorf("inclusion proofs: %w", err)
			}
			got[t] = ps
		}
		for _, it := range window {
			p := got[it.tree][0]
			got[it.tree] = got[it.tree][1:]
			if err := writeJSONLine(w, p); err != nil {
				return err
			}
		}
		window = window[:0]
		return nil
	}
	s := newLineScanner(events)
	for s.Scan() {
		if len(strings.TrimSpace(s.Text())) == 0 {
			continue
		}
		id, t, err := lineTree(s.Bytes())
		if err != nil {
			return err
		}
		window = append(window, item{id, t})
		if len(window) == client.MaxProofBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	return flush()
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func runVerify(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "[EXPORT...] [--checkpoints FILE] [flags]", `Check tamper evidence and report exactly which event fails (line, id, leaf
index, reason); exit 1 when anything fails.

Offline, without the server: each EXPORT made by 'audittrail evidence export'
is checked against its EXPORT.proofs: the checkpoints are signed by the
verifier key, every event hashes to its leaf and its proof leads to the signed
root, no leaf holds two events, none is missing between the first and last.

Against the server (--checkpoints, or --live): each checkpoint saved earlier
('audittrail evidence checkpoint -o FILE') must be extended by the server's
tree now (a consistency proof): a log rolled back or rewritten fails. --live
also exports the trail now with proofs and checks every stored event.

Pin the key: pass --verifier-key (from 'audittrail evidence key' on a day you
trusted the server); without it the key the bundle or server names is used.

Examples:
  audittrail verify --verifier-key "$VKEY" trail.ndjson
  audittrail verify --verifier-key "$VKEY" --checkpoints checkpoints.ndjson --live`)
	conn := addConnFlags(fs)
	filters := addFilterFlags(fs)
	vkey := fs.String("verifier-key", "", "checkpoint verifier `key` (env AUDITTRAIL_VERIFIER_KEY)")
	saved := fs.String("checkpoints", "", "`file` of checkpoints saved earlier to check the server against")
	live := fs.Bool("live", false, "also export the trail now and check every stored event")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parse(e, fs, args, 0, -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 && *saved == "" && !*live {
		return usagef(name, "nothing to verify: name an export, --checkpoints FILE or --live")
	}
	key := firstNonEmpty(*vkey, e.getenv("AUDITTRAIL_VERIFIER_KEY"))
	var failures []failure
	var notes []string
	for _, p := range pos {
		rep, h, err := verifyBundle(p, p+proofsSuffix, key)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if key == "" {
			notes = append(notes, fmt.Sprintf("%s: checked against the key the bundle names (%s); pin it with --verifier-key", p, h.VerifierKey))
		}
		notes = append(notes, fmt.Sprintf("%s: %d events, trees %v", p, rep.Events, rep.Trees))
		failures = append(failures, rep.Failures...)
	}
	if *saved != "" || *live {
		c, err := conn.client(e, name)
		if err != nil {
			return err
		}
		if key == "" {
			k, err := c.Ledger().CheckpointKey(ctx)
			if err != nil {
				return fmt.Errorf("checkpoint key: %w", err)
			}
			key = k.VerifierKey
			notes = append(notes, "checked against the key the server publishes now; pin it with --verifier-key")
		}
		if *saved != "" {
			fs, n, err := verifySaved(ctx, c, *saved, key)
			if err != nil {
				return err
			}
			notes = append(notes, fmt.Sprintf("%s: %d saved checkpoints checked against the server", *saved, n))
			failures = append(failures, fs...)
		}
		if *live {
			opts, err := filters.options(name, e.now())
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "audittrail-verify-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			out := filepath.Join(dir, "trail.ndjson")
			if _, err := exportBundle(ctx, c, opts, out); err != nil {
				return fmt.Errorf("export the trail: %w", err)
			}
			rep, _, err := verifyBundle(out, out+proofsSuffix, key)
			if err != nil {
				return err
			}
			notes = append(notes, fmt.Sprintf("server: %d stored events checked, trees %v", rep.Events, rep.Trees))
			failures = append(failures, rep.Failures...)
		}
	}
	if *asJSON {
		if failures == nil {
			failures = []failure{}
		}
		_ = writeJSONValue(e.stdout, struct {
			OK       bool      `json:"ok"`
			Notes    []string  `json:"notes"`
			Failures []failure `json:"failures"`
		}{len(failures) == 0, notes, failures})
	} else {
		for _, n := range notes {
			fmt.Fprintln(e.stderr, n)
		}
		for _, f := range failures {
			fmt.Fprintln(e.stdout, "FAIL", f.String())
		}
		if len(failures) == 0 {
			fmt.Fprintln(e.stdout, "OK: every check passed")
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%w: %d problems", errVerifyFailed, len(failures))
	}
	return nil
}

// verifySaved checks each saved checkpoint against the server's tree now:
// the current checkpoint must extend it (consistency proof).
func verifySaved(ctx context.Context, c *client.Client, path, key string) ([]failure, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var failures []failure
	current := map[string]ledger.Checkpoint{}
	n := 0
	s := newLineScanner(f)
	for s.Scan() {
		if len(strings.TrimSpace(s.Text())) == 0 {
			continue
		}
		n++
		var saved client.Checkpoint
		if err := json.Unmarshal(s.Bytes(), &saved); err != nil {
			return nil, n, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		old, err := ledger.VerifyCheckpoint([]byte(saved.Note), key, "")
		if err != nil {
			failures = append(failures, failure{Line: n, Index: -1, Reason: fmt.Sprintf("saved checkpoint refused: %v", err)})
			continue
		}
		tree := old.Tree.String()
		kind := client.TreeProject
		if old.Tree.ProjectID == "" {
			kind = client.TreeCompany
		}
		now, ok := current[tree]
		if !ok {
			cp, err := c.Ledger().NewCheckpoint(ctx, kind)
			if err != nil {
				return nil, n, fmt.Errorf("checkpoint of %s: %w", tree, err)
			}
			if now, err = ledger.VerifyCheckpoint([]byte(cp.Note), key, ""); err != nil {
				failures = append(failures, failure{Tree: tree, Index: -1, Reason: fmt.Sprintf("the server's checkpoint is refused: %v", err)})
				continue
			}
			if now.Tree != old.Tree {
				failures = append(failures, failure{Line: n, Tree: tree, Index: -1,
					Reason: fmt.Sprintf("saved for tree %s but the client's key and project reach %s", tree, now.Tree)})
				continue
			}
			current[tree] = now
		}
		fail := failure{Line: n, Tree: tree, Index: -1}
		if now.Size < old.Size {
			fail.Reason = fmt.Sprintf("the server's tree has %d events but a checkpoint of %s signed %d: rolled back, events %d to %d are gone",
				now.Size, old.Time.UTC().Format(time.RFC3339), old.Size, now.Size, old.Size-1)
			failures = append(failures, fail)
			continue
		}
		p, err := c.Ledger().ConsistencyProof(ctx, kind, old.Size, now.Size)
		if err != nil {
			var apiErr *client.Error
			if errors.As(err, &apiErr) {
				fail.Reason = fmt.Sprintf("the server cannot prove it extends the checkpoint of size %d: %s", old.Size, apiErr.Message)
				failures = append(failures, fail)
				continue
			}
			return nil, n, err
		}
		if err := ledger.VerifyConsistency(old.Size, now.Size, p.Hashes, old.Root, now.Root); err != nil {
			fail.Reason = fmt.Sprintf("the server's tree of %d does not extend the checkpoint of size %d signed %s: rewritten (%v)",
				now.Size, old.Size, old.Time.UTC().Format(time.RFC3339), err)
			failures = append(failures, fail)
		}
	}
	return failures, n, s.Err()
}
