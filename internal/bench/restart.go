package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
)

// The restart probe: a child process opens the engine on the loaded data,
// appends batches and reports each acknowledged one; the run kills it with
// SIGKILL mid-stream, then times opening the engine again until a first
// search answers, and checks that every acknowledged event survived.

// crashProjectID marks the child's events, so one query counts them.
const crashProjectID = "P2crashprobe00000000000000000"

// persistent is implemented by engines whose data lives in their Dir and
// survives the process: only they can be killed and reopened.
type persistent interface {
	PersistentDir() string
}

// PersistentDir is the engine's directory when it keeps its data there.
func (s *StoreEngine) PersistentDir() string { return s.Dir }

// RunCrashChild is the child's side of the restart probe: open the engine
// on dir and append batches until killed, writing "acked N" to out after
// each batch is acknowledged, N counting the child's events so far. The
// command-line program runs it when started with its hidden crash-child
// flags; tests run it from TestMain.
func RunCrashChild(ctx context.Context, engine, dir string, seed uint64, out io.Writer) error {
	eng, err := OpenEngine(ctx, engine, EngineConfig{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer eng.Close()
	// Fresh IDs far above any trail's, so that nothing is a duplicate.
	gen, err := NewGenerator(GenOptions{Events: 1 << 30, Seed: seed, End: time.Now().UnixMilli(), Span: time.Hour,
		FirstIndex: 1 << 40})
	if err != nil {
		return err
	}
	buf := make([]event.Event, 1000)
	acked := 0
	for ctx.Err() == nil {
		batch := gen.Fill(buf)
		for i := range batch {
			batch[i].Level, batch[i].ProjectID = event.LevelProject, crashProjectID
		}
		if err := eng.Append(ctx, batch); err != nil {
			return err
		}
		acked += len(batch)
		if _, err := fmt.Fprintf(out, "acked %d\n", acked); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// runRestart kills a child appending to the engine's directory and times
// the reopen. The engine must be closed.
func runRestart(ctx context.Context, name, dir string, opts Options, er *EngineReport) error {
	cmd := opts.CrashChild(name, dir, opts.Seed)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start crash child: %w", err)
	}
	acks := make(chan int, 1024)
	go func() {
		defer close(acks)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
				acks <- n
			}
		}
	}()
	acked := 0
	deadline := time.After(opts.CrashAfter + 2*time.Minute) // the child's own open may replay a log
	var killAt <-chan time.Time
	for killed := false; !killed; {
		select {
		case n, ok := <-acks:
			if !ok {
				_ = cmd.Wait()
				return fmt.Errorf("crash child exited before it was killed: %s", strings.TrimSpace(stderr.String()))
			}
			if acked == 0 {
				killAt = time.After(opts.CrashAfter)
			}
			acked = n
		case <-killAt:
			killed = true
		case <-deadline:
			killed = true
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return ctx.Err()
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to flush or close
		return fmt.Errorf("kill crash child: %w", err)
	}
	_ = cmd.Wait()
	// Acknowledgements written just before the kill may still be in the pipe.
	for n := range acks {
		acked = n
	}
	if acked == 0 {
		return errors.New("crash child acknowledged nothing before it was killed")
	}

	start := time.Now()
	eng, err := OpenEngine(ctx, name, EngineConfig{Dir: dir, Logger: opts.Logger})
	if err != nil {
		return fmt.Errorf("reopen after kill -9: %w", err)
	}
	defer eng.Close()
	res, err := eng.Search(ctx, query.Query{CompanyID: genCompanyID, ProjectID: crashProjectID, IncludeProject: true, Size: 1})
	if err != nil {
		return fmt.Errorf("search after kill -9: %w", err)
	}
	er.RestartSeconds = time.Since(start).Seconds()
	er.RestartAcked = acked
	er.RestartFound = res.Total
	return nil
}
