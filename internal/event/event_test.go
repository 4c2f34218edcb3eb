package event

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"John.Doe@Example.com", []string{"john", "doe", "example", "com"}},
		{"Mozilla/5.0 (X11) Chrome/120.0", []string{"mozilla", "5", "0", "x11", "chrome", "120", "0"}},
		{"  ", nil},
		{"Ünïcode-ÄÖ", []string{"ünïcode", "äö"}},
		{"203.0.113.7", []string{"203", "0", "113", "7"}},
	} {
		var got []string
		Tokenize(tc.in, func(s string) { got = append(got, s) })
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTokensCoverNestedData(t *testing.T) {
	e := Event{Action: "LoginSucceed", LoginIDs: []string{"a@b.io"}, Tenants: []string{"T1"},
		Data: json.RawMessage(`{"request_details":{"headers":{"user-agent":"Chrome"}},"n":[1,"Deep"]}`)}
	toks := e.Tokens()
	for _, want := range []string{"loginsucceed", "a", "b", "io", "t1", "request", "details", "user", "agent", "chrome", "deep"} {
		found := false
		for _, tok := range toks {
			found = found || tok == want
		}
		if !found {
			t.Errorf("token %q missing from %q", want, toks)
		}
	}
	for _, tok := range toks {
		if tok == "1" {
			t.Errorf("numbers in data are not text, got token %q", tok)
		}
	}
}

func TestJSONOccurredIsStringAndReadsBoth(t *testing.T) {
	e := Event{ID: "x", Action: "A", Occurred: 1732540000123}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"occurred":"1732540000123"`) || !strings.Contains(string(b), `"tenants":[]`) {
		t.Fatalf("wire form %s", b)
	}
	for _, in := range []string{`{"occurred":1732540000123}`, `{"occurred":"1732540000123"}`} {
		var got Event
		if err := json.Unmarshal([]byte(in), &got); err != nil || got.Occurred != 1732540000123 {
			t.Errorf("%s: got %d, %v", in, got.Occurred, err)
		}
	}
	var bad Event
	if err := json.Unmarshal([]byte(`{"occurred":"yesterday"}`), &bad); err == nil {
		t.Error("a non-numeric occurred must be refused")
	}
}

func TestValidate(t *testing.T) {
	ok := func() Event {
		return Event{Action: "A", Type: TypeInfo, Level: LevelProject, ProjectID: "P1", Occurred: time.Now().UnixMilli()}
	}
	good := ok()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mut   func(*Event)
		field string
	}{
		"no action":      {func(e *Event) { e.Action = "" }, "action"},
		"bad type":       {func(e *Event) { e.Type = "debug" }, "type"},
		"company w/ prj": {func(e *Event) { e.Level = LevelCompany }, "projectId"},
		"future":         {func(e *Event) { e.Occurred += int64(48 * time.Hour / time.Millisecond) }, "occurred"},
		"nul":            {func(e *Event) { e.UserID = "a\x00b" }, "userId"},
		"bad utf8":       {func(e *Event) { e.Tenants = []string{"\xff"} }, "tenants[0]"},
		"data array":     {func(e *Event) { e.Data = json.RawMessage(`[1]`) }, "data"},
		"deep data":      {func(e *Event) { e.Data = json.RawMessage(strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)) }, "data"},
		"long field":     {func(e *Event) { e.ActorID = strings.Repeat("x", MaxFieldLen+1) }, "actorId"},
	} {
		e := ok()
		tc.mut(&e)
		err := e.Validate()
		fe, isField := err.(*FieldError)
		if !isField || fe.Field != tc.field {
			t.Errorf("%s: got %v, want an error on %s", name, err, tc.field)
		}
	}
}
