package httpsink

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestErrorDoesNotEchoCredentials: a destination that answers an error
// repeating the request (headers, basic auth, URL) must not carry the
// credentials into the error, which is logged and shown in health.
func TestErrorDoesNotEchoCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s=%s ", k, strings.Join(v, ","))
		}
		if u, p, ok := r.BasicAuth(); ok {
			fmt.Fprintf(w, "basic %s/%s ", u, p)
		}
		fmt.Fprintf(w, "url=%s", r.URL.String())
	}))
	defer srv.Close()
	const (
		bearer = "bearer-Secret-123"
		apiKey = "api-Key-Secret-456"
		pass   = "basic-Pass-789"
		inURL  = "collectorTokenInPath0123456789"
		inQ    = "query-Token-abc"
	)
	h := http.Header{}
	h.Set("Authorization", "Bearer "+bearer)
	h.Set("X-Api-Key", apiKey)
	h.Set("Content-Type", "application/json")
	_, err := Post(context.Background(), NewClient(false), srv.URL+"/receiver/v1/http/"+inURL+"?token="+inQ, h, []byte(`{}`))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, s := range []string{bearer, apiKey, inURL, inQ} {
		if strings.Contains(msg, s) {
			t.Fatalf("error echoes %q: %s", s, msg)
		}
	}
	if !strings.Contains(msg, "application/json") || !strings.Contains(msg, "[REDACTED]") {
		t.Fatalf("error lost its non-secret content or was not redacted: %s", msg)
	}

	h = http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("user:"+pass)))
	_, err = Post(context.Background(), NewClient(false), srv.URL, h, []byte(`{}`))
	if err == nil || strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte("user:"+pass))) {
		t.Fatalf("basic auth echoed: %v", err)
	}
}
