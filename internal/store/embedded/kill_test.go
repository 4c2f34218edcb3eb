package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const crashChildEnv = "AUDITTRAIL_EMBEDDED_CRASH_CHILD"

// TestKillDuringIngest runs writers in a child process, kills it with
// SIGKILL mid-ingest (torn log writes, interrupted flushes), restarts the
// engine on the same directory and requires every acknowledged event, a
// clean Check, and a usable store; several times over the same data.
func TestKillDuringIngest(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("this is the child process")
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("AUDITTRAIL_EMBEDDED_CRASH_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		deadline := time.Now().Add(time.Second)
		lines := 0
		for sc.Scan() {
			line := sc.Text()
			if ids, ok := strings.CutPrefix(line, "ACK "); ok {
				for _, id := range strings.Fields(ids) {
					acked[id] = true
				}
				lines++
			}
			if lines > 0 && time.Now().After(deadline) {
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if lines == 0 {
			t.Fatalf("round %d: the child acknowledged nothing", round)
		}

		e := openT(t, dir, small)
		for id := range acked {
			if _, err := e.Get(context.Background(), "c1", id); err != nil {
				t.Fatalf("round %d: acknowledged event %s lost: %v", round, id, err)
			}
		}
		rep, err := e.Check(context.Background())
		if err != nil {
			t.Fatalf("round %d: Check: %v\n%v", round, err, rep.Problems)
		}
		if rep.LiveEvents < len(acked) {
			t.Fatalf("round %d: %d live events, %d acknowledged", round, rep.LiveEvents, len(acked))
		}
		t.Logf("round %d: %d acknowledged, %d live (unacknowledged ones may survive), %d segments",
			round, len(acked), rep.LiveEvents, rep.Segments)
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashChild is the child of TestKillDuringIngest: it appends until
// killed and prints the ids of every acknowledged batch.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestKillDuringIngest")
	}
	e, err := Open(Options{Dir: dir, Logger: quiet, MemtableEvents: 1000})
	if err != nil {
		fmt.Printf("OPEN %v\n", err)
		os.Exit(1)
	}
	round := os.Getenv("AUDITTRAIL_EMBEDDED_CRASH_ROUND")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen(uint64(w) + 100)
			for i := 0; ; i++ {
				b := g.batch(1 + i%40)
				ids := make([]string, len(b))
				for j := range b {
					b[j].CompanyID = "c1"
					b[j].ID = fmt.Sprintf("r%s-w%d-%d-%d", round, w, i, j)
					ids[j] = b[j].ID
				}
				if err := e.Append(context.Background(), b); err != nil {
					fmt.Printf("ERR %v\n", err)
					return
				}
				mu.Lock()
				fmt.Printf("ACK %s\n", strings.Join(ids, " "))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
