// Command audittrail-load holds a mixed load against an audittrail server
// for a while and prints throughput, latency percentiles, errors and the
// server's memory over time.
//
//	go run ./cmd/audittrail-load                       # starts its own server, 10 minutes
//	go run ./cmd/audittrail-load --duration 30s --every 5s
//	go run ./cmd/audittrail-load --url http://127.0.0.1:8080 --data-dir ./data --pid $(pgrep -n audittrail)
//
// Run with --help for every flag.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/audittrail/audittrail/internal/server"
)

func main() {
	// The server this program starts for itself is this same binary run
	// again with childEnv set: a separate process whose memory can be read
	// from /proc, with nothing to build first.
	if os.Getenv(childEnv) == "serve" {
		os.Exit(server.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
