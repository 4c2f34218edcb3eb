// Command audittrail is the audit-trail service (`audittrail serve`) and its
// command-line client (search, export, emit, projects, keys).
package main

import (
	"context"
	"os"

	"github.com/audittrail/audittrail/internal/cli"
	"github.com/audittrail/audittrail/internal/server"
)

func main() {
	ctx := context.Background()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		os.Exit(server.Main(ctx, args[1:], os.Stdout, os.Stderr))
	}
	if len(args) > 0 && args[0] == "check" {
		os.Exit(server.CheckMain(ctx, args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(cli.Main(ctx, args, os.Stdout, os.Stderr))
}
