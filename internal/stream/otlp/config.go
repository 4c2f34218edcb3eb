package otlp

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/httpsink"
)

// Body encodings of a LogRecord.
const (
	// BodyJSON: the body is the event JSON as one string, what most log
	// backends index as the message.
	BodyJSON = "json"
	// BodyStructured: the body is the event as an OTLP map (kvlistValue),
	// for backends that query structured bodies.
	BodyStructured = "structured"
)

// Defaults applied by Validate to fields left empty.
const (
	DefaultServiceName = "audittrail"
	DefaultCompression = "gzip"
	logsPath           = "/v1/logs"
)

// Config is the JSON configuration of an OpenTelemetry (OTLP/HTTP logs)
// connector.
type Config struct {
	// Endpoint is the collector's base URL (http://collector:4318); the
	// signal path /v1/logs is appended unless the URL already ends in it.
	Endpoint string `json:"endpoint"`
	// Headers are sent with every request (an API key, Authorization).
	Headers map[string]string `json:"headers,omitempty"`
	// Compression is gzip (default) or none.
	Compression string `json:"compression,omitempty"`
	// Body is json (default) or structured.
	Body string `json:"body,omitempty"`
	// ServiceName is the resource's service.name.
	ServiceName string `json:"serviceName,omitempty"`
	// ResourceAttributes are added to the resource (deployment.environment…).
	ResourceAttributes map[string]string `json:"resourceAttributes,omitempty"`
	// Insecure turns off TLS certificate verification.
	Insecure bool `json:"insecure,omitempty"`
}

// Validate fills defaults and reports the first invalid field.
func (c *Config) Validate() error {
	u, err := httpsink.CheckURL("endpoint", c.Endpoint)
	if err != nil {
		return err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return stream.Invalid("endpoint", "must not carry a query or fragment")
	}
	names := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if k == "" || strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(c.Headers[k], "\r\n") {
			return stream.Invalid("headers."+k, "is not a valid HTTP header")
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Encoding", "Content-Length", "Host":
			return stream.Invalid("headers."+k, "is set by the connector")
		}
	}
	switch c.Compression {
	case "":
		c.Compression = DefaultCompression
	case "gzip", "none":
	default:
		return stream.Invalid("compression", "must be gzip or none")
	}
	switch c.Body {
	case "":
		c.Body = BodyJSON
	case BodyJSON, BodyStructured:
	default:
		return stream.Invalid("body", "must be json or structured")
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	for k := range c.ResourceAttributes {
		if k == "" {
			return stream.Invalid("resourceAttributes", "keys must not be empty")
		}
		if k == "service.name" {
			return stream.Invalid("resourceAttributes.service.name", "set serviceName instead")
		}
	}
	return nil
}

// url is where batches are posted.
func (c *Config) url() string {
	e := strings.TrimRight(c.Endpoint, "/")
	if strings.HasSuffix(e, logsPath) {
		return e
	}
	return e + logsPath
}

// ParseConfig decodes a JSON configuration strictly (see
// stream.DecodeConfig) and validates it.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if fe := stream.DecodeConfig(raw, &c); fe != nil {
		return c, fe
	}
	return c, c.Validate()
}
