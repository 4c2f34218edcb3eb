package embedded

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
)

// keyTestEvents are events whose user and actor IDs collide every way the
// version 6 key transform has to keep apart: IDs equal but for case, IDs
// that are not single tokens, empty IDs, an actor equal to the user or
// not, IDs lower-casing to a token that also occurs in data, tokens that
// extend an ID.
func keyTestEvents(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 3))
	ids := []string{"U2Abc9", "U2aBC9", "u2abc9", "U2ABC9", "u2abc", "u2abc9x", "K2Bot", "k2bot", "us-er.1", "ÄbC", "",
		"Zz", "zz", "0", "U2Abc9 more"}
	words := []string{"u2abc9", "u2abc", "zz", "k2bot", "hello", "u2abc9x", "us", "er", "äbc", "0"}
	evs := make([]event.Event, n)
	for i := range evs {
		e := &evs[i]
		e.Seq = uint64(i + 1)
		e.ID = fmt.Sprintf("ev%d", i)
		e.CompanyID = "c1"
		e.Occurred = 1_700_000_000_000 + int64(r.IntN(100_000))
		e.Level = event.LevelProject
		e.ProjectID = "p1"
		e.Action = "A" + string(rune('a'+r.IntN(3)))
		e.UserID = ids[r.IntN(len(ids))]
		switch r.IntN(3) {
		case 0, 1:
			e.ActorID = e.UserID
		default:
			e.ActorID = ids[r.IntN(len(ids))]
		}
		if r.IntN(2) == 0 {
			e.LoginIDs = []string{words[r.IntN(len(words))]}
		}
		if r.IntN(2) == 0 {
			b, _ := json.Marshal(map[string]string{"w": words[r.IntN(len(words))], "id": ids[r.IntN(len(ids))]})
			e.Data = b
		}
	}
	return evs
}

// TestSegmentKeysV6 writes the same rows as version 5 (logical keys
// stored as they are) and version 6, and requires every lookup a search
// makes to answer the same rows from both: every logical key, IDs that are
// absent, and token prefix scans of every prefix of every token.
func TestSegmentKeysV6(t *testing.T) {
	for _, n := range []int{1, 7, 500, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := newMemtable()
			evs := keyTestEvents(n, uint64(n))
			for i := range evs {
				m.add(&evs[i], appendEvent(nil, &evs[i]), indexEvent(&evs[i]))
			}
			m.gen = 1
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			var segs [2]*segment
			for k, ver := range []int{segVersionV5, segVersion6} {
				path, err := writeSegmentVersion(t.TempDir(), m, enc, ver)
				if err != nil {
					t.Fatal(err)
				}
				if segs[k], err = openSegment(path); err != nil {
					t.Fatal(err)
				}
				defer segs[k].close()
				if segs[k].ver != ver {
					t.Fatalf("wrote version %d, read %d", ver, segs[k].ver)
				}
			}
			v5, v6 := segs[0], segs[1]
			var stored6 []string
			if err := v6.scanDict("", func(_ int, key []byte) bool { stored6 = append(stored6, string(key)); return true }); err != nil {
				t.Fatal(err)
			}
			if n > 1 && !slices.Contains(stored6, storedSelf) {
				t.Errorf("version 6 stores no %q key: keys %q", storedSelf, stored6)
			}
			same := func(what string, a, b *roaring.Bitmap) {
				t.Helper()
				if a == nil {
					a = roaring.New()
				}
				if b == nil {
					b = roaring.New()
				}
				if !a.Equals(b) {
					t.Fatalf("%s: version 5 %v, version 6 %v", what, a.ToArray(), b.ToArray())
				}
			}
			var keys []string
			if err := v5.scanDict("", func(_ int, key []byte) bool { keys = append(keys, string(key)); return true }); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"absent", "U2abc9", "ZZ", "u2ab", "k2", ""} {
				keys = append(keys, pkey(keyUser, id), pkey(keyActor, id), pkey(keyToken, strings.ToLower(id)))
			}
			prefixes := map[string]bool{}
			for _, k := range keys {
				for _, f := range []func(*segment, string) (*roaring.Bitmap, error){(*segment).posting, (*segment).postingOf} {
					a, err := f(v5, k)
					if err != nil {
						t.Fatal(err)
					}
					b, err := f(v6, k)
					if err != nil {
						t.Fatal(err)
					}
					same(fmt.Sprintf("posting %q", k), a, b)
				}
				if k[0] == keyToken {
					for l := 1; l <= len(k); l++ {
						prefixes[k[:l]] = true
					}
				}
			}
			for p := range prefixes {
				var got [2]*roaring.Bitmap
				for i, s := range segs {
					got[i] = roaring.New()
					if err := s.prefixPostings(p, func(bm *roaring.Bitmap) { got[i].Or(bm) }); err != nil {
						t.Fatal(err)
					}
				}
				same(fmt.Sprintf("prefix %q", p), got[0], got[1])
			}
		})
	}
}

// TestSegmentKeysCheck: Check accepts version 6 and version 5 segments of
// the same rows, and refuses a version 5 file relabelled as version 6 (its
// keys are the logical ones, not those version 6 stores).
func TestSegmentKeysCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		ver     int
		relabel bool
	}{{"v7", segVersion, false}, {"v6", segVersion6, false}, {"v5", segVersionV5, false}, {"v5 relabelled v6", segVersionV5, true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			e := openT(t, dir)
			evs := keyTestEvents(400, 9)
			for i := range evs {
				evs[i].Seq = 0
			}
			appendT(t, e, evs)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			path := segmentFiles(t, dir)[0]
			if c.ver != segVersion {
				rewriteAsVersion(t, path, c.ver)
			}
			if c.relabel {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				off, size := sectionOffset(t, path, secMeta)
				meta := b[off : off+uint64(size)]
				j := strings.Index(string(meta), `"version":5`)
				if j < 0 {
					t.Fatalf("meta %s", meta)
				}
				meta[j+len(`"version":`)] = '6'
				reseal(b)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e = openT(t, dir)
			defer e.Close()
			if len(e.Damage()) != 0 {
				t.Fatalf("Damage at open: %+v", e.Damage())
			}
			_, err := e.Check(t.Context())
			t.Logf("Check: %v", err)
			if c.relabel != (err != nil) {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}
