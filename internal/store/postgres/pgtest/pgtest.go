// Package pgtest gives each test its own fresh PostgreSQL database, so that
// tests of several packages can run in parallel against one server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	return NewDatabaseFrom(t, "")
}

// NewDatabaseFrom is NewDatabase with the database copied from template
// (see NewTemplate); "" means the server's default template.
func NewDatabaseFrom(t testing.TB, template string) string {
	t.Helper()
	SkipUnlessEnabled(t)
	name := randomName("audittrail_test_")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := adminConnect(ctx)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", ServerURL(), err)
	}
	defer admin.Close(ctx)
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := admin.Exec(ctx, create); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := DropDatabase(name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	u, err := DatabaseURL(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// NewTemplate creates a database, runs setup on its URL (setup must close
// every connection it opened), and returns its name, for NewDatabaseFrom:
// copying a prepared database is faster than preparing each one. Drop it
// with DropDatabase when done (in TestMain).
func NewTemplate(setup func(url string) error) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := randomName("audittrail_tmpl_")
	admin, err := adminConnect(ctx)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", ServerURL(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	u, err := DatabaseURL(name)
	if err == nil {
		err = setup(u)
	}
	if err != nil {
		_ = DropDatabase(name)
		return "", fmt.Errorf("prepare template: %w", err)
	}
	return name, nil
}

// adminConnect connects to the server's maintenance database: the one in
// the URL, or "postgres" when that one does not exist (a fresh server).
func adminConnect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, ServerURL())
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "3D000" {
		u, uerr := DatabaseURL("postgres")
		if uerr != nil {
			return nil, uerr
		}
		return pgx.Connect(ctx, u)
	}
	return conn, err
}

// DatabaseURL is the URL of database name on the test server.
func DatabaseURL(name string) (string, error) {
	u, err := url.Parse(ServerURL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("AUDITTRAIL_TEST_POSTGRES_URL must be a postgres:// URL, got %q", ServerURL())
	}
	u.Path = "/" + name
	return u.String(), nil
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// DropDatabase drops database name, forcibly, retrying for a while in
// case the server is restarting.
func DropDatabase(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		var admin *pgx.Conn
		admin, err = adminConnect(ctx)
		if err == nil {
			_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			admin.Close(ctx)
			if err == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("drop database %s: %w", name, err)
}
