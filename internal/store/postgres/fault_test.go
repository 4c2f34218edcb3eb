package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/postgres/pgtest"
)

// privateServer is a PostgreSQL server of this test's own, in a temporary
// directory on a free port: stopping it disturbs no other test using the
// shared server.
type privateServer struct {
	bin, dir string
	port     int
	asUser   []string // runuser prefix when running as root (postgres refuses root)
}

func startPrivateServer(t *testing.T) *privateServer {
	t.Helper()
	pgtest.SkipUnlessEnabled(t)
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if p, err := exec.LookPath("initdb"); err == nil {
		bins = append([]string{filepath.Dir(p)}, bins...)
	}
	if len(bins) == 0 {
		t.Skip("fault test needs the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
	}
	s := &privateServer{bin: bins[len(bins)-1]}
	s.dir = t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("fault test runs as root and needs a postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{filepath.Dir(s.dir), s.dir} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		s.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if out, err := s.run("initdb", "-D", filepath.Join(s.dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() { s.pgctl("stop") })
	if err := s.pgctl("start"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *privateServer) run(name string, args ...string) ([]byte, error) {
	cmd := append(append([]string{}, s.asUser...), filepath.Join(s.bin, name))
	return exec.Command(cmd[0], append(cmd[1:], args...)...).CombinedOutput()
}

func (s *privateServer) pgctl(action string) error {
	args := []string{"-D", filepath.Join(s.dir, "data"), "-w", "-m", "fast", "-l", filepath.Join(s.dir, "log")}
	if action == "start" {
		args = append(args, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.port, s.dir))
	}
	if out, err := s.run("pg_ctl", append(args, action)...); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", action, err, out)
	}
	return nil
}

func (s *privateServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// TestServerRestart stops the server (a private one) for a moment: every
// call must fail with store.ErrUnavailable while it is down, and the same
// DB must work again once it is back, with nothing acknowledged lost.
func TestServerRestart(t *testing.T) {
	srv := startPrivateServer(t)
	dbURL := srv.url()
	db, err := Open(context.Background(), Options{URL: dbURL, MaxConns: 4, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := db.Store()
	mk := func(id string) []event.Event {
		return []event.Event{{ID: id, CompanyID: "c", ProjectID: "p", Level: event.LevelProject, Action: "A",
			Type: event.TypeInfo, Occurred: time.Now().UnixMilli()}}
	}
	if err := st.Append(context.Background(), mk("before")); err != nil {
		t.Fatal(err)
	}

	if err := srv.pgctl("stop"); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := query.Query{CompanyID: "c", ProjectID: "p", IncludeProject: true, Size: 10}
	for name, call := range map[string]func() error{
		"Append":   func() error { return st.Append(ctx, mk("during")) },
		"Search":   func() error { _, err := st.Search(ctx, q); return err },
		"Get":      func() error { _, err := st.Get(ctx, "c", "before"); return err },
		"ReadFrom": func() error { _, err := st.ReadFrom(ctx, 0, 10); return err },
		"Delete":   func() error { _, err := st.DeleteBefore(ctx, "c", 1); return err },
		"Company":  func() error { _, err := db.Directory().Company(ctx, "c"); return err },
		"Limiter":  func() error { _, err := db.Limiter().Allow(ctx, "k", 1, time.Second); return err },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while the server is down: %v, want ErrUnavailable", name, err)
		}
	}
	if err := srv.pgctl("start"); err != nil {
		t.Fatal(err)
	}
	t.Logf("server down for %v", time.Since(down).Round(time.Millisecond))

	// The same pool recovers by itself: no reopen.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := st.Append(context.Background(), mk("after"))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("append after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err := st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range res.Events {
		ids = append(ids, e.ID)
	}
	// "during" was refused, so it must not be there; "before" was
	// acknowledged, so it must.
	if strings.Join(ids, ",") != "after,before" && strings.Join(ids, ",") != "before,after" {
		t.Fatalf("after restart the store holds %v, want before and after", ids)
	}
}
