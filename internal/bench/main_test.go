package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// crashChildEnv makes the test binary act as the restart probe's child:
// "<engine>:<dir>".
const crashChildEnv = "AUDITTRAIL_BENCH_TEST_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		engine, dir, _ := strings.Cut(spec, ":")
		if err := RunCrashChild(context.Background(), engine, dir, 1, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testCrashChild starts this test binary as the restart probe's child.
func testCrashChild(engine, dir string, _ uint64) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+engine+":"+dir)
	return cmd
}
