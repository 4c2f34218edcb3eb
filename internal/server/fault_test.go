package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/audittrail/audittrail/client"
)

// stop ends the child with SIGTERM (an orderly shutdown) and waits.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("server did not stop within 60 s of SIGTERM")
	}
}

func childClient(t *testing.T, url string, creds Credentials) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: url, ProjectID: creds.ProjectID, ManagementKey: creds.ManagementKey,
		HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runCheck runs `audittrail check --json` on dataDir (the server stopped).
func runCheck(t *testing.T, bin, dataDir string) CheckResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "check", "--json", "--data-dir", dataDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res CheckResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("audittrail check: %v (%v)\n%s", err, runErr, stderr.String())
	}
	if runErr != nil || !res.OK {
		t.Fatalf("audittrail check found problems (%v): %v", runErr, res.Problems)
	}
	return res
}

// Segment file layout (internal/store/embedded/segment_format.go): a
// blockRows is how many events one event block of the test's segment
// holds: a damaged block loses exactly these. Its 300 small events are too
// few for a zstd dictionary, and such a segment keeps 16-row blocks
// (flushes with a dictionary write 64).
const blockRows = 16

// 24-byte trailer (footer offset u64, section count u32, crc u32, magic)
// after a footer of 20-byte entries (offset u64, length u64, crc u32).
const (
	segTrailer      = 24
	segFooterEntry  = 20
	segBlocksSecion = 8 // the zstd event blocks
)

// damageSegmentBlock flips one byte in the middle of the event blocks of
// the segment file at path.
func damageSegmentBlock(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	footer := binary.LittleEndian.Uint64(b[len(b)-segTrailer:])
	e := b[footer+segBlocksSecion*segFooterEntry:]
	off, n := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
	b[off+n/2] ^= 0x55
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptionThroughServer damages a stopped server's data: one byte of
// an event block of a segment, and a torn record at the end of the log (a
// write cut by kill -9). The server must start, keep every event but the
// damaged block's rows (blockRows), report exactly those (log line with their ids,
// /healthz "degraded" with the file and count, /metrics), never serve
// them, and leave a store that `audittrail check` passes.
func TestCorruptionThroughServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped with -short")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	dataDir, addr := t.TempDir(), freeAddr(t)
	logs, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	srv := startChild(t, bin, dataDir, addr, logs, "--retention-interval", "0")
	creds, err := ReadBootstrap(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := childClient(t, srv.url, creds)
	var stored []string
	batch := func(prefix string, n int) {
		recs := make([]client.Record, n)
		for i := range recs {
			recs[i] = client.Record{ID: fmt.Sprintf("%s-%03d", prefix, i), Action: "FaultTest", ActorID: "a", UserID: fmt.Sprintf("u%d", i%5),
				Data: map[string]any{"i": i, "note": "corruption test"}}
		}
		ids, err := c.Audit().Ingest(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, ids...)
	}
	batch("seg", 300)
	srv.stop(t) // Close writes the events out as a segment
	srv = startChild(t, bin, dataDir, addr, logs, "--retention-interval", "0")
	c = childClient(t, srv.url, creds)
	batch("wal", 50)
	srv.kill(t) // these stay in the log

	segs, _ := filepath.Glob(filepath.Join(dataDir, eventsDir, "segments", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	damageSegmentBlock(t, segs[0])
	wals, _ := filepath.Glob(filepath.Join(dataDir, eventsDir, "wal", "*.wal"))
	var newest string
	for _, w := range wals {
		if st, _ := os.Stat(w); st.Size() > 0 {
			newest = w
		}
	}
	f, err := os.OpenFile(newest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 1, 7}) // a header promising 200 bytes, then the crash
	f.Close()

	logStart, _ := logs.Seek(0, io.SeekEnd)
	srv = startChild(t, bin, dataDir, addr, logs, "--retention-interval", "0", "--log-level", "warn")
	c = childClient(t, srv.url, creds)

	// The log names the segment and every lost event.
	logs.Sync()
	all, _ := os.ReadFile(logs.Name())
	startLog := string(all[logStart:])
	segName := filepath.Join("segments", filepath.Base(segs[0]))
	var lostLine string
	for _, l := range strings.Split(startLog, "\n") {
		if strings.Contains(l, "damaged data: rows lost") && strings.Contains(l, segName) {
			lostLine = l
		}
	}
	if lostLine == "" {
		t.Fatalf("no log line reports the damaged segment:\n%s", startLog)
	}
	if !strings.Contains(startLog, "damaged data repaired") || !strings.Contains(startLog, "log-tail") {
		t.Fatalf("no log line reports the torn log tail:\n%s", startLog)
	}
	m := regexp.MustCompile(`lostIds="([^"]*)"`).FindStringSubmatch(lostLine)
	if m == nil {
		t.Fatalf("the log line names no ids: %s", lostLine)
	}
	lost := map[string]bool{}
	for _, k := range strings.Split(m[1], ", ") {
		_, id, _ := strings.Cut(k, "/")
		lost[id] = true
	}
	if len(lost) != blockRows {
		t.Fatalf("%d ids reported lost, want one block of %d: %s", len(lost), blockRows, lostLine)
	}

	// /healthz and /metrics say so, without naming events.
	code, body := getBody(t, srv.url+"/healthz")
	var health struct {
		Status string `json:"status"`
		Detail struct {
			Store StoreHealth `json:"store"`
		} `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &health); err != nil || code != 200 {
		t.Fatalf("/healthz %d %s: %v", code, body, err)
	}
	if h := health.Detail.Store; health.Status != "degraded" || h.RowsLost != blockRows || len(h.Damaged) != 1 || h.Damaged[0].File != segName {
		t.Fatalf("/healthz = %s, want degraded naming %s and %d rows", body, segName, blockRows)
	}
	for id := range lost {
		if strings.Contains(body, id) {
			t.Fatalf("/healthz names event %s: %s", id, body)
		}
	}
	_, metrics := getBody(t, srv.url+"/metrics")
	for _, want := range []string{
		fmt.Sprintf("audittrail_store_damage_rows_lost{file=%q,kind=\"segment\"} %d", segName, blockRows),
		`audittrail_store_damage_reports{kind="log-tail"} 1`,
		`audittrail_store_damage_reports{kind="segment"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, metrics)
		}
	}

	// Every other event is served, once; the lost ones are not.
	found := exportIDs(t, srv.url, creds)
	for _, id := range stored {
		switch {
		case lost[id] && found[id] > 0:
			t.Fatalf("lost event %s is served", id)
		case !lost[id] && found[id] != 1:
			t.Fatalf("event %s found %d times, want once", id, found[id])
		}
	}
	if len(found) != len(stored)-blockRows {
		t.Fatalf("%d events served, want %d", len(found), len(stored)-blockRows)
	}
	for id := range lost {
		if _, err := c.Audit().Get(ctx, id); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("Get of lost event %s: %v, want not found", id, err)
		}
		break
	}
	srv.stop(t)
	res := runCheck(t, bin, dataDir)
	if res.Embedded.LiveEvents != len(stored)-blockRows || len(res.Damage) != 0 {
		t.Fatalf("check after repair: %d live events, damage %+v; want %d and none", res.Embedded.LiveEvents, res.Damage, len(stored)-blockRows)
	}
	if _, err := os.Stat(segs[0] + ".damaged"); err != nil {
		t.Fatalf("the damaged segment was not kept aside: %v", err)
	}
	t.Logf("damaged block: %d events reported lost by id, %d kept and served once each; torn log tail cut; check passes", blockRows, len(found))
}

// mountSmallFS mounts a tmpfs of size bytes on a fresh directory, or skips
// the test where mounting is not allowed (not root, no CAP_SYS_ADMIN);
// internal/store/embedded's TestDiskFull covers the engine the same way.
func mountSmallFS(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill the disk (%v); needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillDisk writes a file that leaves about leave bytes free in dir's
// filesystem.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(0, free-leave)), 0o644); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return path
}

// TestDiskFullThroughServer runs the server on an 8 MiB filesystem and
// fills it: ingest must answer 503 saying the storage is full, searches
// keep working, nothing acknowledged is lost, nothing is corrupted, and
// ingest resumes by itself, without a restart, once space returns.
func TestDiskFullThroughServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped with -short")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	fs := mountSmallFS(t, 8<<20)
	dataDir, addr := filepath.Join(fs, "data"), freeAddr(t)
	logs, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	srv := startChild(t, bin, dataDir, addr, logs, "--retention-interval", "0")
	creds, err := ReadBootstrap(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := childClient(t, srv.url, creds)
	filler := fillDisk(t, fs, 1<<20)

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		refused  int
		firstErr *client.Error
	)
	pad := strings.Repeat("x", 1000)
	send := func(prefix string, n int) error {
		recs := make([]client.Record, 20)
		for i := range recs {
			recs[i] = client.Record{ID: fmt.Sprintf("%s-%d-%d", prefix, n, i), Action: "DiskFull", ActorID: "a", Data: map[string]any{"pad": pad}}
		}
		ids, err := c.Audit().Ingest(ctx, recs)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			for _, id := range ids {
				acked[id] = true
			}
			return nil
		}
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("ingest on a full disk: %v, want 503", err)
			return err
		}
		refused++
		if firstErr == nil {
			firstErr = apiErr
		}
		return err
	}
	// Four writers until the disk is full and each has been refused a few times.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			fails := 0
			for n := 0; n < 2000 && fails < 5; n++ {
				if send(fmt.Sprintf("w%d", w), n) != nil {
					fails++
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil || len(acked) == 0 {
		t.Fatalf("the disk never filled (%d acknowledged)", len(acked))
	}
	if !strings.Contains(firstErr.Message, "storage is full") {
		t.Fatalf("503 says %q, want it to say the storage is full", firstErr.Message)
	}
	// Reads work on a full disk.
	if _, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{Actions: []string{"DiskFull"}, Size: 10}); err != nil || total != len(acked) {
		t.Fatalf("search on a full disk: total %d, %v; want %d", total, err, len(acked))
	}
	fullAcked := len(acked)

	// Space returns: ingest resumes by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		if send("after", n) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ingest did not resume within 30 s of space returning")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for n := range 20 {
		if err := send("more", n); err != nil {
			t.Fatalf("ingest after recovery: %v", err)
		}
	}
	// A crash now, then everything acknowledged must be there, once.
	srv.kill(t)
	srv = startChild(t, bin, dataDir, addr, logs, "--retention-interval", "0")
	found := map[string]int{}
	for id, n := range exportIDsOf(t, srv.url, creds, "DiskFull") {
		found[id] = n
	}
	missing, twice := compareIDs(t, acked, found)
	if missing > 0 || twice > 0 {
		t.Fatalf("%d acknowledged events lost, %d stored twice", missing, twice)
	}
	srv.stop(t)
	res := runCheck(t, bin, dataDir)
	if res.Embedded.LiveEvents < len(acked) {
		t.Fatalf("check sees %d events, %d acknowledged", res.Embedded.LiveEvents, len(acked))
	}
	t.Logf("8 MiB filesystem: %d events acknowledged before it filled, %d batches refused with 503 %q; resumed without restart; %d acknowledged in all, all found once after kill -9; check passes",
		fullAcked, refused, firstErr.Message, len(acked))
}
