package syslog

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// ErrConfig is wrapped by every configuration error, so callers can answer
// 400 without knowing this package's error types.
var ErrConfig = errors.New("syslog: invalid configuration")

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "syslog: " + e.Field + ": " + e.Reason }
func (e *ConfigError) Unwrap() error { return ErrConfig }

// As lets errors.As find a *stream.FieldError, which the delivery engine
// reports to the API as the field "config.<Field>".
func (e *ConfigError) As(target any) bool {
	if fe, ok := target.(**stream.FieldError); ok {
		*fe = &stream.FieldError{Field: e.Field, Reason: e.Reason}
		return true
	}
	return false
}

// Transports.
const (
	NetworkTCP = "tcp"
	NetworkTLS = "tls"
	NetworkUDP = "udp"
	// NetworkRELP is RELP over TCP: per-message acknowledgements.
	NetworkRELP = "relp"
)

// Framings of TCP and TLS streams (RFC 6587).
const (
	FramingOctetCounting = "octet-counting"
	FramingLF            = "lf"
)

// Defaults applied by Validate to fields left empty.
const (
	DefaultFacility = "audit" // 13, "log audit" in RFC 5424
	DefaultAppName  = "audittrail"
	DefaultSDID     = "audittrail@32473"
	DefaultTimeout  = 10 * time.Second
	// DefaultMaxUDPBytes keeps a datagram within one IPv4 UDP payload;
	// larger messages are truncated (RFC 5426 allows a receiver to).
	DefaultMaxUDPBytes = 65507
)

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// Config is the JSON configuration of a syslog connector.
type Config struct {
	// Network is tcp (RFC 6587), tls (RFC 5425), udp (RFC 5426) or relp
	// (rsyslog's Reliable Event Logging Protocol, acknowledged per message).
	Network string `json:"network"`
	// Address is host:port of the receiver.
	Address string `json:"address"`
	// Facility by name (kern … local7, "audit" by default).
	Facility string `json:"facility,omitempty"`
	// Hostname in the header; the machine's name by default.
	Hostname string `json:"hostname,omitempty"`
	AppName  string `json:"appName,omitempty"`
	// SDID names the structured-data element that carries id, project and
	// user; it must be name@<private enterprise number>.
	SDID string `json:"sdId,omitempty"`
	// Framing of tcp and tls streams: octet-counting (default) or lf.
	Framing string `json:"framing,omitempty"`
	// Persistent keeps one TCP/TLS connection across batches. Then Write
	// returns once the kernel took the bytes, which is no acknowledgement;
	// by default each batch uses its own connection and Write waits until
	// the receiver has read it to the end (see the package comment).
	Persistent bool `json:"persistent,omitempty"`
	// CAFile verifies the receiver's certificate (tls); Insecure does not
	// verify; ServerName overrides the name checked.
	CAFile     string `json:"caFile,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
	ServerName string `json:"serverName,omitempty"`
	// CertFile and KeyFile present a client certificate (tls).
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// Timeout bounds dialing and the delivery of one batch.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxUDPBytes truncates longer messages sent over UDP.
	MaxUDPBytes int `json:"maxUdpBytes,omitempty"`
	// MaxMessageBytes is the receiver's message size limit (rsyslog's
	// maxMessageSize, 8k by default): tamper evidence is split into
	// messages that fit (events are sent whole, as before).
	MaxMessageBytes int `json:"maxMessageBytes,omitempty"`
}

// DefaultMaxMessageBytes is rsyslog's default maxMessageSize.
const DefaultMaxMessageBytes = 8192

// LogValue keeps file paths of keys out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("network", c.Network),
		slog.String("address", c.Address),
		slog.String("facility", c.Facility),
	)
}

// Validate fills defaults and reports the first invalid field.
func (c *Config) Validate() error {
	switch c.Network {
	case NetworkTCP, NetworkTLS, NetworkUDP, NetworkRELP:
	case "":
		return &ConfigError{"network", "is required (tcp, tls, udp or relp)"}
	default:
		return &ConfigError{"network", "must be tcp, tls, udp or relp"}
	}
	if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
		return &ConfigError{"address", "must be host:port"}
	}
	if c.Facility == "" {
		c.Facility = DefaultFacility
	}
	if _, ok := facilities[c.Facility]; !ok {
		return &ConfigError{"facility", "must be a facility name such as audit, authpriv or local0"}
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "-"
		}
		c.Hostname = h
	}
	if !printASCII(c.Hostname, 255) {
		return &ConfigError{"hostname", "must be 1-255 printable ASCII characters without spaces"}
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	if !printASCII(c.AppName, 48) {
		return &ConfigError{"appName", "must be 1-48 printable ASCII characters without spaces"}
	}
	if c.SDID == "" {
		c.SDID = DefaultSDID
	}
	if name, pen, ok := strings.Cut(c.SDID, "@"); !ok || !sdName(name) || pen == "" ||
		strings.Trim(pen, "0123456789.") != "" || len(c.SDID) > 32 {
		return &ConfigError{"sdId", "must be name@<private enterprise number>, at most 32 characters"}
	}
	switch c.Framing {
	case "":
		c.Framing = FramingOctetCounting
	case FramingOctetCounting, FramingLF:
	default:
		return &ConfigError{"framing", "must be octet-counting or lf"}
	}
	if c.Network != NetworkTLS {
		for _, f := range []struct{ name, v string }{{"caFile", c.CAFile}, {"serverName", c.ServerName}, {"certFile", c.CertFile}, {"keyFile", c.KeyFile}} {
			if f.v != "" {
				return &ConfigError{f.name, "applies only to network tls"}
			}
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return &ConfigError{"keyFile", "certFile and keyFile go together"}
	}
	if (c.Network == NetworkUDP || c.Network == NetworkRELP) && c.Persistent {
		return &ConfigError{"persistent", "applies only to tcp and tls"}
	}
	if c.Network == NetworkRELP && c.Framing == FramingLF {
		return &ConfigError{"framing", "applies only to tcp and tls"}
	}
	if c.Timeout < 0 {
		return &ConfigError{"timeout", "must not be negative"}
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.MaxUDPBytes < 0 || c.MaxUDPBytes > DefaultMaxUDPBytes {
		return &ConfigError{"maxUdpBytes", fmt.Sprintf("must be between 480 and %d", DefaultMaxUDPBytes)}
	}
	if c.MaxUDPBytes == 0 {
		c.MaxUDPBytes = DefaultMaxUDPBytes
	}
	if c.MaxUDPBytes < 480 {
		return &ConfigError{"maxUdpBytes", fmt.Sprintf("must be between 480 and %d", DefaultMaxUDPBytes)}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxMessageBytes < 2048 {
		// RFC 5425 and 6587 receivers must take 2048 octets.
		return &ConfigError{"maxMessageBytes", "must be at least 2048"}
	}
	return nil
}

// printASCII reports whether s is 1..max characters of PRINTUSASCII
// (RFC 5424 header fields).
func printASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// sdName reports whether s is a valid SD-NAME: printable ASCII without
// '=', ' ', ']' and '"', at most 32 characters.
func sdName(s string) bool {
	return printASCII(s, 32) && !strings.ContainsAny(s, `=]"`)
}

// ParseConfig decodes a JSON configuration strictly (see
// stream.DecodeConfig) and validates it.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if fe := stream.DecodeConfig(raw, &c); fe != nil {
		return c, &ConfigError{fe.Field, fe.Reason}
	}
	return c, c.Validate()
}

// Duration is a timeout written as a Go duration string ("10s").
type Duration = stream.Duration
