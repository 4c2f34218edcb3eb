package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// PrivateServer is a PostgreSQL server of one test's own, in a temporary
// directory on a free port: stopping it disturbs no other test using the
// shared server. It needs the server binaries (initdb, pg_ctl).
type PrivateServer struct {
	bin, dir string
	port     int
	asUser   []string // runuser prefix when running as root (postgres refuses root)
}

// StartPrivateServer initialises and starts a private server, stopped
// when t ends. It skips t unless integration tests are enabled or when
// the server binaries are missing.
func StartPrivateServer(t testing.TB) *PrivateServer {
	t.Helper()
	SkipUnlessEnabled(t)
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if p, err := exec.LookPath("initdb"); err == nil {
		bins = append([]string{filepath.Dir(p)}, bins...)
	}
	if len(bins) == 0 {
		t.Skip("needs the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
	}
	s := &PrivateServer{bin: bins[len(bins)-1]}
	s.dir = t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("runs as root and needs a postgres user to run the server as")
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
	t.Cleanup(func() { _ = s.Stop() })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *PrivateServer) run(name string, args ...string) ([]byte, error) {
	cmd := append(append([]string{}, s.asUser...), filepath.Join(s.bin, name))
	return exec.Command(cmd[0], append(cmd[1:], args...)...).CombinedOutput()
}

func (s *PrivateServer) pgctl(action string) error {
	args := []string{"-D", filepath.Join(s.dir, "data"), "-w", "-m", "fast", "-l", filepath.Join(s.dir, "log")}
	if action == "start" {
		args = append(args, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.port, s.dir))
	}
	if out, err := s.run("pg_ctl", append(args, action)...); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", action, err, out)
	}
	return nil
}

// Start starts the server and waits until it accepts connections.
func (s *PrivateServer) Start() error { return s.pgctl("start") }

// Stop stops it (fast shutdown: sessions are ended).
func (s *PrivateServer) Stop() error { return s.pgctl("stop") }

// URL is the URL of its postgres database.
func (s *PrivateServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}
