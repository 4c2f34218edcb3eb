package nats

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/stream"
)

func TestParseConfigNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		raw, field string
	}{
		{`[]`, "(root)"},
		{`{}`, "url"},
		{`{"url":"http://x:4222"}`, "url"},
		{`{"url":"nats://a:4222, http://b"}`, "url"},
		{`{"url":"nats://a:4222","subjectPrefix":"a.*"}`, "subjectPrefix"},
		{`{"url":"nats://a:4222","subjectPrefix":"a..b"}`, "subjectPrefix"},
		{`{"url":"nats://a:4222","stream":"a.b"}`, "stream"},
		{`{"url":"nats://a:4222","timeout":"soon"}`, "timeout"},
		{`{"url":"nats://a:4222","timeout":5}`, "timeout"},
		{`{"url":"nats://a:4222","timeout":"-1s"}`, "timeout"},
		{`{"url":"nats://a:4222","maxPending":"many"}`, "maxPending"},
		{`{"url":"nats://a:4222","maxPending":-1}`, "maxPending"},
		{`{"url":"nats://a:4222","token":"t","username":"u","password":"p"}`, "token"},
		{`{"url":"nats://a:4222","username":"u"}`, "password"},
		{`{"url":"nats://a:4222","subjetPrefix":"x"}`, "subjetPrefix"},
		{`{"url":7}`, "url"},
	} {
		_, err := ParseConfig(json.RawMessage(tc.raw))
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want a ConfigError", tc.raw, err)
			continue
		}
		if ce.Field != tc.field {
			t.Errorf("%s: error names %q (%v), want %q", tc.raw, ce.Field, err, tc.field)
		}
		var fe *stream.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: the engine sees %v, want a stream.FieldError for %q", tc.raw, fe, tc.field)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(json.RawMessage(`{"url":"nats://127.0.0.1:4222","timeout":"3s","stream":"AUDIT"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SubjectPrefix != DefaultSubjectPrefix || c.MaxPending != DefaultMaxPending ||
		time.Duration(c.Timeout) != 3*time.Second || c.Stream != "AUDIT" {
		t.Fatalf("unexpected config %+v", c)
	}
	if _, err := Factory(json.RawMessage(`{"url":"nats://127.0.0.1:4222"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestSubject(t *testing.T) {
	for _, tc := range []struct {
		e    event.Event
		want string
	}{
		{event.Event{Level: event.LevelProject, ProjectID: "P2abc"}, "audit.P2abc"},
		{event.Event{Level: event.LevelCompany}, "audit.company"},
		{event.Event{Level: event.LevelProject, ProjectID: "a.b*c> d"}, "audit.a_b_c__d"},
	} {
		if got := subject("audit", &tc.e); got != tc.want {
			t.Errorf("subject(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}
