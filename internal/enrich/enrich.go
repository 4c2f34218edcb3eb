// Package enrich fills the fields of an ingested event that its sender left
// empty, from the request context the sender passed along with it (the
// end user's IP, user-agent and request line): the device class, the
// remote address, the country, and data.request_details in Descope's shape.
// It never overrides what the sender set, and never stores credentials.
package enrich

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/medama-io/go-useragent"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/audittrail/audittrail/internal/event"
)

// Device classes, Descope's values.
const (
	DeviceBot     = "Bot"
	DeviceMobile  = "Mobile"
	DeviceDesktop = "Desktop"
	DeviceTablet  = "Tablet"
	DeviceUnknown = "Unknown"
)

// Errors.
var (
	ErrGeoIP   = errors.New("enrich: cannot open the GeoIP database")
	ErrContext = errors.New("enrich: invalid request context")
)

// Limits of one request context, so that it cannot make an event large.
const (
	maxContextHeaders = 64
	maxHeaderValue    = 1024
	maxURL            = 2048
)

// Options configure an Enricher. The zero value enriches device, remote
// address and request details, but not the country.
type Options struct {
	// GeoIPDB is the path of a MaxMind-format country or city database
	// (GeoLite2-Country.mmdb, DB-IP's lite country database…).
	GeoIPDB string
	// CountryHeader names a header a trusted proxy sets to the client's
	// country (cf-ipcountry, x-vercel-ip-country…); used when there is no
	// database or it does not know the IP.
	CountryHeader string
	// HeaderAllowList names headers kept in request_details beyond origin,
	// referer and user-agent. Credential-like headers are dropped anyway.
	HeaderAllowList []string
	Logger          *slog.Logger
}

// Enricher is safe for concurrent use.
type Enricher struct {
	opts    Options
	geo     *maxminddb.Reader
	allowed map[string]bool
	log     *slog.Logger
}

// The user-agent parser builds its trie once, in about 0.2 s.
var uaParser = sync.OnceValue(useragent.NewParser)

// New opens the GeoIP database, if any. Close releases it.
func New(opts Options) (*Enricher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Enricher{opts: opts, log: opts.Logger, allowed: map[string]bool{"origin": true, "referer": true, "user-agent": true}}
	for _, h := range opts.HeaderAllowList {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && !credentialHeader(h) {
			e.allowed[h] = true
		}
	}
	e.opts.CountryHeader = strings.ToLower(strings.TrimSpace(opts.CountryHeader))
	if opts.GeoIPDB != "" {
		db, err := maxminddb.Open(opts.GeoIPDB)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrGeoIP, opts.GeoIPDB, err)
		}
		e.geo = db
	}
	return e, nil
}

// Close releases the GeoIP database.
func (e *Enricher) Close() error {
	if e.geo != nil {
		return e.geo.Close()
	}
	return nil
}

// RequestContext is what a sender tells about the end user's request that
// caused an event: the `requestContext` member of an event in the
// createEvent, batch and SCIM APIs. It is consumed at ingest, not stored as
// such.
type RequestContext struct {
	IP            string            `json:"ip"`
	UserAgent     string            `json:"userAgent"`
	Method        string            `json:"method"`
	URL           string            `json:"url"`
	Host          string            `json:"host"`
	Headers       map[string]string `json:"headers"`
	ContentLength int64             `json:"contentLength"`
}

// ParseRequestContext decodes and checks the requestContext member; absent
// or null gives nil.
func ParseRequestContext(raw json.RawMessage) (*RequestContext, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rc RequestContext
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrContext, strings.TrimPrefix(err.Error(), "json: "))
	}
	if rc.IP != "" {
		if _, err := netip.ParseAddr(rc.IP); err != nil {
			return nil, fmt.Errorf("%w: ip %q is not an IP address", ErrContext, rc.IP)
		}
	}
	if len(rc.Headers) > maxContextHeaders {
		return nil, fmt.Errorf("%w: more than %d headers", ErrContext, maxContextHeaders)
	}
	for _, s := range []string{rc.UserAgent, rc.Method, rc.Host} {
		if len(s) > maxHeaderValue {
			return nil, fmt.Errorf("%w: a value is longer than %d bytes", ErrContext, maxHeaderValue)
		}
	}
	for k, v := range rc.Headers {
		if len(k) > 256 || len(v) > maxHeaderValue {
			return nil, fmt.Errorf("%w: header %.40q is too long", ErrContext, k)
		}
	}
	if len(rc.URL) > maxURL {
		return nil, fmt.Errorf("%w: url longer than %d bytes", ErrContext, maxURL)
	}
	if rc.ContentLength < 0 {
		return nil, fmt.Errorf("%w: contentLength is negative", ErrContext)
	}
	return &rc, nil
}

// header finds a header of the context case-insensitively.
func (rc *RequestContext) header(name string) string {
	for k, v := range rc.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func (rc *RequestContext) userAgent() string {
	if rc.UserAgent != "" {
		return rc.UserAgent
	}
	return rc.header("user-agent")
}

// Enrich fills the empty fields of ev from rc. A nil rc fills nothing but
// the country of a remote address the sender set.
func (e *Enricher) Enrich(ev *event.Event, rc *RequestContext) {
	if rc != nil {
		if ev.Device == "" {
			if ua := rc.userAgent(); ua != "" {
				ev.Device = DeviceClass(ua)
			}
		}
		if ev.RemoteAddress == "" && rc.IP != "" {
			if ip, err := netip.ParseAddr(rc.IP); err == nil {
				ev.RemoteAddress = ip.Unmap().String()
			}
		}
	}
	if ev.Geo == "" {
		ev.Geo = e.country(ev.RemoteAddress, rc)
	}
	if rc != nil {
		e.addRequestDetails(ev, rc)
	}
}

// country looks the IP up in the database, else reads the trusted header.
func (e *Enricher) country(ip string, rc *RequestContext) string {
	if e.geo != nil && ip != "" {
		if addr, err := netip.ParseAddr(ip); err == nil {
			var rec struct {
				Country struct {
					ISOCode string `maxminddb:"iso_code"`
				} `maxminddb:"country"`
			}
			if err := e.geo.Lookup(addr.Unmap()).Decode(&rec); err != nil {
				e.log.Debug("GeoIP lookup failed", "ip", ip, "error", err)
			} else if validCountry(rec.Country.ISOCode) {
				return rec.Country.ISOCode
			}
		}
	}
	if e.opts.CountryHeader != "" && rc != nil {
		if c := strings.ToUpper(strings.TrimSpace(rc.header(e.opts.CountryHeader))); validCountry(c) {
			return c
		}
	}
	return ""
}

// validCountry accepts ISO 3166-1 alpha-2 codes, not Cloudflare's XX
// (unknown) and T1 (Tor).
func validCountry(c string) bool {
	if len(c) != 2 || c == "XX" {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// DeviceClass classifies a user-agent as Bot, Mobile, Desktop, Tablet or
// Unknown. The library's trie knows browsers and the common bots; a few
// rules catch what it misses: crawlers that announce themselves, Android
// tablets (Android without "Mobile"), TVs and consoles (Unknown).
func DeviceClass(ua string) string {
	if ua == "" {
		return DeviceUnknown
	}
	if looksLikeBot(ua) {
		return DeviceBot
	}
	agent := uaParser().Parse(ua)
	switch {
	case agent.IsBot():
		return DeviceBot
	case agent.IsTablet():
		return DeviceTablet
	case agent.IsMobile():
		if strings.Contains(ua, "Android") && !strings.Contains(ua, "Mobile") {
			return DeviceTablet
		}
		return DeviceMobile
	case agent.IsDesktop():
		return DeviceDesktop
	}
	return DeviceUnknown
}

var botWords = [][]byte{[]byte("bot"), []byte("crawl"), []byte("spider"), []byte("slurp"), []byte("wget/"), []byte("curl/"),
	[]byte("headless"), []byte("scrapy"), []byte("httpclient"), []byte("python-urllib"), []byte("libwww"), []byte("fetcher"), []byte("preview")}

func looksLikeBot(ua string) bool {
	// Lower-case ASCII into a stack buffer: this runs for every enriched
	// event, and strings.ToLower would allocate for most user-agents.
	var buf [512]byte
	l := buf[:0]
	if len(ua) > len(buf) {
		l = make([]byte, 0, len(ua))
	}
	for i := 0; i < len(ua); i++ {
		c := ua[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		l = append(l, c)
	}
	for _, w := range botWords {
		if bytes.Contains(l, w) {
			return true
		}
	}
	return false
}

// credentialHeader reports whether a header may carry a credential; such
// headers are never stored, allow-listed or not.
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-csrf-token", "x-xsrf-token":
		return true
	}
	for _, w := range []string{"auth", "token", "secret", "password", "passwd", "session", "cookie", "key", "signature", "credential", "jwt"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// addRequestDetails sets data.request_details unless the sender set it,
// and only while data stays within the event limit.
func (e *Enricher) addRequestDetails(ev *event.Event, rc *RequestContext) {
	if rc.Method == "" && rc.URL == "" && rc.Host == "" && len(rc.Headers) == 0 && rc.UserAgent == "" {
		return
	}
	// Splice the key in rather than decode and re-encode the whole data:
	// this runs for every event of a batch that carries a context.
	t := bytes.TrimSpace(ev.Data)
	if len(t) == 0 || string(t) == "null" {
		t = []byte("{}")
	}
	var probe struct {
		RequestDetails json.RawMessage `json:"request_details"`
	}
	if t[0] != '{' || json.Unmarshal(t, &probe) != nil || probe.RequestDetails != nil {
		return // the sender's own details, or data Validate refuses anyway
	}
	details, err := json.Marshal(e.requestDetails(rc))
	if err != nil {
		return
	}
	out := make([]byte, 0, len(t)+len(details)+24)
	out = append(out, `{"request_details":`...)
	out = append(out, details...)
	if rest := bytes.TrimSpace(t[1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, t[1:]...)
	if len(out) > event.MaxDataBytes {
		return
	}
	ev.Data = out
}

// RequestDetails is Descope's data.request_details.
type RequestDetails struct {
	ContentLength int64 `json:"contentLength"`
	Headers       struct {
		HTTP map[string]string `json:"http"`
	} `json:"headers"`
	Host   string `json:"host"`
	Method string `json:"method"`
	URI    string `json:"uri"`
	URL    string `json:"url"`
}

func (e *Enricher) requestDetails(rc *RequestContext) RequestDetails {
	var d RequestDetails
	d.ContentLength = rc.ContentLength
	d.Method = strings.ToUpper(rc.Method)
	d.Headers.HTTP = map[string]string{}
	for k, v := range rc.Headers {
		k = strings.ToLower(k)
		if e.allowed[k] && !credentialHeader(k) {
			d.Headers.HTTP[k] = v
		}
	}
	if rc.UserAgent != "" {
		d.Headers.HTTP["user-agent"] = rc.UserAgent
	}
	d.Host = rc.Host
	if rc.URL != "" {
		if u, err := url.Parse(rc.URL); err == nil {
			u.User = nil // never a password from user:pass@host
			redactQuery(u)
			if d.Host == "" {
				d.Host = u.Host
			}
			d.URI = u.RequestURI()
			if u.Scheme == "" && u.Host == "" {
				d.URL = ""
				if d.Host != "" {
					d.URL = "https://" + d.Host + d.URI
				}
			} else {
				d.URL = u.String()
			}
		}
	}
	if d.Host == "" {
		d.Host = rc.header("host")
	}
	return d
}

// redactQuery replaces the values of credential-like query parameters
// (?token=…, ?code=…), which would otherwise be stored with the URL.
func redactQuery(u *url.URL) {
	if u.RawQuery == "" {
		return
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		u.RawQuery = ""
		return
	}
	changed := false
	for k := range q {
		lk := strings.ToLower(k)
		if credentialHeader(lk) || slices.Contains([]string{"code", "otp", "pwd", "pass", "sig", "access_token", "id_token"}, lk) {
			q[k] = []string{"REDACTED"}
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
}
