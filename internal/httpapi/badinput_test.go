package httpapi_test

import (
	"strings"
	"testing"

	"github.com/audittrail/audittrail/internal/httpapi"
)

// TestBadInput sends hostile or malformed requests: each must get a 4xx in
// Descope's error format, and none may write anything.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
	veryDeep := strings.Repeat(`[`, 100_000) + strings.Repeat(`]`, 100_000)
	ev := func(extra string) string {
		return `{"action":"A","actorId":"a","tenantId":"t","type":"info"` + extra + `}`
	}
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"empty body", "/v1/mgmt/audit/search", "application/json", ``, 400, httpapi.CodeBadRequest},
		{"not JSON", "/v1/mgmt/audit/search", "application/json", `{from:1}`, 400, httpapi.CodeBadRequest},
		{"truncated", "/v1/mgmt/audit/search", "application/json", `{"text":"a`, 400, httpapi.CodeBadRequest},
		{"trailing garbage", "/v1/mgmt/audit/search", "application/json", `{} x`, 400, httpapi.CodeBadRequest},
		{"two objects", "/v1/mgmt/audit/search", "application/json", `{}{}`, 400, httpapi.CodeBadRequest},
		{"array not object", "/v1/mgmt/audit/search", "application/json", `[]`, 400, httpapi.CodeBadRequest},
		{"wrong type size", "/v1/mgmt/audit/search", "application/json", `{"size":"10"}`, 400, httpapi.CodeInvalidArgument},
		{"wrong type list", "/v1/mgmt/audit/search", "application/json", `{"actions":"LoginFailed"}`, 400, httpapi.CodeInvalidArgument},
		{"wrong type text", "/v1/mgmt/audit/search", "application/json", `{"text":5}`, 400, httpapi.CodeInvalidArgument},
		{"negative size", "/v1/mgmt/audit/search", "application/json", `{"size":-1}`, 400, httpapi.CodeInvalidArgument},
		{"huge size", "/v1/mgmt/audit/search", "application/json", `{"size":1001}`, 400, httpapi.CodeInvalidArgument},
		{"size beyond int", "/v1/mgmt/audit/search", "application/json", `{"size":1e40}`, 400, httpapi.CodeInvalidArgument},
		{"negative page", "/v1/mgmt/audit/search", "application/json", `{"page":-1}`, 400, httpapi.CodeInvalidArgument},
		{"huge page", "/v1/mgmt/audit/search", "application/json", `{"page":9223372036854775807}`, 400, httpapi.CodeInvalidArgument},
		{"from not a number", "/v1/mgmt/audit/search", "application/json", `{"from":"yesterday"}`, 400, httpapi.CodeInvalidArgument},
		{"from an object", "/v1/mgmt/audit/search", "application/json", `{"from":{}}`, 400, httpapi.CodeInvalidArgument},
		{"bad level", "/v1/mgmt/audit/search", "application/json", `{"levels":["tenant"]}`, 400, httpapi.CodeInvalidArgument},
		{"text too long", "/v1/mgmt/audit/search", "application/json", `{"text":"` + strings.Repeat("a", 2000) + `"}`, 400, httpapi.CodeInvalidArgument},
		{"too many values", "/v1/mgmt/audit/search", "application/json", `{"actions":[` + strings.Repeat(`"a",`, 1000) + `"a"]}`, 400, httpapi.CodeInvalidArgument},
		{"invalid UTF-8", "/v1/mgmt/audit/event", "application/json", ev(`,"userId":"` + "\xff\xfe" + `"`), 400, httpapi.CodeBadRequest},
		{"NUL escape", "/v1/mgmt/audit/event", "application/json", ev(`,"userId":"a\u0000b"`), 400, httpapi.CodeBadRequest},
		{"raw NUL", "/v1/mgmt/audit/event", "application/json", ev(`,"userId":"a` + "\x00" + `b"`), 400, httpapi.CodeBadRequest},
		{"data too deep", "/v1/mgmt/audit/event", "application/json", ev(`,"data":` + deep), 400, httpapi.CodeInvalidArgument},
		{"nesting bomb", "/v1/mgmt/audit/search", "application/json", veryDeep, 400, httpapi.CodeBadRequest},
		{"field too long", "/v1/mgmt/audit/event", "application/json", ev(`,"userId":"` + strings.Repeat("u", 2000) + `"`), 400, httpapi.CodeInvalidArgument},
		{"data too big", "/v1/mgmt/audit/event", "application/json", ev(`,"data":{"x":"` + strings.Repeat("d", 70<<10) + `"}`), 400, httpapi.CodeInvalidArgument},
		{"body over 1 MiB", "/v1/mgmt/audit/event", "application/json", ev(`,"data":{"x":"` + strings.Repeat("d", 1<<20) + `"}`), 413, httpapi.CodeTooLarge},
		{"form content type", "/v1/mgmt/audit/search", "application/x-www-form-urlencoded", `{}`, 415, httpapi.CodeMediaType},
		{"future event", "/v1/mgmt/audit/event", "application/json", ev(`,"occurred":"99999999999999"`), 400, httpapi.CodeInvalidArgument},
		{"batch not a list", "/v1/mgmt/audit/events", "application/json", `{"events":{}}`, 400, httpapi.CodeInvalidArgument},
		{"batch missing", "/v1/mgmt/audit/events", "application/json", `{}`, 400, httpapi.CodeMissingArgument},
		{"batch unknown key", "/v1/mgmt/audit/events", "application/json", `{"events":[],"extra":1}`, 400, httpapi.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, e.auth(), tc.ctype, []byte(tc.body))
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("got %d %.300s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if n := e.count(); n != 0 {
		t.Fatalf("bad input wrote %d events", n)
	}
}
