package ledger

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// RFC 8785 §3.2.2 and §3.2.3: the worked examples.
func TestCanonicalizeRFC8785Examples(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{
			"§3.2.2 primitives",
			`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			"§3.2.3 sorting by UTF-16 code units",
			`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{"nested objects sort too", `{"b":{"z":1,"a":[{"y":2,"x":1}]},"a":0}`, `{"a":0,"b":{"a":[{"x":1,"y":2}],"z":1}}`},
		{"empty containers", ` { "a" : [ ] , "b" : { } } `, `{"a":[],"b":{}}`},
		{"repeated name keeps the last", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"escaped and plain names collide", `{"\u0061":1,"a":2}`, `{"a":2}`},
		{"control characters", `"\u0000\u0001\b\t\n\u000b\f\r\u001f"`, `"\u0000\u0001\b\t\n\u000b\f\r\u001f"`},
		{"HTML and separators stay literal", `"\u003c\u003e\u0026\u2028\u2029\u007f"`, "\"<>&\u2028\u2029\u007f\""},
		{"lone surrogate becomes U+FFFD", `"\ud800x"`, "\"\uFFFDx\""},
		{"number overflow becomes null", `[1e400,-1e400]`, `[null,null]`},
		{"negative zero", `-0.0`, `0`},
		{"integers", `[0,1,-1,9007199254740993,100000000000000000000000]`, `[0,1,-1,9007199254740992,1e+23]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(c.in))
			if err != nil {
				t.Fatalf("Canonicalize: %v", err)
			}
			if string(got) != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			// Canonical output is a fixed point.
			again, err := Canonicalize(got)
			if err != nil || string(again) != string(got) {
				t.Fatalf("not idempotent: %s → %s, %v", got, again, err)
			}
		})
	}
}

// RFC 8785 Appendix B: IEEE 754 bit patterns and their ES6 serialisation.
func TestES6NumbersAppendixB(t *testing.T) {
	for _, c := range []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	} {
		f := math.Float64frombits(c.bits)
		if got := string(AppendES6Number(nil, f)); got != c.want {
			t.Errorf("%016x: got %s, want %s", c.bits, got, c.want)
		}
		// The same value written any JSON way canonicalises alike.
		in := strconv.FormatFloat(f, 'g', -1, 64)
		if got, err := Canonicalize([]byte(in)); err != nil || string(got) != c.want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", in, got, err, c.want)
		}
	}
}

// Every finite double survives the round trip through its ES6 form.
func TestES6NumbersRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		f := math.Float64frombits(rnd.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := AppendES6Number(nil, f)
		back, err := strconv.ParseFloat(string(s), 64)
		if err != nil || (back != f && !(f == 0 && back == 0)) {
			t.Fatalf("%v (%016x) → %s → %v, %v", f, math.Float64bits(f), s, back, err)
		}
	}
}

func TestCanonicalizeRefusesInvalidJSON(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `+1`, `1e`, `"\x"`, `"\u12"`, "\"a\x01\"", `tru`, `{} {}`, `{"a":1}x`, `NaN`, `'a'`} {
		if out, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("Canonicalize(%q) = %s, want an error", in, out)
		}
	}
	deep := make([]byte, 0, 4002)
	for range 2001 {
		deep = append(deep, '[')
	}
	if _, err := Canonicalize(deep); err == nil {
		t.Error("Canonicalize accepted nesting beyond its bound")
	}
}

// The canonical form is independent of how a producer wrote the JSON:
// whatever encoding/json writes from the decoded value canonicalises alike.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x"],"b":null}`, `"\u20ac"`, `[1e300,-0,0.1]`, `{"\ud83d\ude00":1,"\ufb33":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c1, err := Canonicalize(in)
		if err != nil {
			return
		}
		if !json.Valid(c1) {
			t.Fatalf("canonical form is not JSON: %s", c1)
		}
		c2, err := Canonicalize(c1)
		if err != nil || string(c1) != string(c2) {
			t.Fatalf("not idempotent: %s → %s, %v", c1, c2, err)
		}
		var v any
		if json.Unmarshal(in, &v) != nil {
			return
		}
		re, err := json.Marshal(v)
		if err != nil {
			return
		}
		c3, err := Canonicalize(re)
		if err != nil || string(c3) != string(c1) {
			t.Fatalf("re-encoded input canonicalises differently:\n%s\n%s (%v)", c1, c3, err)
		}
	})
}
