package enrich

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/audittrail/audittrail/internal/event"
)

// Real user-agent strings as browsers, apps and crawlers send them.
var userAgents = []struct{ ua, want string }{
	// Desktop browsers.
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", DeviceDesktop},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15", DeviceDesktop},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36", DeviceDesktop},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.2; rv:121.0) Gecko/20100101 Firefox/121.0", DeviceDesktop},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", DeviceDesktop},
	{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 YaBrowser/24.1.0.0 Safari/537.36", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Vivaldi/6.5.3206.48", DeviceDesktop},
	{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", DeviceDesktop},
	{"Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36", DeviceDesktop},
	{"Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", DeviceDesktop},
	// Phones.
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1", DeviceMobile},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1", DeviceMobile},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", DeviceMobile},
	{"Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 12; M2101K6G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36", DeviceMobile},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", DeviceMobile},
	{"Mozilla/5.0 (Linux; Android 11; Redmi Note 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 OPR/79.0.4195.76754", DeviceMobile},
	// Tablets.
	{"Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1", DeviceTablet},
	{"Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1", DeviceTablet},
	{"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", DeviceTablet},
	{"Mozilla/5.0 (Linux; Android 12; Lenovo TB-J606F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36", DeviceTablet},
	{"Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/119.3.1 like Chrome/119.0.6045.193 Safari/537.36", DeviceTablet},
	// Bots, crawlers and scripts.
	{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", DeviceBot},
	{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", DeviceBot},
	{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36", DeviceBot},
	{"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", DeviceBot},
	{"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", DeviceBot},
	{"DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", DeviceBot},
	{"Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)", DeviceBot},
	{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", DeviceBot},
	{"Twitterbot/1.0", DeviceBot},
	{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", DeviceBot},
	{"Mozilla/5.0 (compatible; GPTBot/1.0; +https://openai.com/gptbot)", DeviceBot},
	{"Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)", DeviceBot},
	{"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", DeviceBot},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36", DeviceBot},
	{"curl/8.4.0", DeviceBot},
	{"Wget/1.21.4", DeviceBot},
	{"python-requests/2.31.0", DeviceBot},
	{"Go-http-client/1.1", DeviceBot},
	{"Scrapy/2.11.0 (+https://scrapy.org)", DeviceBot},
	{"Apache-HttpClient/4.5.14 (Java/17.0.9)", DeviceBot},
	{"Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", DeviceBot},
	// Neither: TVs, consoles, unknown clients.
	{"Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36", DeviceUnknown},
	{"Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15", DeviceUnknown},
	{"MyCompanyApp/3.2 (build 4410)", DeviceUnknown},
	{"", DeviceUnknown},
}

func TestDeviceClass(t *testing.T) {
	if len(userAgents) < 50 {
		t.Fatalf("only %d user-agents in the table", len(userAgents))
	}
	for _, tc := range userAgents {
		if got := DeviceClass(tc.ua); got != tc.want {
			t.Errorf("DeviceClass(%q) = %s, want %s", tc.ua, got, tc.want)
		}
	}
}

// writeGeoDB builds a small country database like GeoLite2-Country.
func writeGeoDB(t *testing.T) string { return writeGeoDBB(t) }

func writeGeoDBB(t testing.TB) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, iso := range map[string]string{"203.0.113.0/24": "IL", "198.51.100.0/24": "DE", "2001:db8::/32": "FR"} {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)}}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func newEnricher(t *testing.T, opts Options) *Enricher {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestCountry(t *testing.T) {
	db := writeGeoDB(t)
	withDB := newEnricher(t, Options{GeoIPDB: db, CountryHeader: "CF-IPCountry"})
	headerOnly := newEnricher(t, Options{CountryHeader: "cf-ipcountry"})
	none := newEnricher(t, Options{})
	hdr := func(ip, c string) *RequestContext {
		return &RequestContext{IP: ip, Headers: map[string]string{"Cf-Ipcountry": c}}
	}
	for _, tc := range []struct {
		name string
		e    *Enricher
		ev   event.Event
		rc   *RequestContext
		want string
	}{
		{"database", withDB, event.Event{}, hdr("203.0.113.9", "US"), "IL"},
		{"database v6", withDB, event.Event{}, &RequestContext{IP: "2001:db8::1"}, "FR"},
		{"database v4-mapped", withDB, event.Event{}, &RequestContext{IP: "::ffff:198.51.100.4"}, "DE"},
		{"database misses, header", withDB, event.Event{}, hdr("192.0.2.1", "us"), "US"},
		{"sender's remote address", withDB, event.Event{RemoteAddress: "198.51.100.7"}, nil, "DE"},
		{"sender's geo kept", withDB, event.Event{Geo: "JP"}, hdr("203.0.113.9", "US"), "JP"},
		{"header only", headerOnly, event.Event{}, hdr("203.0.113.9", "GB"), "GB"},
		{"header unknown XX", headerOnly, event.Event{}, hdr("203.0.113.9", "XX"), ""},
		{"header junk", headerOnly, event.Event{}, hdr("203.0.113.9", "United"), ""},
		{"not configured", none, event.Event{}, hdr("203.0.113.9", "GB"), ""},
	} {
		ev := tc.ev
		tc.e.Enrich(&ev, tc.rc)
		if ev.Geo != tc.want {
			t.Errorf("%s: geo %q, want %q", tc.name, ev.Geo, tc.want)
		}
	}
	if _, err := New(Options{GeoIPDB: filepath.Join(t.TempDir(), "missing.mmdb")}); err == nil {
		t.Error("New opened a missing database")
	}
}

func TestEnrichFillsOnlyEmptyFields(t *testing.T) {
	e := newEnricher(t, Options{HeaderAllowList: []string{"Accept-Language", "X-Api-Key", "X-Session-Id"}})
	rc := &RequestContext{
		IP: "::ffff:203.0.113.9", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
		Method: "post", URL: "https://user:pw@app.example.com/login?next=%2Fhome&token=abc123", ContentLength: 42,
		Headers: map[string]string{
			"Origin": "https://app.example.com", "Referer": "https://app.example.com/", "Accept-Language": "he-IL",
			"Authorization": "Bearer sekrit", "Cookie": "sid=sekrit", "Set-Cookie": "a=sekrit", "X-Api-Key": "sekrit",
			"Proxy-Authorization": "Basic sekrit", "X-Session-Id": "sekrit", "X-Forwarded-For": "10.0.0.1",
		},
	}
	ev := event.Event{Data: json.RawMessage(`{"k":"v"}`)}
	e.Enrich(&ev, rc)
	if ev.Device != DeviceMobile || ev.RemoteAddress != "203.0.113.9" {
		t.Fatalf("device %q remote %q", ev.Device, ev.RemoteAddress)
	}
	if strings.Contains(string(ev.Data), "sekrit") || strings.Contains(string(ev.Data), "abc123") || strings.Contains(string(ev.Data), "pw@") {
		t.Fatalf("a credential was stored: %s", ev.Data)
	}
	var data struct {
		K  string         `json:"k"`
		RD RequestDetails `json:"request_details"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	rd := data.RD
	if data.K != "v" || rd.Method != "POST" || rd.Host != "app.example.com" || rd.ContentLength != 42 ||
		rd.URI != "/login?next=%2Fhome&token=REDACTED" || rd.URL != "https://app.example.com/login?next=%2Fhome&token=REDACTED" {
		t.Fatalf("request details %+v", rd)
	}
	wantHeaders := map[string]string{"origin": "https://app.example.com", "referer": "https://app.example.com/",
		"accept-language": "he-IL", "user-agent": rc.UserAgent}
	if len(rd.Headers.HTTP) != len(wantHeaders) {
		t.Fatalf("headers %v", rd.Headers.HTTP)
	}
	for k, v := range wantHeaders {
		if rd.Headers.HTTP[k] != v {
			t.Errorf("header %s = %q, want %q", k, rd.Headers.HTTP[k], v)
		}
	}

	// What the sender set stays.
	set := event.Event{Device: "Desktop", RemoteAddress: "198.51.100.1",
		Data: json.RawMessage(`{"request_details":{"host":"mine"}}`)}
	e.Enrich(&set, rc)
	if set.Device != "Desktop" || set.RemoteAddress != "198.51.100.1" || string(set.Data) != `{"request_details":{"host":"mine"}}` {
		t.Fatalf("overrode the sender: %+v %s", set, set.Data)
	}
	// No context: nothing filled.
	bare := event.Event{}
	e.Enrich(&bare, nil)
	if bare.Device != "" || bare.RemoteAddress != "" || bare.Data != nil {
		t.Fatalf("filled without a context: %+v", bare)
	}
	// The result is still a valid event.
	ev.Action, ev.Type, ev.Level, ev.ProjectID, ev.Occurred = "A", "info", event.LevelProject, "P", 1
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseRequestContext(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{``, true}, {`null`, true},
		{`{"ip":"203.0.113.1","userAgent":"curl/8","method":"GET","url":"/x","host":"h","headers":{"origin":"o"},"contentLength":3}`, true},
		{`{"ip":"not-an-ip"}`, false},
		{`{"ipAddress":"203.0.113.1"}`, false},
		{`{"contentLength":-1}`, false},
		{`{"headers":{"a":1}}`, false},
		{`[]`, false},
		{`{"url":"` + strings.Repeat("a", 3000) + `"}`, false},
	} {
		_, err := ParseRequestContext(json.RawMessage(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%.60s: err %v", tc.in, err)
		}
	}
}

func BenchmarkDeviceClass(b *testing.B) {
	uaParser()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		DeviceClass(userAgents[i%len(userAgents)].ua)
	}
}

// BenchmarkEnrich is the cost per ingested event with a full request
// context: device, remote address, GeoIP lookup and request_details.
func BenchmarkEnrich(b *testing.B) {
	e, err := New(Options{GeoIPDB: writeGeoDBB(b), CountryHeader: "cf-ipcountry"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	rc := &RequestContext{IP: "203.0.113.9", UserAgent: userAgents[0].ua, Method: "POST", URL: "https://app.example.com/login?next=%2F",
		Headers: map[string]string{"Origin": "https://app.example.com", "Referer": "https://app.example.com/", "Authorization": "x"}}
	data := json.RawMessage(`{"correlation_id":"c-123","error_message":"bad code"}`)
	for b.Loop() {
		ev := event.Event{Data: data}
		e.Enrich(&ev, rc)
	}
}

// The server enriches the events of concurrent requests with one Enricher.
func TestEnrichConcurrently(t *testing.T) {
	e := newEnricher(t, Options{GeoIPDB: writeGeoDB(t), CountryHeader: "cf-ipcountry"})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				tc := userAgents[(g*200+i)%len(userAgents)]
				ev := event.Event{}
				e.Enrich(&ev, &RequestContext{IP: "203.0.113.1", UserAgent: tc.ua, Method: "GET", URL: "https://h/p"})
				if ev.Device != tc.want && tc.ua != "" || ev.Geo != "IL" {
					t.Errorf("%q: device %s geo %s", tc.ua, ev.Device, ev.Geo)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
