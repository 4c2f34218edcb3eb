package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args []string, env map[string]string, files map[string]string) (Config, error) {
	t.Helper()
	return Load(Sources{
		Args: args,
		Getenv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		ReadFile: func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
		},
	})
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./data" || c.SearchRateLimit != 10 ||
		c.Store != StoreEmbedded || c.LogFormat != "text" || c.LogLevel != slog.LevelInfo {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	files := map[string]string{
		"/etc/a.json": `{"addr":"127.0.0.1:1001","data-dir":"/file","search-rate-limit":3,"log-level":"debug"}`,
	}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantDir  string
		wantRate int
	}{
		{"file only", []string{"--config", "/etc/a.json"}, nil, "127.0.0.1:1001", "/file", 3},
		{"file from env", nil, map[string]string{"AUDITTRAIL_CONFIG": "/etc/a.json"}, "127.0.0.1:1001", "/file", 3},
		{"env beats file", []string{"--config", "/etc/a.json"},
			map[string]string{"AUDITTRAIL_DATA_DIR": "/env", "AUDITTRAIL_SEARCH_RATE_LIMIT": "7"}, "127.0.0.1:1001", "/env", 7},
		{"flag beats env and file", []string{"--config", "/etc/a.json", "--data-dir", "/flag", "--search-rate-limit=0"},
			map[string]string{"AUDITTRAIL_DATA_DIR": "/env", "AUDITTRAIL_ADDR": "127.0.0.1:2002"}, "127.0.0.1:2002", "/flag", 0},
		{"env beats default", nil, map[string]string{"AUDITTRAIL_ADDR": "127.0.0.1:3003"}, "127.0.0.1:3003", "./data", 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.args, tc.env, files)
			if err != nil {
				t.Fatal(err)
			}
			if c.Addr != tc.wantAddr || c.DataDir != tc.wantDir || c.SearchRateLimit != tc.wantRate {
				t.Fatalf("got addr=%s dir=%s rate=%d", c.Addr, c.DataDir, c.SearchRateLimit)
			}
		})
	}
}

func TestSecretsFromFileAndRedacted(t *testing.T) {
	const url = "postgres://u:hunter2@127.0.0.1/test"
	files := map[string]string{"/run/pg": url + "\n"}
	c, err := load(t, []string{"--store", "postgres"}, map[string]string{"AUDITTRAIL_POSTGRES_URL_FILE": "/run/pg"}, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.PostgresURL.Reveal() != url {
		t.Fatalf("postgres url %q", c.PostgresURL.Reveal())
	}
	// A flag pointing at a file wins over the env variable.
	files["/run/pg2"] = "postgres://other"
	c, err = load(t, []string{"--store", "postgres", "--postgres-url-file", "/run/pg2"},
		map[string]string{"AUDITTRAIL_POSTGRES_URL": url}, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.PostgresURL.Reveal() != "postgres://other" {
		t.Fatalf("postgres url %q", c.PostgresURL.Reveal())
	}

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c, "url", c.PostgresURL)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", c)
	fmt.Fprintf(&buf, "%v %s %+v", c.PostgresURL, c.PostgresURL, c)
	if strings.Contains(buf.String(), "hunter2") || strings.Contains(buf.String(), "postgres://other") {
		t.Fatalf("secret leaked: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Fatalf("no redaction marker: %s", buf.String())
	}
}

func TestInvalid(t *testing.T) {
	files := map[string]string{
		"/typo.json":  `{"adr":"x"}`,
		"/trail.json": `{"addr":"127.0.0.1:1"} {}`,
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--store", "mysql"}, nil, "store must be"},
		{[]string{"--store", "postgres"}, nil, "needs --postgres-url"},
		{[]string{"--search-rate-limit", "-1"}, nil, "search-rate-limit"},
		{[]string{"--search-rate-limit", "ten"}, nil, "whole number"},
		{nil, map[string]string{"AUDITTRAIL_SEARCH_RATE_LIMIT": "x"}, "AUDITTRAIL_SEARCH_RATE_LIMIT"},
		{[]string{"--addr", "nope"}, nil, "addr"},
		{[]string{"--log-format", "xml"}, nil, "log-format"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--tls-cert", "c.pem"}, nil, "together"},
		{[]string{"--retention-interval", "soon"}, nil, "duration"},
		{[]string{"--config", "/typo.json"}, nil, `unknown setting "adr"`},
		{[]string{"--config", "/trail.json"}, nil, "trailing"},
		{[]string{"--config", "/missing.json"}, nil, "not exist"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--bogus"}, nil, "bogus"},
	} {
		_, err := load(t, tc.args, tc.env, files)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: got %v, want ErrInvalid containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestDurationsAndRateSuffix(t *testing.T) {
	c, err := load(t, []string{"--retention-interval", "15m", "--search-rate-limit", "20/min", "--log-format", "json"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RetentionInterval != 15*time.Minute || c.SearchRateLimit != 20 || c.LogFormat != "json" {
		t.Fatalf("%+v", c)
	}
}

func TestHelp(t *testing.T) {
	var buf bytes.Buffer
	_, err := Load(Sources{Args: []string{"-h"}, Getenv: func(string) (string, bool) { return "", false }, Usage: &buf})
	if !errors.Is(err, ErrHelp) || !strings.Contains(buf.String(), "--data-dir") && !strings.Contains(buf.String(), "-data-dir") {
		t.Fatalf("err=%v usage=%s", err, buf.String())
	}
}

func TestStreamAutoPauseAfter(t *testing.T) {
	c, err := load(t, nil, nil, nil)
	if err != nil || c.StreamAutoPauseAfter != 7*24*time.Hour {
		t.Fatalf("default: %s, %v", c.StreamAutoPauseAfter, err)
	}
	c, err = load(t, nil, map[string]string{"AUDITTRAIL_STREAM_AUTO_PAUSE_AFTER": "36h"}, nil)
	if err != nil || c.StreamAutoPauseAfter != 36*time.Hour {
		t.Fatalf("from the environment: %s, %v", c.StreamAutoPauseAfter, err)
	}
	if _, err := load(t, []string{"--stream-auto-pause-after", "5s"}, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("5s accepted: %v", err)
	}
}

func TestLedgerSettings(t *testing.T) {
	c, err := load(t, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Ledger || c.CheckpointInterval != time.Second || c.LedgerKeyFile != "" {
		t.Fatalf("ledger defaults: ledger=%v interval=%s key=%q", c.Ledger, c.CheckpointInterval, c.LedgerKeyFile)
	}
	c, err = load(t, []string{"--ledger=false", "--checkpoint-interval", "250ms", "--ledger-key-file", "/k"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ledger || c.CheckpointInterval != 250*time.Millisecond || c.LedgerKeyFile != "/k" {
		t.Fatalf("ledger flags: ledger=%v interval=%s key=%q", c.Ledger, c.CheckpointInterval, c.LedgerKeyFile)
	}
	c, err = load(t, []string{"--ledger"}, map[string]string{"AUDITTRAIL_LEDGER": "false"}, nil)
	if err != nil || !c.Ledger {
		t.Fatalf("a bare --ledger must win over the environment: ledger=%v err=%v", c.Ledger, err)
	}
	c, err = load(t, []string{"--config", "/c.json"}, nil, map[string]string{"/c.json": `{"ledger":false}`})
	if err != nil || c.Ledger {
		t.Fatalf("config file ledger=false: ledger=%v err=%v", c.Ledger, err)
	}
	for _, args := range [][]string{{"--ledger=maybe"}, {"--checkpoint-interval", "1ms"}} {
		if _, err := load(t, args, nil, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%v: want ErrInvalid, got %v", args, err)
		}
	}
}
