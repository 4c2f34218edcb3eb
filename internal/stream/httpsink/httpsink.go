// Package httpsink holds what the HTTP destinations (webhook, Splunk,
// Datadog, Sumo Logic) share: a client with optional insecure TLS, one way
// to post and classify the answer, and JSON encoding that keeps the body
// byte-identical to what JavaScript's JSON.stringify would produce for it.
package httpsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/audittrail/audittrail/internal/stream"
)

// ErrRefused wraps a non-2xx answer; errors.As a *StatusError for the code.
var ErrRefused = errors.New("destination refused the batch")

// StatusError is a non-2xx answer. Body is a short, printable excerpt.
type StatusError struct {
	Code int
	Body string
	// Wait is the destination's Retry-After, if it sent one.
	Wait time.Duration
}

// RetryAfter lets the engine wait as long as the destination asked.
func (e *StatusError) RetryAfter() time.Duration { return e.Wait }

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("destination answered %d", e.Code)
	}
	return fmt.Sprintf("destination answered %d: %s", e.Code, e.Body)
}
func (e *StatusError) Unwrap() error { return ErrRefused }

// NewClient returns a client for one connector. insecure turns off TLS
// certificate verification (Descope's `insecure`). There is no client
// timeout: the engine bounds every call with its context.
func NewClient(insecure bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseLinkLocal}
	tr.DialContext = dialer.DialContext
	tr.MaxIdleConnsPerHost = 4
	tr.ResponseHeaderTimeout = time.Minute
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
	}
	return &http.Client{Transport: tr}
}

// ErrForbiddenAddress: a destination resolved to a link-local address.
var ErrForbiddenAddress = errors.New("destination address is link-local (cloud metadata range)")

// refuseLinkLocal stops a connector from reaching 169.254.0.0/16 or
// fe80::/10, where cloud metadata services hand out credentials. It runs
// on the resolved address at connect time, so DNS cannot route around it.
func refuseLinkLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err == nil && (ip.Unmap().IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()) {
		return ErrForbiddenAddress
	}
	return nil
}

// maxReply bounds how much of an answer is read: destinations answer small
// JSON documents and a hostile one must not fill memory.
const maxReply = 64 << 10

// Post sends body to u with the headers and returns the answer's body when
// the status is 2xx. Errors never contain the URL, which may hold a secret
// (a Sumo Logic source URL is one).
func Post(ctx context.Context, c *http.Client, u string, header http.Header, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("build request: invalid URL")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "audittrail")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, scrub(err, req.URL.Host)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, scrub(err, req.URL.Host)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Some services echo the request back in their error, headers and
		// URL included: the excerpt goes to logs and health, so every
		// credential sent is cut out of it first.
		reply = redactEcho(reply, sentSecrets(req))
		return nil, &StatusError{Code: resp.StatusCode, Body: excerpt(reply), Wait: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	// Drain what is left so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxReply))
	return reply, nil
}

// plainHeaders carry nothing secret; their values (application/json…)
// are left alone in an echoed reply.
var plainHeaders = map[string]bool{"Content-Type": true, "Content-Length": true, "Content-Encoding": true,
	"User-Agent": true, "Accept": true, "Accept-Encoding": true}

// sentSecrets lists what req carried that may be a credential: every
// header value but the plain ones, and each word of it (the token of
// "Bearer <token>"), the user and password of basic auth, and the URL's
// user info, path segments and query values (a Sumo Logic URL is itself a
// secret).
func sentSecrets(req *http.Request) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 6 {
			out = append(out, v)
		}
	}
	for k, vs := range req.Header {
		if plainHeaders[k] {
			continue
		}
		for _, v := range vs {
			add(v)
			for _, w := range strings.Fields(v) {
				add(w)
			}
		}
	}
	if user, pass, ok := req.BasicAuth(); ok {
		add(user + ":" + pass)
		add(pass)
	}
	u := req.URL
	if u.User != nil {
		add(u.User.String())
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if len(seg) >= 16 {
			add(seg)
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			add(v)
		}
	}
	add(u.RawQuery)
	return out
}

// redactEcho replaces every secret found in reply, longest first so that
// a value containing another is cut out whole.
func redactEcho(reply []byte, secrets []string) []byte {
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		reply = bytes.ReplaceAll(reply, []byte(s), []byte("[REDACTED]"))
	}
	return reply
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func scrub(err error, host string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, host, ue.Err)
	}
	return err
}

func excerpt(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b))
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Marshal encodes v as compact JSON whose strings carry every character
// literally except those JSON requires escaped, so that a receiver that
// re-serialises the parsed body with JSON.stringify (as Descope's signature
// examples do) gets the same bytes. encoding/json alone cannot: an
// event's MarshalJSON escapes <, > and & whatever the outer encoder says,
// and it always escapes U+2028 and U+2029.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return unescapeLiterals(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// unescapeLiterals rewrites each \uXXXX escape of valid JSON that stands
// for a character JSON allows literally (not a control character, quote,
// backslash or lone surrogate) as that character in UTF-8.
func unescapeLiterals(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 >= len(b) {
			out = append(out, c)
			continue
		}
		if b[i+1] != 'u' || i+6 > len(b) {
			out = append(out, b[i], b[i+1]) // a two-character escape
			i++
			continue
		}
		r, ok := hex4(b[i+2 : i+6])
		width := 6
		if ok && utf16.IsSurrogate(r) {
			ok = false
			if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if lo, ok2 := hex4(b[i+8 : i+12]); ok2 {
					if pair := utf16.DecodeRune(r, lo); pair != utf8.RuneError {
						r, ok, width = pair, true, 12
					}
				}
			}
		}
		if !ok || r < 0x20 || r == '"' || r == '\\' {
			out = append(out, b[i:i+6]...)
			i += 5
			continue
		}
		out = utf8.AppendRune(out, r)
		i += width - 1
	}
	return out
}

func hex4(h []byte) (rune, bool) {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// CheckURL validates a destination URL; field names the config key.
func CheckURL(field, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, stream.Invalid(field, "is required")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, stream.Invalid(field, "must be an absolute http or https URL")
	}
	return u, nil
}
