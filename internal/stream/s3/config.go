package s3

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/audittrail/audittrail/internal/stream"
)

// ErrConfig is wrapped by every configuration error, so callers can answer
// 400 without knowing this package's error types.
var ErrConfig = errors.New("s3: invalid configuration")

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "s3: " + e.Field + ": " + e.Reason }
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
	DefaultPrefix      = "audittrail"
	DefaultRegion      = "us-east-1"
	DefaultTimeout     = 60 * time.Second
	DefaultConcurrency = 4
	// companyKeyPart replaces the project id in keys of company-level
	// events; Descope project ids start with "P", so it cannot clash.
	companyKeyPart = "company"
)

// Config is the JSON configuration of an S3 (or S3-compatible) connector.
type Config struct {
	Bucket string `json:"bucket"`
	// Prefix starts every object key (no leading or trailing slash).
	Prefix string `json:"prefix,omitempty"`
	Region string `json:"region,omitempty"`
	// Endpoint replaces AWS's (an S3-compatible service: MinIO, Ceph, R2…),
	// as a URL such as https://minio.internal:9000.
	Endpoint string `json:"endpoint,omitempty"`
	// PathStyle addresses the bucket in the path rather than the host name,
	// which most S3-compatible services need.
	PathStyle bool `json:"pathStyle,omitempty"`
	// Static credentials. They are required: this connector never reads
	// the environment or instance metadata for credentials.
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	SessionToken    string `json:"sessionToken,omitempty"`
	// ServerSideEncryption is AES256 or aws:kms (with KMSKeyID).
	ServerSideEncryption string `json:"serverSideEncryption,omitempty"`
	KMSKeyID             string `json:"kmsKeyId,omitempty"`
	StorageClass         string `json:"storageClass,omitempty"`
	// Timeout bounds one batch, all its objects included.
	Timeout Duration `json:"timeout,omitempty"`
	// Concurrency is how many objects of one batch upload at once.
	Concurrency int `json:"concurrency,omitempty"`
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("endpoint", c.Endpoint),
		slog.String("accessKeyId", c.AccessKeyID),
	)
}

// Validate fills defaults and reports the first invalid field.
func (c *Config) Validate() error {
	if c.Bucket == "" {
		return &ConfigError{"bucket", "is required"}
	}
	if len(c.Bucket) < 3 || len(c.Bucket) > 63 ||
		strings.Trim(c.Bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return &ConfigError{"bucket", "must be 3-63 lower-case letters, digits, dots and hyphens"}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") || strings.Contains(c.Prefix, "//") {
		return &ConfigError{"prefix", "must not start or end with '/' or hold '//'"}
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &ConfigError{"endpoint", "must be an http or https URL"}
		}
	}
	if c.AccessKeyID == "" {
		return &ConfigError{"accessKeyId", "is required"}
	}
	if c.SecretAccessKey == "" {
		return &ConfigError{"secretAccessKey", "is required"}
	}
	switch c.ServerSideEncryption {
	case "", "AES256":
		if c.KMSKeyID != "" {
			return &ConfigError{"kmsKeyId", "needs serverSideEncryption aws:kms"}
		}
	case "aws:kms":
	default:
		return &ConfigError{"serverSideEncryption", "must be AES256 or aws:kms"}
	}
	if c.Timeout < 0 {
		return &ConfigError{"timeout", "must not be negative"}
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.Concurrency < 0 || c.Concurrency > 64 {
		return &ConfigError{"concurrency", "must be between 1 and 64"}
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
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
