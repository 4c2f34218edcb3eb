package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func loadArgs(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	return Load(Sources{Args: args, Getenv: func(string) (string, bool) { return "", false }})
}

// Every connection has a deadline: the timeouts default to finite values
// and cannot be turned off.
func TestConnectionTimeouts(t *testing.T) {
	c, err := loadArgs(t)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]time.Duration{"read-header": c.ReadHeaderTimeout, "read": c.ReadTimeout, "write": c.WriteTimeout, "idle": c.IdleTimeout} {
		if d <= 0 || d > 10*time.Minute {
			t.Errorf("default %s timeout %s", name, d)
		}
	}
	c, err = loadArgs(t, "--read-header-timeout", "2s", "--idle-timeout", "30s")
	if err != nil || c.ReadHeaderTimeout != 2*time.Second || c.IdleTimeout != 30*time.Second {
		t.Fatalf("set timeouts: %+v %v", c, err)
	}
	for _, flag := range []string{"--read-header-timeout", "--read-timeout", "--write-timeout", "--idle-timeout"} {
		if _, err := loadArgs(t, flag, "0s"); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(flag, "--")) {
			t.Errorf("%s 0s: %v", flag, err)
		}
	}
}

// CORS is off unless origins are listed one by one.
func TestCORSOrigins(t *testing.T) {
	c, err := loadArgs(t)
	if err != nil || len(c.CORSOrigins) != 0 {
		t.Fatalf("default CORS origins %q, %v", c.CORSOrigins, err)
	}
	c, err = loadArgs(t, "--cors-origins", " https://a.example.com, http://localhost:3000 ,")
	if err != nil || !slices.Equal(c.CORSOrigins, []string{"https://a.example.com", "http://localhost:3000"}) {
		t.Fatalf("origins %q, %v", c.CORSOrigins, err)
	}
	for _, bad := range []string{"*", "a.example.com", "https://a.example.com/", "https://u:p@a.example.com", "https://a.example.com?x=1", "javascript:alert(1)"} {
		if _, err := loadArgs(t, "--cors-origins", bad); err == nil {
			t.Errorf("--cors-origins %q accepted", bad)
		}
	}
}
