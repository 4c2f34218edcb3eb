package embedded

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// sameVerdict fails t when checkRoaring and roaring's own Validate
// disagree on b (a buffer FromBuffer reads; others are skipped).
func sameVerdict(t *testing.T, b []byte) {
	t.Helper()
	bm := roaring.New()
	if _, err := bm.FromBuffer(b); err != nil {
		return
	}
	want := bm.Validate()
	if got := checkRoaring(b); (got == nil) != (want == nil) {
		t.Fatalf("checkRoaring says %v, Validate says %v, for % x", got, want, b[:min(len(b), 64)])
	}
}

// roaringSamples are serialized bitmaps with every container kind: short
// arrays, full bitmaps, run containers of one and of many runs, and the
// two header forms (with and without run containers, below and above the
// four containers from which offsets are written).
func roaringSamples(r *rand.Rand) [][]byte {
	var out [][]byte
	add := func(bm *roaring.Bitmap) {
		b, err := bm.ToBytes()
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	add(roaring.BitmapOf(0))
	add(roaring.BitmapOf(1, 5, 9, 70000))
	for _, containers := range []int{1, 3, 4, 9} {
		sparse, dense, runs := roaring.New(), roaring.New(), roaring.New()
		for c := range containers {
			base := uint32(c) << 16
			for range 50 {
				sparse.Add(base + uint32(r.IntN(1<<16)))
			}
			for range 6000 {
				dense.Add(base + uint32(r.IntN(1<<16)))
			}
			for v := uint32(0); v < 1<<16; v += 3 + uint32(r.IntN(40)) {
				runs.AddRange(uint64(base+v), uint64(base+v)+1+uint64(r.IntN(20)))
			}
		}
		runs.RunOptimize()
		mixed := roaring.Or(sparse, runs)
		mixed.RunOptimize()
		add(sparse)
		add(dense)
		add(runs)
		add(mixed)
	}
	return out
}

// TestCheckRoaringAgreesWithValidate: on real bitmaps and on many damaged
// copies of them (bytes flipped, run starts and lengths moved), the linear
// check accepts exactly what Validate accepts. Damage that keeps the
// framing readable is what matters: bad runs read fine and then panic.
func TestCheckRoaringAgreesWithValidate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	samples := roaringSamples(r)
	rejected := 0
	for _, b := range samples {
		if err := checkRoaring(b); err != nil {
			t.Fatalf("a bitmap roaring wrote is refused: %v", err)
		}
		for range 3000 {
			d := append([]byte(nil), b...)
			for range 1 + r.IntN(3) {
				i := r.IntN(len(d))
				if r.IntN(2) == 0 {
					d[i] ^= 1 << r.IntN(8)
				} else {
					d[i] += byte(1 + r.IntN(3)) // a start or length moved by a little
				}
			}
			sameVerdict(t, d)
			if bm := roaring.New(); checkRoaring(d) != nil {
				if _, err := bm.FromBuffer(d); err == nil {
					rejected++
				}
			}
		}
	}
	// The damage must reach the containers, or the test shows nothing.
	if rejected < 1000 {
		t.Fatalf("only %d damaged bitmaps that FromBuffer read were refused", rejected)
	}
}

// runContainer serializes a bitmap of one run container holding runs as
// given, (start, length-1) pairs, whether or not roaring would write them.
func runContainer(runs ...[2]uint16) []byte {
	b := []byte{0x3b, 0x30, 0, 0, 1, 0, 0, 0, 0} // run cookie, one container, it is a run container, key 0, cardinality
	b = binary.LittleEndian.AppendUint16(b, uint16(len(runs)))
	for _, r := range runs {
		b = binary.LittleEndian.AppendUint16(b, r[0])
		b = binary.LittleEndian.AppendUint16(b, r[1])
	}
	return b
}

// TestCheckRoaringRuns: the run containers Validate refuses (touching,
// overlapping, unsorted, repeated, past 65535, none) are refused, and the
// closest valid ones are not.
func TestCheckRoaringRuns(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"one run", runContainer([2]uint16{10, 9}), true},
		{"gap of one value", runContainer([2]uint16{10, 9}, [2]uint16{21, 0}, [2]uint16{23, 5}), true},
		{"up to 65535", runContainer([2]uint16{65530, 5}), true},
		{"touching", runContainer([2]uint16{10, 9}, [2]uint16{20, 3}), false},
		{"touching later", runContainer([2]uint16{0, 0}, [2]uint16{10, 9}, [2]uint16{21, 1}, [2]uint16{23, 0}), false},
		{"overlapping", runContainer([2]uint16{10, 9}, [2]uint16{15, 9}), false},
		{"unsorted", runContainer([2]uint16{30, 1}, [2]uint16{10, 1}), false},
		{"repeated", runContainer([2]uint16{10, 1}, [2]uint16{10, 1}), false},
		{"past 65535", runContainer([2]uint16{65530, 6}), false},
		{"no runs", runContainer(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := roaring.New().FromBuffer(c.b); err != nil {
				t.Fatalf("FromBuffer: %v", err)
			}
			if err := checkRoaring(c.b); (err == nil) != c.ok {
				t.Fatalf("checkRoaring: %v, want ok=%v", err, c.ok)
			}
			sameVerdict(t, c.b)
		})
	}
}

func FuzzCheckRoaring(f *testing.F) {
	for _, b := range roaringSamples(rand.New(rand.NewPCG(3, 4))) {
		f.Add(b)
	}
	f.Add(runContainer([2]uint16{10, 9}, [2]uint16{21, 0}))
	f.Fuzz(sameVerdict)
}
