package httpsink

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestMarshalKeepsCharactersLiteral(t *testing.T) {
	in := map[string]any{"s": "<a&b> \u2028 é 😀 \"q\" \\ \n \x01"}
	got, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"s":"<a&b> ` + "\u2028" + ` é 😀 \"q\" \\ \n \u0001"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestUnescapeLiteralsRawData(t *testing.T) {
	cases := map[string]string{
		`{"a":"\u00e9\ud83d\ude00"}`: `{"a":"é😀"}`,
		`{"a":"\\u0041"}`:            `{"a":"\\u0041"}`,  // an escaped backslash, then text
		`{"a":"\ud83d x"}`:           `{"a":"\ud83d x"}`, // lone surrogate stays escaped
		`{"a":"\u0022\u005c\u001f"}`: `{"a":"\u0022\u005c\u001f"}`,
		`{"a":"\t\u0041"}`:           `{"a":"\tA"}`,
	}
	for in, want := range cases {
		if got := string(unescapeLiterals([]byte(in))); got != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
}

func FuzzUnescapeLiterals(f *testing.F) {
	f.Add(`{"a":"\u00e9\ud83d\ude00 \\u0041 \u0022"}`)
	f.Add(`["\ud800","\udc00\ud800"]`)
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			return
		}
		out := unescapeLiterals([]byte(s))
		var a, b any
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			return
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("output invalid: %s -> %s: %v", s, out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("value changed: %s -> %s", s, out)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Wed, 25 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Wed, 25 Nov 2026 11:00:00 GMT": 0,
	}
	for v, want := range cases {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestRefusesLinkLocal(t *testing.T) {
	c := NewClient(false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:80/"} {
		_, err := Post(ctx, c, u, nil, []byte("{}"))
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: err = %v, want ErrForbiddenAddress", u, err)
		}
	}
}
