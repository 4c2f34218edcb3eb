// Package client is the Go SDK of audittrail: search, export and ingest audit
// events, and manage projects, management keys and company settings.
//
// It imports only the standard library. It speaks the same wire format as
// Descope's audit management API, so it also works against Descope for the
// calls Descope offers (search, create event).
//
//	c, err := client.New(client.Config{
//		BaseURL:       "http://127.0.0.1:8080",
//		ProjectID:     "P2abc…",
//		ManagementKey: "K…secret",
//	})
//	records, total, err := c.Audit().SearchAll(ctx, client.SearchOptions{Actions: []string{"LoginFailed"}})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Version is sent in the User-Agent header.
const Version = "0.1.0"

// DefaultBaseURL is where `audittrail serve` listens unless told otherwise.
const DefaultBaseURL = "http://127.0.0.1:8080"

// maxErrorBody bounds how much of an error response is read: a proxy's HTML
// error page must not be buffered whole.
const maxErrorBody = 64 << 10

// ErrConfig is returned by New for an unusable Config.
var ErrConfig = errors.New("audittrail client: invalid config")

// Config says where the server is and how to authenticate.
type Config struct {
	// BaseURL is the server's root, e.g. "http://127.0.0.1:8080"; a path
	// prefix is kept (for a server behind a reverse proxy). Empty means
	// DefaultBaseURL.
	BaseURL string
	// ProjectID scopes the calls to one project. Admin calls (projects, keys,
	// settings) work without it.
	ProjectID string
	// ManagementKey is the full key, "K<id>.<secret>".
	ManagementKey string
	// HTTPClient is used for every call; nil means a client without an
	// overall timeout (exports may stream for minutes), so pass deadlines
	// through the context.
	HTTPClient *http.Client
	// UserAgent is appended to the default User-Agent.
	UserAgent string
}

// Client is safe for concurrent use.
type Client struct {
	base       *url.URL
	projectID  string
	key        string
	httpClient *http.Client
	userAgent  string
}

// New checks cfg and returns a client. It does not contact the server.
func New(cfg Config) (*Client, error) {
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL %q: %w", ErrConfig, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: base URL %q must be http(s)://host[:port][/prefix]", ErrConfig, raw)
	}
	if strings.ContainsAny(cfg.ProjectID, ": \t\r\n") {
		return nil, fmt.Errorf("%w: project ID holds a colon or white space", ErrConfig)
	}
	if strings.ContainsAny(cfg.ManagementKey, " \t\r\n") {
		return nil, fmt.Errorf("%w: management key holds white space", ErrConfig)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	ua := "audittrail-go/" + Version
	if cfg.UserAgent != "" {
		ua += " " + cfg.UserAgent
	}
	return &Client{base: u, projectID: cfg.ProjectID, key: cfg.ManagementKey, httpClient: hc, userAgent: ua}, nil
}

// ProjectID is the project the client is scoped to ("" for none).
func (c *Client) ProjectID() string { return c.projectID }

// Audit gives the audit event calls.
func (c *Client) Audit() *Audit { return &Audit{c: c} }

// Projects gives the admin calls on projects.
func (c *Client) Projects() *Projects { return &Projects{c: c} }

// Keys gives the admin calls on management keys.
func (c *Client) Keys() *Keys { return &Keys{c: c} }

// Settings gives the admin calls on company settings.
func (c *Client) Settings() *Settings { return &Settings{c: c} }

// authorization is Descope's scheme: "Bearer <projectId>:<key>", or just the
// key for admin calls when no project is configured.
func (c *Client) authorization() string {
	if c.projectID == "" {
		return "Bearer " + c.key
	}
	return "Bearer " + c.projectID + ":" + c.key
}

// newRequest builds a request to path (which may carry a query), with a JSON
// body when in is not nil.
func (c *Client) newRequest(ctx context.Context, method, path string, in any) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", c.authorization())
	req.Header.Set("User-Agent", c.userAgent)
	if c.projectID != "" {
		// Descope's SDKs send it too; the server does not need it.
		req.Header.Set("x-descope-project-id", c.projectID)
	}
	return req, nil
}

// send performs req and returns the response when its status is 2xx; any
// other status is turned into an *Error and the body closed.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// call sends a JSON request and decodes a JSON answer into out (when not
// nil). An empty 2xx body is accepted: Descope answers createEvent so.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	req, err := c.newRequest(ctx, method, path, in)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w: %w", method, path, ErrInvalidResponse, err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
