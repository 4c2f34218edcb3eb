// Package pgtest gives each test its own fresh PostgreSQL database, so that
// tests of several packages can run in parallel against one server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is used when AUDITTRAIL_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Enabled reports whether integration tests were asked for.
func Enabled() bool { return os.Getenv("AUDITTRAIL_INTEGRATION") == "1" }

// SkipUnlessEnabled skips t unless AUDITTRAIL_INTEGRATION=1.
func SkipUnlessEnabled(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Skip("PostgreSQL integration test: set AUDITTRAIL_INTEGRATION=1 (server from AUDITTRAIL_TEST_POSTGRES_URL, default " + DefaultURL + ")")
	}
}

// ServerURL is the URL of the test server's maintenance database.
func ServerURL() string {
	if u := os.Getenv("AUDITTRAIL_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database audittrail_test_<random>, drops it
// (forcibly) when the test ends, and returns its URL. It skips t unless
// integration tests are enabled, and fails t if the server is unreachable.
func NewDatabase(t testing.TB) string {
	t.Helper()
	SkipUnlessEnabled(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "audittrail_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", ServerURL(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(t, name) })

	u, err := url.Parse(ServerURL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: AUDITTRAIL_TEST_POSTGRES_URL must be a postgres:// URL, got %q", ServerURL())
	}
	u.Path = "/" + name
	return u.String()
}

func dropDatabase(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The server may be restarting (fault tests): retry for a while.
	var err error
	for ctx.Err() == nil {
		var admin *pgx.Conn
		admin, err = pgx.Connect(ctx, ServerURL())
		if err == nil {
			_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			admin.Close(ctx)
			if err == nil {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("pgtest: drop database %s: %v", name, err)
}
