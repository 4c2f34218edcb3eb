package embedded

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestPackedColumn(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := map[string][]uint64{
		"empty":     {},
		"one":       {42},
		"constant":  make([]uint64, 300),
		"ascending": nil,
		"wide":      nil,
		"extremes":  {0, math.MaxUint64, 1, math.MaxUint64 - 1, 1 << 63},
		"mixed":     nil,
	}
	for i := range 1000 {
		cases["ascending"] = append(cases["ascending"], uint64(i*37+r.IntN(30)))
		cases["wide"] = append(cases["wide"], r.Uint64()>>uint(r.IntN(64)))
	}
	for i := range 777 {
		w := uint(i / packGroup * 9 % 65)
		cases["mixed"] = append(cases["mixed"], 1e12+r.Uint64()&(1<<w-1))
	}
	for name, vals := range cases {
		b := appendPacked([]byte{9, 9}, vals)[2:]
		c, err := parsePacked(b, len(vals))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, v := range vals {
			if got := c.get(i); got != v {
				t.Fatalf("%s: value %d = %d, want %d", name, i, got, v)
			}
		}
		if _, err := parsePacked(b, len(vals)+packGroup); err == nil {
			t.Fatalf("%s: parsed with a group too many", name)
		}
		if _, err := parsePacked(b[:len(b)-1], len(vals)); err == nil {
			t.Fatalf("%s: parsed without its slack", name)
		}
	}
}

func FuzzPackedColumn(f *testing.F) {
	f.Add(appendPacked(nil, []uint64{1, 2, 3, 1000, 5}), 5, 3)
	f.Add(appendPacked(nil, make([]uint64, 200)), 200, 150)
	f.Fuzz(func(t *testing.T, b []byte, n, i int) {
		if n < 0 || n > 1<<20 {
			return
		}
		c, err := parsePacked(b, n)
		if err != nil || n == 0 {
			return
		}
		if i < 0 {
			i = -i
		}
		_ = c.get(i % n) // must not panic
	})
}
