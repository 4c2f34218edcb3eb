//go:build unix

package filelock

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLockIsExclusiveAcrossProcesses: flock locks belong to open file
// descriptions, so a second process is refused while the first holds the
// lock, and is let in once it is released.
func TestLockIsExclusiveAcrossProcesses(t *testing.T) {
	if os.Getenv("FILELOCK_CHILD") != "" {
		if _, err := Lock(os.Getenv("FILELOCK_CHILD")); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "LOCK")
	child := func() int {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockIsExclusiveAcrossProcesses$")
		cmd.Env = append(os.Environ(), "FILELOCK_CHILD="+path)
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	unlock, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if code := child(); code != 3 {
		t.Fatalf("a second process took the held lock (exit %d)", code)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if code := child(); code != 0 {
		t.Fatalf("a second process was refused a released lock (exit %d)", code)
	}
}
