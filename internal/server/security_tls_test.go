package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestTLSMinimumVersion: with --tls-cert/--tls-key the server speaks TLS
// 1.2 or later only; a TLS 1.1 client is refused in the handshake.
func TestTLSMinimumVersion(t *testing.T) {
	cfg := testConfig(t)
	cfg.TLSCert, cfg.TLSKey, _ = writeSelfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, RunOptions{Listener: ln}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	dial := func(maxVersion uint16) error {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion}) //nolint:gosec // self-signed test certificate
		if err == nil {
			c.Close()
		}
		return err
	}
	// Wait until the server is ready (so that stopping it is clean).
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test certificate
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get("https://" + ln.Addr().String() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready over TLS: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := dial(tls.VersionTLS13); err != nil {
		t.Fatalf("TLS 1.3 refused: %v", err)
	}
	if err := dial(tls.VersionTLS12); err != nil {
		t.Fatalf("TLS 1.2 refused: %v", err)
	}
	if err := dial(tls.VersionTLS11); err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}
