package embedded

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
)

// memtableOf files evs (Seq assigned from 1 in order, skipping the
// indexes in skip) into a new memtable, as the writer does.
func memtableOf(evs []event.Event, skip map[int]bool) *memtable {
	m := newMemtable()
	for i := range evs {
		if skip[i] {
			continue
		}
		ev := evs[i]
		m.add(&ev, appendEvent(nil, &ev), indexEvent(&ev))
	}
	m.settle()
	return m
}

// TestStreamWriterMatchesWriteSegment: a merge output written from input
// segments is byte for byte the segment writeSegment writes from a
// memtable of the same rows (with the merge's block size). It fails when the format changes in one
// writer and not the other.
func TestStreamWriterMatchesWriteSegment(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, tc := range []struct {
		name  string
		sizes []int // rows per input segment
		pad   int   // bytes of data per event (a dictionary from ~130 B)
		del   bool  // leave some rows out
		v4    bool  // inputs in segment version 4
		mixed bool  // inputs in versions 4, 5 and 6 in turn, IDs that collide (keyTestEvents)
		small bool  // inputs are merge outputs themselves (small blocks)
	}{
		{"one-input", []int{300}, 0, false, false, false, false},
		{"three-inputs-dict", []int{700, 64, 1200}, 200, false, false, false, false},
		{"with-deleted-rows", []int{500, 500}, 300, true, false, false, false},
		{"one-row", []int{1}, 0, false, false, false, false},
		{"v4-inputs", []int{400, 250}, 200, true, true, false, false},
		{"v4-v5-v6-inputs", []int{400, 250, 300}, 200, true, false, true, false},
		{"merged-inputs", []int{700, 64, 1200}, 200, true, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			g := newGen(uint64(len(tc.name)))
			total := 0
			for _, n := range tc.sizes {
				total += n
			}
			evs := g.batch(total)
			for i := range evs {
				evs[i].Seq = uint64(i + 1)
				evs[i].Occurred += int64(i % 7) // fewer ties than the generator makes
				// Keys of a few rows in every input: short row lists
				// that the merge must combine in order.
				evs[i].RemoteAddress = fmt.Sprintf("10.1.%d.%d", i%5, i%97)
				if tc.mixed {
					ids := keyTestEvents(total, 5)
					evs[i].UserID, evs[i].ActorID = ids[i].UserID, ids[i].ActorID
				}
				if tc.pad > 0 {
					evs[i].Data = json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q,"word":"w%d"}`, i,
						bytes.Repeat([]byte("ab"), tc.pad/2+i%5), i%13))
				}
			}
			skip := map[int]bool{}
			if tc.del {
				for i := 0; i < total; i += 3 {
					skip[i] = true
				}
			}
			var ins []*mergeIn
			var rows []mref
			lo := 0
			for k, n := range tc.sizes {
				m := memtableOf(evs[lo:lo+n], nil)
				m.gen = uint64(k + 1)
				write := writeSegment
				if tc.small {
					write = func(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
						return writeSegmentBlocks(dir, m, enc, segVersion, mergeBlockRows)
					}
				}
				if tc.v4 || tc.mixed && k%3 == 0 {
					write = writeSegmentV4
				}
				if tc.mixed && k%3 == 1 {
					write = func(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
						return writeSegmentVersion(dir, m, enc, segVersionV5)
					}
				}
				path, err := write(dir, m, enc)
				if err != nil {
					t.Fatal(err)
				}
				s, err := openSegment(path)
				if err != nil {
					t.Fatal(err)
				}
				defer s.close()
				if !tc.mixed && tc.v4 != (s.ver == segVersionV4) {
					t.Fatalf("input version %d", s.ver)
				}
				for j := range s.n {
					row := s.bySeq(j)
					if !skip[int(s.seq(int(row)))-1] {
						rows = append(rows, mref{uint32(k), row})
					}
				}
				ins = append(ins, newMergeIn(s, dec))
				lo += n
			}
			want := memtableOf(evs, skip)
			want.gen = 1 << 40
			wantPath, err := writeSegmentBlocks(dir, want, enc, segVersion, mergeBlockRows)
			if err != nil {
				t.Fatal(err)
			}
			gotDir := filepath.Join(dir, "got")
			os.Mkdir(gotDir, 0o755)
			gotPath, err := writeMergedSegment(gotDir, 1<<40, ins, rows, enc, func() error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(wantPath)
			b, _ := os.ReadFile(gotPath)
			if !bytes.Equal(a, b) {
				sa, err1 := openSegment(wantPath)
				sb, err2 := openSegment(gotPath)
				if err1 != nil || err2 != nil {
					t.Fatalf("files differ (%d vs %d bytes); open: %v / %v", len(a), len(b), err1, err2)
				}
				for sec := range numSections {
					if !bytes.Equal(sa.sec[sec], sb.sec[sec]) {
						t.Errorf("section %d differs: %d vs %d bytes", sec, len(sa.sec[sec]), len(sb.sec[sec]))
					}
				}
				t.Fatalf("merged segment differs from writeSegment's (%d vs %d bytes); meta %s vs %s", len(a), len(b),
					sa.sec[secMeta], sb.sec[secMeta])
			}
			if tc.pad > 0 && !tc.v4 && !tc.mixed && len(ins[0].s.sec[secZDict]) == 0 {
				t.Fatal("no zstd dictionary: the case does not test the sampled dictionary")
			}
			if tc.small && ins[0].s.rpb != mergeBlockRows {
				t.Fatalf("inputs of %d-row blocks, want %d", ins[0].s.rpb, mergeBlockRows)
			}
			out, err := openSegment(gotPath)
			if err != nil {
				t.Fatal(err)
			}
			defer out.close()
			if want := blockRowsFor(segVersion, mergeBlockRows, len(out.sec[secZDict]) > 0); out.rpb != want {
				t.Fatalf("merge output of %d-row blocks, want %d", out.rpb, want)
			}
		})
	}
}
