package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/ledger/ledgertest"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/embedded"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// A crash leaves half-written records after the committed data: torn
// node and seq records, a torn manifest record. Recovery drops them and
// the store goes on from the committed state.
func TestFileStoreRecoversTornWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	b := ledgertest.NewBuilder()
	for range 3 {
		if err := s.Commit(context.Background(), b.Next(map[ledger.TreeID]int{tr: 13})); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	treeDir := filepath.Join(dir, "trees", fmt.Sprintf("%x", tr.String()))
	for _, f := range []struct {
		name string
		junk []byte
	}{
		{filepath.Join(treeDir, "nodes"), bytes.Repeat([]byte{0xAB}, 36*3+7)},
		{filepath.Join(treeDir, "seqs"), bytes.Repeat([]byte{0xCD}, 12*2+5)},
		{filepath.Join(dir, "manifest.log"), []byte{40, 0, 0, 0, 1, 2, 3, 4, '{', '"'}},
		{filepath.Join(treeDir, "cp.idx"), []byte{1, 2, 3}},
	} {
		fh, err := os.OpenFile(f.name, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.Write(f.junk)
		fh.Close()
	}
	s, err = ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatalf("reopen after torn writes: %v", err)
	}
	defer s.Close()
	b.Check(t, s)
	if err := s.Commit(context.Background(), b.Next(map[ledger.TreeID]int{tr: 40})); err != nil {
		t.Fatal(err)
	}
	b.Check(t, s)
}

// Damage under a committed record is reported, never served.
func TestFileStoreDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	s, err := ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	b := ledgertest.NewBuilder()
	if err := s.Commit(context.Background(), b.Next(map[ledger.TreeID]int{tr: 6})); err != nil {
		t.Fatal(err)
	}
	s.Close()
	nodes := filepath.Join(dir, "trees", fmt.Sprintf("%x", tr.String()), "nodes")
	flipByte(t, nodes, 3) // leaf 0's hash; not a peak of a 6-leaf tree
	s, err = ledger.OpenFileStore(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := s.Nodes(context.Background(), tr, []compact.NodeID{compact.NewNodeID(0, 0)}); !errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("read of a damaged node: %v, want ErrCorrupt", err)
	}
	s.Close()
	// Damage to a peak (the 4-leaf subtree, post-order position 6) changes
	// the root: refused at open.
	flipByte(t, nodes, 6*36+1)
	if s, err := ledger.OpenFileStore(dir); !errors.Is(err, ledger.ErrCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with a damaged peak: %v, want ErrCorrupt", err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestAppenderSurvivesKill9 runs the appender over the embedded store in a
// child process, kills it with SIGKILL at random moments while events keep
// arriving, and checks after each restart that every tree holds exactly
// the store's events in Seq order: none skipped, none appended twice.
func TestAppenderSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(5, 6))
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LEDGER_CRASH_DIR="+dir, "LEDGER_CRASH_ROUND="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child appended something, then kill it mid-flight.
		sc := bufio.NewScanner(stdout)
		ready := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "APPENDING") {
				ready = true
				break
			}
		}
		if !ready {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child never started appending", round)
		}
		time.Sleep(time.Duration(50+rnd.IntN(300)) * time.Millisecond)
		cmd.Process.Kill()
		go io.Copy(io.Discard, stdout)
		cmd.Wait()
		checkCrashDir(t, dir, round)
	}
}

// checkCrashDir restarts on the data a killed child left and compares
// every tree with the store.
func checkCrashDir(t *testing.T, dir string, round int) {
	t.Helper()
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "events")})
	if err != nil {
		t.Fatalf("round %d: reopen store: %v", round, err)
	}
	defer st.Close()
	trees, err := ledger.OpenFileStore(filepath.Join(dir, "ledger"))
	if err != nil {
		t.Fatalf("round %d: reopen ledger: %v", round, err)
	}
	defer trees.Close()
	e := newCrashEnv(t, dir, st, trees)
	e.sync(t)
	e.l.Close()
	exports := byTree(t, st)
	total := 0
	for tr, lines := range exports {
		ts, err := trees.Tree(context.Background(), tr)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Size != uint64(len(lines)) {
			t.Fatalf("round %d: tree %s has %d leaves, the store %d events", round, tr, ts.Size, len(lines))
		}
		if root := ledger.RootFromLeaves(leavesOf(t, lines)); !bytes.Equal(root, ts.Root) {
			t.Fatalf("round %d: tree %s root differs from the store's events in Seq order", round, tr)
		}
		total += len(lines)
	}
	if total == 0 {
		t.Fatalf("round %d: no events stored", round)
	}
	t.Logf("round %d: %d events in %d trees verified after kill -9", round, total, len(exports))
}

// TestCrashChild is the child process of TestAppenderSurvivesKill9.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("LEDGER_CRASH_DIR")
	if dir == "" {
		t.Skip("only run by TestAppenderSurvivesKill9")
	}
	round, _ := strconv.Atoi(os.Getenv("LEDGER_CRASH_ROUND"))
	st, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "events")})
	if err != nil {
		t.Fatal(err)
	}
	trees, err := ledger.OpenFileStore(filepath.Join(dir, "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	e := newCrashEnv(t, dir, st, trees, func(o *ledger.Options) { o.ReadLimit = 37 })
	for i := 0; ; i++ {
		evs := storetest.Generate(uint64(1000*round+i), 60, storetest.GenOptions{})
		if err := st.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
		e.l.Notify()
		if i == 2 {
			e.sync(t)
			fmt.Println("APPENDING")
		}
	}
}

// newCrashEnv keeps the key with the data, as a deployment does.
func newCrashEnv(t *testing.T, dir string, st store.Store, trees ledger.TreeStore, mod ...func(*ledger.Options)) *env {
	signer, vkey, err := ledger.LoadOrCreateKey(filepath.Join(dir, "ledger.key"), "test-log")
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWithKey(t, st, trees, signer, vkey, mod...)
}
