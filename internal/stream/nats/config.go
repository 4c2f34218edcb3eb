package nats

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// ErrConfig is wrapped by every configuration error, so callers can answer
// 400 without knowing this package's error types.
var ErrConfig = errors.New("nats: invalid configuration")

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "nats: " + e.Field + ": " + e.Reason }
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

// Defaults applied by Validate to fields left empty.
const (
	DefaultSubjectPrefix = "audittrail"
	DefaultTimeout       = 10 * time.Second
	DefaultMaxPending    = 1024
	// companySubjectToken is the last subject token of company-level events;
	// Descope project ids start with "P", so it cannot clash with one.
	companySubjectToken = "company"
)

// Config is the JSON configuration of a NATS JetStream connector.
type Config struct {
	// URL is one server URL or a comma-separated list (nats://host:4222).
	URL string `json:"url"`
	// SubjectPrefix: events go to <prefix>.<projectId>, company-level ones
	// to <prefix>.company. A JetStream stream must capture these subjects.
	SubjectPrefix string `json:"subjectPrefix,omitempty"`
	// Stream, when set, is checked to exist at Connect so a misconfigured
	// connector fails loudly instead of timing out on every publish.
	Stream string `json:"stream,omitempty"`
	// Token, or Username and Password, or CredentialsFile authenticate.
	Token           string `json:"token,omitempty"`
	Username        string `json:"username,omitempty"`
	Password        string `json:"password,omitempty"`
	CredentialsFile string `json:"credentialsFile,omitempty"`
	// CAFile verifies the server's certificate; Insecure skips verification.
	CAFile   string `json:"caFile,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	// Timeout bounds dialing and the wait for the acknowledgements of one
	// batch.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxPending is how many publishes may await their ack at once.
	MaxPending int `json:"maxPending,omitempty"`
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.String("subjectPrefix", c.SubjectPrefix),
		slog.String("stream", c.Stream),
		slog.Bool("auth", c.Token != "" || c.Password != "" || c.CredentialsFile != ""),
	)
}

// Validate fills defaults and reports the first invalid field.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.URL) == "" {
		return &ConfigError{"url", "is required"}
	}
	for _, u := range strings.Split(c.URL, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return &ConfigError{"url", fmt.Sprintf("%q must start with nats:// or tls://", u)}
		}
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if !validSubjectPrefix(c.SubjectPrefix) {
		return &ConfigError{"subjectPrefix", "must be dot-separated tokens without spaces or wildcards"}
	}
	if strings.ContainsAny(c.Stream, " .*>") {
		return &ConfigError{"stream", "must not contain spaces, dots or wildcards"}
	}
	if c.Token != "" && (c.Username != "" || c.Password != "") {
		return &ConfigError{"token", "cannot be combined with username/password"}
	}
	if (c.Username == "") != (c.Password == "") {
		return &ConfigError{"password", "username and password go together"}
	}
	if c.Timeout < 0 {
		return &ConfigError{"timeout", "must not be negative"}
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.MaxPending < 0 {
		return &ConfigError{"maxPending", "must not be negative"}
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	return nil
}

func validSubjectPrefix(p string) bool {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
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
