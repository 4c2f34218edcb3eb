package stream

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzSpecDecode decodes a connector body (as POST /v1/mgmt/connectors
// does into a Spec), validates it, and checks what the API shows of its
// config: redaction gives valid JSON, is stable, and sending the redacted
// view back restores exactly the stored config.
func FuzzSpecDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"w","type":"webhook","config":{"url":"https://h/x","authentication":{"bearerToken":"T"},"hmacSecret":"S","headers":{"X":"H"}}}`,
		`{"name":"k","type":"kafka","level":"both","filters":[{"key":"actions","operator":"includes","values":["LoginFailed"]}],"config":{"brokers":["b:9092"],"sasl":{"password":"p"}}}`,
		`{"name":"n","type":"nats","projectId":"P","config":{"url":"nats://u:pw@h:4222","token":1}}`,
		`{"name":"","type":"x","config":null}`,
		`{"name":"a","type":"webhook","filters":[{"key":"tenants","operator":"excludes","values":[]}],"config":[1,{"secret":{"a":[true,null]}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var s Spec
		if json.Unmarshal(body, &s) != nil {
			return
		}
		s.CompanyID = "C"
		_ = s.normalize() // must not panic whatever it holds
		if len(s.Config) == 0 || !json.Valid(s.Config) {
			return
		}
		red := RedactKeys(s.Config, DefaultSecretKeys...)
		if !json.Valid(red) {
			t.Fatalf("RedactKeys(%s) = %s, not JSON", s.Config, red)
		}
		if again := RedactKeys(red, DefaultSecretKeys...); !sameJSON(again, red) {
			t.Fatalf("redaction not stable: %s then %s", red, again)
		}
		restored, err := restoreRedacted(red, s.Config, red)
		if err != nil {
			t.Fatalf("restoreRedacted: %v", err)
		}
		if !sameJSON(restored, s.Config) {
			t.Fatalf("sending back the redacted view %s restores %s, not %s", red, restored, s.Config)
		}
	})
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
