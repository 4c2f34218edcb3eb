// Package cli implements the client subcommands of the audittrail binary
// (search, export, emit, projects, keys) on top of the public Go SDK.
package cli

import (
	"context"
	"fmt"
	"io"
)

// Main runs one client subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "audittrail: unknown command %q\n", args)
	return 2
}
