package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/audittrail/audittrail/client"
)

func runExport(ctx context.Context, e *env, name string, args []string) error {
	fs := newFlagSet(e, name, "[flags]", `Write every matching event (no paging) as NDJSON or CSV through the
export endpoint, which counts as one search against the rate limit. Shows a
progress bar on stderr when it is a terminal, else a progress line every
few seconds. With -o the file appears only once the export is complete.

Examples:
  audittrail export --from 30d -o audit.ndjson
  audittrail export --format csv --tenant acme > acme.csv`)
	conn := addConnFlags(fs)
	filters := addFilterFlags(fs)
	format := fs.String("format", "ndjson", "output `format`: ndjson or csv")
	var output string
	fs.StringVar(&output, "o", "", "write to `file` instead of stdout")
	fs.StringVar(&output, "output", "", "same as -o")
	quiet := fs.Bool("quiet", false, "no progress output")
	if _, err := parse(e, fs, args, 0, 0); err != nil {
		return err
	}
	f := client.ExportFormat(strings.ToLower(*format))
	if f != client.FormatNDJSON && f != client.FormatCSV {
		return usagef(name, "--format %q: want ndjson or csv", *format)
	}
	opts, err := filters.options(name, e.now())
	if err != nil {
		return err
	}
	c, err := conn.client(e, name)
	if err != nil {
		return err
	}

	out := e.stdout
	var tmp *os.File
	if output != "" && output != "-" {
		// Write beside the target and rename at the end, so an interrupted
		// export never leaves a plausible-looking partial file.
		tmp, err = os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*.partial")
		if err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		out = tmp
	}

	var prog *progress
	eo := client.ExportOptions{SearchOptions: opts}
	if !*quiet {
		prog = newProgress(e)
		eo.Progress = prog.update
	}
	n, err := c.Audit().Export(ctx, eo, f, out)
	if prog != nil {
		prog.finish(err == nil)
	}
	if err != nil {
		if errors.Is(err, client.ErrIncompleteExport) {
			return fmt.Errorf("%w; nothing was kept", err)
		}
		return err
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", output, err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("write %s: %w", output, err)
		}
		if err := os.Rename(tmp.Name(), output); err != nil {
			return fmt.Errorf("write %s: %w", output, err)
		}
		tmp = nil
	}
	if *quiet {
		return nil
	}
	dest := "stdout"
	if output != "" && output != "-" {
		dest = output
	}
	fmt.Fprintf(e.stderr, "exported %d events to %s\n", n, dest)
	return nil
}

// progress shows an export's progress on stderr: a bar redrawn in place on
// a terminal, else a plain line every env.progressEvery.
type progress struct {
	w        io.Writer
	terminal bool
	every    time.Duration
	now      func() time.Time
	start    time.Time
	lastDraw time.Time
	last     client.ExportProgress
	printed  client.ExportProgress // what the last plain line showed
	drawn    bool
}

// redrawEvery caps terminal redraws; faster is flicker, not information.
const redrawEvery = 100 * time.Millisecond

const barWidth = 30

func newProgress(e *env) *progress {
	now := e.now()
	return &progress{w: e.stderr, terminal: e.isTerminal(e.stderr), every: e.progressEvery, now: e.now, start: now}
}

func (p *progress) update(u client.ExportProgress) {
	p.last = u
	now := p.now()
	interval := p.every
	if p.terminal {
		interval = redrawEvery
	}
	if p.drawn && now.Sub(p.lastDraw) < interval {
		return
	}
	if !p.terminal && (u.Records == 0 || (p.drawn && u.Records == p.printed.Records && u.Bytes == p.printed.Bytes)) {
		return // a plain log gets no line that tells nothing new
	}
	p.lastDraw, p.drawn = now, true
	p.draw(now, false)
}

// finish draws the final state: the full bar on success, and ends the line.
func (p *progress) finish(ok bool) {
	if p.terminal {
		if p.drawn || ok {
			p.draw(p.now(), true)
			fmt.Fprintln(p.w)
		}
		return
	}
	if ok && (!p.drawn || p.last.Records != p.printed.Records || p.last.Bytes != p.printed.Bytes) {
		p.draw(p.now(), true)
	}
}

func (p *progress) draw(now time.Time, final bool) {
	u := p.last
	elapsed := now.Sub(p.start).Round(100 * time.Millisecond)
	counts := fmt.Sprintf("%d events", u.Records)
	pct := -1.0
	if u.Total >= 0 {
		counts = fmt.Sprintf("%d/%d events", u.Records, u.Total)
		switch {
		case u.Total > 0:
			// Floor, so 2999 of 3000 reads 99%, not a rounded-up 100%.
			pct = math.Floor(min(100, 100*float64(u.Records)/float64(u.Total)))
		case final:
			pct = 100
		}
	}
	if !p.terminal {
		line := "export: " + counts
		if pct >= 0 {
			line += fmt.Sprintf(" (%.0f%%)", pct)
		}
		fmt.Fprintf(p.w, "%s, %s, %s\n", line, formatBytes(u.Bytes), elapsed)
		p.printed = u
		return
	}
	bar := ""
	if pct >= 0 {
		filled := int(pct / 100 * barWidth)
		bar = "[" + strings.Repeat("=", filled)
		if filled < barWidth {
			bar += ">" + strings.Repeat(" ", barWidth-filled-1)
		}
		bar += fmt.Sprintf("] %3.0f%% ", pct)
	}
	// \r returns to the line start and \x1b[K clears what a longer previous
	// line left behind.
	fmt.Fprintf(p.w, "\r%s%s  %s  %s\x1b[K", bar, counts, formatBytes(u.Bytes), elapsed)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
