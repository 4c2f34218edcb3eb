package registry_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/stream"
	"github.com/audittrail/audittrail/internal/stream/registry"
)

// Every destination builds from a valid config and hides its secrets in
// the redacted view the API shows.
func TestEveryDestinationBuildsAndRedacts(t *testing.T) {
	configs := map[string]string{
		"webhook": `{"url":"https://h/x","authentication":{"bearerToken":"SECRET1"},"hmacSecret":"SECRET2","headers":{"X-K":"SECRET3"}}`,
		"splunk":  `{"url":"https://splunk:8088","token":"SECRET1"}`,
		"datadog": `{"apiKey":"SECRET1","site":"datadoghq.eu"}`,
		"sumo":    `{"url":"https://endpoint1.collection.sumologic.com/receiver/v1/http/SECRET1"}`,
		"nats":    `{"url":"nats://u:SECRET2@127.0.0.1:4222","token":"SECRET1"}`,
		"kafka":   `{"brokers":["127.0.0.1:9092"],"topic":"audit","sasl":{"mechanism":"PLAIN","username":"u","password":"SECRET1"}}`,
		"syslog":  `{"network":"tcp","address":"127.0.0.1:514"}`,
		"otlp":    `{"endpoint":"http://127.0.0.1:4318","headers":{"Authorization":"SECRET1"}}`,
		"s3":      `{"bucket":"audit","region":"us-east-1","endpoint":"http://127.0.0.1:9000","accessKeyId":"AK","secretAccessKey":"SECRET1","sessionToken":"SECRET2"}`,
	}
	dests := registry.Destinations()
	for _, name := range registry.Names() {
		cfg, ok := configs[name]
		if !ok {
			t.Errorf("destination %q has no config in this test", name)
			continue
		}
		d := dests[name]
		sink, err := d.New(json.RawMessage(cfg))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		sink.Close(t.Context())
		red := d.Redact
		if red == nil {
			red = func(c json.RawMessage) json.RawMessage { return stream.RedactKeys(c, stream.DefaultSecretKeys...) }
		}
		if out := string(red(json.RawMessage(cfg))); strings.Contains(out, "SECRET") {
			t.Errorf("%s: redacted config shows a secret: %s", name, out)
		}
	}
}
