package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// ErrConfig is wrapped by every configuration error, so callers can answer
// 400 without knowing this package's error types.
var ErrConfig = errors.New("kafka: invalid configuration")

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "kafka: " + e.Field + ": " + e.Reason }
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
	DefaultTimeout = 30 * time.Second
	// companyKey is the record key of company-level events; Descope project
	// ids start with "P", so it cannot clash with one.
	companyKey = "company"
)

// Config is the JSON configuration of a Kafka connector.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	// ClientID identifies the producer in broker logs and quotas.
	ClientID string `json:"clientId,omitempty"`
	// SASL authenticates with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASL *SASL `json:"sasl,omitempty"`
	// TLS dials with TLS; CAFile verifies the brokers, Insecure does not.
	TLS      bool   `json:"tls,omitempty"`
	CAFile   string `json:"caFile,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	// Compression of record batches: none (default), gzip, snappy, lz4, zstd.
	Compression string `json:"compression,omitempty"`
	// Timeout bounds one batch: how long the producer keeps retrying
	// internally before Write reports the batch failed.
	Timeout Duration `json:"timeout,omitempty"`
}

// SASL credentials.
type SASL struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("brokers", c.Brokers),
		slog.String("topic", c.Topic),
		slog.Bool("sasl", c.SASL != nil),
		slog.Bool("tls", c.TLS),
	)
}

// Validate fills defaults and reports the first invalid field.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return &ConfigError{"brokers", "is required"}
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return &ConfigError{fmt.Sprintf("brokers[%d]", i), "must be host:port"}
		}
	}
	if c.Topic == "" {
		return &ConfigError{"topic", "is required"}
	}
	if len(c.Topic) > 249 || strings.Trim(c.Topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" ||
		c.Topic == "." || c.Topic == ".." {
		return &ConfigError{"topic", "must be 1-249 characters of letters, digits, '.', '_' and '-'"}
	}
	if c.SASL != nil {
		switch strings.ToUpper(c.SASL.Mechanism) {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return &ConfigError{"sasl.mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"}
		}
		if c.SASL.Username == "" {
			return &ConfigError{"sasl.username", "is required"}
		}
		if c.SASL.Password == "" {
			return &ConfigError{"sasl.password", "is required"}
		}
	}
	if (c.CAFile != "" || c.Insecure) && !c.TLS {
		return &ConfigError{"tls", "must be true when caFile or insecure is set"}
	}
	switch c.Compression {
	case "", "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return &ConfigError{"compression", "must be none, gzip, snappy, lz4 or zstd"}
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.Timeout < Duration(time.Second) {
		// franz-go refuses a shorter record delivery timeout.
		return &ConfigError{"timeout", "must be at least 1s"}
	}
	return nil
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
