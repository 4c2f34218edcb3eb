package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// DecodeConfig decodes a destination's JSON configuration into v strictly
// (an unknown field is an error, so a typo is not silently ignored). Fields
// are decoded one at a time, in name order, so that the error names the
// field at fault; nil means v was filled. Validation is the caller's.
func DecodeConfig(raw json.RawMessage, v any) *FieldError {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return &FieldError{Field: "(root)", Reason: "must be a JSON object"}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		one, err := json.Marshal(map[string]json.RawMessage{name: fields[name]})
		if err != nil {
			return &FieldError{Field: name, Reason: err.Error()}
		}
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return configFieldError(name, err)
		}
	}
	return nil
}

func configFieldError(name string, err error) *FieldError {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			name = te.Field // the path inside a nested object
		}
		return &FieldError{Field: name, Reason: "must be a JSON " + jsonKind(te.Type)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &FieldError{Field: name, Reason: "is not a known field"}
	default:
		return &FieldError{Field: name, Reason: err.Error()}
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Float64:
		return "number"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice:
		return "array"
	}
	return t.String()
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("10s", "1m30s"), as destination configurations take timeouts.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration string such as "10s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration string such as \"10s\": %w", err)
	}
	*d = Duration(v)
	return nil
}
