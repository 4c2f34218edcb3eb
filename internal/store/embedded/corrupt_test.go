package embedded

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/query"
	"github.com/audittrail/audittrail/internal/store"
)

// segmentFiles returns the segment files of dir, oldest first.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, segDirName, "*"+segSuffix))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	return m
}

func flipByte(t *testing.T, path string, off uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// sectionOffset returns where section sec of the segment file starts and
// its length.
func sectionOffset(t *testing.T, path string, sec int) (uint64, int) {
	t.Helper()
	s, err := openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	return s.secOff[sec], len(s.sec[sec])
}

// keyOf is how Damage names an event.
func keyOf(ev *event.Event) string { return ev.CompanyID + "/" + ev.ID }

// TestCorruptSegmentRepairedAtOpen damages one byte of each kind of
// section of a segment. Open must succeed, keep every row it can verify,
// rebuild the segment from them, name exactly the rows it lost (a damaged
// event block loses its rows; everything else is rebuilt from the blocks),
// keep the original aside, and leave a store that passes Check and serves
// no damaged row. A second Open finds nothing more to repair.
//
// It runs on the segment formats a data directory can hold: the current
// version without a zstd dictionary (a small segment) and with one, in
// each block size the writers use and the bounds, the older versions, and
// version 4 (written by the old writer kept in segment_v4_test.go).
func TestCorruptSegmentRepairedAtOpen(t *testing.T) {
	for _, format := range []struct {
		name string
		n    int
		ver  int
		rpb  int
		dict bool
	}{{"v9", 300, segVersion, rowsPerBlockV5, false}, {"v9 flush with zstd dictionary", 3000, segVersion, flushBlockRows, true},
		{"v9 merge output", 3000, segVersion, mergeBlockRows, true}, {"v9 with 1-row blocks", 3000, segVersion, 1, true},
		{"v9 with the biggest blocks", 3000, segVersion, maxBlockRows, true},
		{"v8 with zstd dictionary", 3000, segVersion8, rowsPerBlockV5, true},
		{"v7 with zstd dictionary", 3000, segVersion7, rowsPerBlockV5, true},
		{"v6 with zstd dictionary", 3000, segVersion6, rowsPerBlockV5, true},
		{"v5", 300, segVersionV5, rowsPerBlockV5, false}, {"v4", 300, segVersionV4, rowsPerBlockV4, false}} {
		t.Run(format.name, func(t *testing.T) { testCorruptSegmentRepairedAtOpen(t, format.n, format.rpb, format.ver, format.dict) })
	}
}

func testCorruptSegmentRepairedAtOpen(t *testing.T, n, rpb, ver int, dict bool) {
	cases := map[string]struct {
		sec int // -1: the trailer
		// lost: rows lost (-1: unknown), all: every row
		lost int
	}{
		"event block":      {sec: secBlocks, lost: rpb},
		"postings":         {sec: secPosts},
		"dictionary":       {sec: secDictKeys},
		"occurred column":  {sec: secOccurred},
		"seq column":       {sec: secSeq},
		"keys":             {sec: secKeyBytes},
		"meta":             {sec: secMeta},
		"block offsets":    {sec: secBlockOffs, lost: n},
		"trailer (footer)": {sec: -1, lost: -1},
		"seq order":        {sec: secBySeq},
		"key offsets":      {sec: secKeyOffs},
		"posting offsets":  {sec: secPostOffs},
	}
	if dict {
		cases["zstd dictionary"] = struct{ sec, lost int }{secZDict, 0}
		cases["zstd dictionary copy"] = struct{ sec, lost int }{secZDictCopy, 0}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := openT(t, dir)
			all := newGen(11).batch(n)
			appendT(t, e, all) // sets their Seq
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			path := segmentFiles(t, dir)[0]
			if ver != segVersion || rpb != blockRowsFor(segVersion, flushBlockRows, dict) {
				rewriteAsBlocks(t, path, ver, rpb)
			}
			if tc.sec == secZDict || tc.sec == secZDictCopy {
				if _, size := sectionOffset(t, path, tc.sec); size == 0 {
					t.Fatalf("the segment of %d events has no zstd dictionary", n)
				}
			}
			if tc.sec < 0 {
				st, _ := os.Stat(path)
				flipByte(t, path, uint64(st.Size())-segTrailerSize-3) // inside the footer
			} else {
				off, size := sectionOffset(t, path, tc.sec)
				flipByte(t, path, off+uint64(size/2))
			}

			e, err := Open(Options{Dir: dir, Logger: quiet})
			if err != nil {
				t.Fatalf("Open over a damaged segment: %v", err)
			}
			dmg := e.Damage()
			if len(dmg) != 1 || dmg[0].Kind != "segment" || !dmg[0].Repaired || dmg[0].File != filepath.Join(segDirName, filepath.Base(path)) {
				t.Fatalf("Damage = %+v, want one repaired segment", dmg)
			}
			d := dmg[0]
			if d.RowsLost != tc.lost {
				t.Fatalf("RowsLost %d, want %d (%+v)", d.RowsLost, tc.lost, d)
			}
			if _, err := os.Stat(filepath.Join(dir, d.Quarantined)); err != nil {
				t.Fatalf("the damaged original is not kept: %v", err)
			}
			got := allOf(t, e)
			gotKeys := map[string]bool{}
			for i := range got {
				gotKeys[keyOf(&got[i])] = true
			}
			var missing []string
			for i := range all {
				if !gotKeys[keyOf(&all[i])] {
					missing = append(missing, keyOf(&all[i]))
				}
			}
			if want := max(tc.lost, 0); tc.lost >= 0 && len(missing) != want {
				t.Fatalf("%d events missing, want %d", len(missing), want)
			}
			if tc.lost < 0 && len(got) != 0 {
				t.Fatalf("an unreadable segment still serves %d rows", len(got))
			}
			if d.RowsKept != len(got) {
				t.Fatalf("RowsKept %d, %d served", d.RowsKept, len(got))
			}
			if tc.sec == secBlocks {
				// Exactly the lost events are named, by id.
				slices.Sort(missing)
				lostIDs := slices.Sorted(slices.Values(d.LostIDs))
				if !slices.Equal(missing, lostIDs) {
					t.Fatalf("LostIDs %v, missing %v", lostIDs, missing)
				}
				if len(d.LostRows) != 1 || !strings.HasPrefix(d.LostRows[0], "rows ") {
					t.Fatalf("LostRows %v", d.LostRows)
				}
			}
			// What is served is the original, byte for byte.
			byKey := map[string]event.Event{}
			for _, ev := range all {
				byKey[keyOf(&ev)] = ev
			}
			for _, ev := range got {
				want := byKey[keyOf(&ev)]
				if ev.Seq != want.Seq || ev.Occurred != want.Occurred || string(ev.Data) != string(want.Data) || ev.UserID != want.UserID {
					t.Fatalf("served %s differs from what was stored", keyOf(&ev))
				}
			}
			// Every search path agrees with the rows kept.
			for _, c := range []string{"c1", "c2"} {
				q := query.Query{CompanyID: c, ProjectID: "P1", IncludeProject: true, IncludeCompany: true, Size: 1000}
				res, err := e.Search(context.Background(), q)
				if err != nil {
					t.Fatalf("Search: %v", err)
				}
				if want := reference(got, q); !sameIDs(res.Events, want[:min(len(want), q.Size)]) || res.Total != len(want) {
					t.Fatalf("Search %s: %d events (total %d), want %d", c, len(res.Events), res.Total, len(want))
				}
			}
			checkT(t, e, len(got))
			kept := len(got)
			if tc.sec == secBlocks {
				// The lost events are forgotten by the dedupe index too: their
				// sender can store them again.
				var resend []event.Event
				for _, ev := range all {
					if !gotKeys[keyOf(&ev)] {
						resend = append(resend, ev)
					}
				}
				appendT(t, e, resend)
				for _, ev := range resend {
					if ev.Seq == 0 {
						t.Fatalf("re-sent lost event %s was taken for a duplicate", keyOf(&ev))
					}
				}
				kept = n
				checkT(t, e, kept)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = openT(t, dir)
			defer e.Close()
			if d := e.Damage(); len(d) != 0 {
				t.Fatalf("second Open found damage again: %+v", d)
			}
			if n := len(allOf(t, e)); n != kept {
				t.Fatalf("second Open serves %d events, want %d", n, kept)
			}
		})
	}
}

// TestCorruptionFoundWhileServing: bytes that change on disk after Open
// verified them are caught by the per-block checksum: the read answers
// ErrCorrupt (never the damaged row), the damage is recorded, and the next
// Open repairs the segment keeping every other row.
func TestCorruptionFoundWhileServing(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir)
	all := newGen(12).batch(300)
	appendT(t, e, all)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openT(t, dir)
	path := segmentFiles(t, dir)[0]
	off, size := sectionOffset(t, path, secBlocks)
	flipByte(t, path, off+uint64(size/2)) // the mapping shows the change
	if _, err := e.ReadFrom(context.Background(), 0, 1000); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("ReadFrom over a block damaged while open: %v, want ErrCorrupt", err)
	}
	d := e.Damage()
	if len(d) != 1 || d[0].Kind != "read" || d[0].File != filepath.Join(segDirName, filepath.Base(path)) {
		t.Fatalf("Damage = %+v, want one read failure naming the segment", d)
	}
	if _, err := e.Check(context.Background()); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Check = %v, want ErrCorrupt", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openT(t, dir)
	defer e.Close()
	d = e.Damage()
	if len(d) != 1 || d[0].Kind != "segment" || d[0].RowsLost != rowsPerBlockV5 || len(d[0].LostIDs) != rowsPerBlockV5 {
		t.Fatalf("Damage after restart = %+v, want one block's rows named", d)
	}
	checkT(t, e, len(all)-rowsPerBlockV5)
}

// TestWALRecordDamage: a record in the middle of the log that fails its
// checksum was acknowledged (later records were written after its
// fsync): Open keeps every other record, reports the lost batch with the
// ids its bytes still show, and never serves its events.
func TestWALRecordDamage(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir)
	g := newGen(13)
	batches := [][]event.Event{g.batch(10), g.batch(10), g.batch(10)}
	for _, b := range batches {
		appendT(t, e, b)
	}
	e.crash()
	path := newestWAL(t, dir)
	// The second record ends where the third begins: damage its last byte
	// (inside the last event's data, so the ids stay readable).
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := walHeaderSize + int(le32(b))
	second := first + walHeaderSize + int(le32(b[first:]))
	flipByte(t, path, uint64(second-1))

	e = openT(t, dir)
	defer e.Close()
	d := e.Damage()
	if len(d) != 1 || d[0].Kind != "log-record" || d[0].Repaired || d[0].RowsLost != 10 {
		t.Fatalf("Damage = %+v, want one lost record of 10 events", d)
	}
	for i, ev := range batches[1] {
		if want := keyOf(&ev) + " (unverified)"; d[0].LostIDs[i] != want {
			t.Fatalf("LostIDs[%d] = %q, want %q", i, d[0].LostIDs[i], want)
		}
	}
	got := allOf(t, e)
	want := append(slices.Clone(batches[0]), batches[2]...)
	if !sameIDs(got, want) {
		t.Fatalf("after a damaged record: %v, want batches 1 and 3", ids(got))
	}
	checkT(t, e, 20)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// rewriteAsV4 replaces the segment at path by the same rows written by
// the version 4 writer, as a data directory of an older build holds them.
func rewriteAsV4(t *testing.T, path string) { rewriteAsVersion(t, path, segVersionV4) }

// rewriteAsVersion replaces the segment at path by the same rows written
// as version ver (4 to 7), as a data directory of an older build holds them.
func rewriteAsVersion(t *testing.T, path string, ver int) {
	t.Helper()
	rewriteAsBlocks(t, path, ver, rowsPerBlockV5)
}

// rewriteAsBlocks is rewriteAsVersion with blocks of rpb rows (version 8
// with a zstd dictionary; ignored otherwise).
func rewriteAsBlocks(t *testing.T, path string, ver, rpb int) {
	t.Helper()
	s, err := openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	evs := make([]event.Event, s.n)
	bc := newBlockCache(nil)
	for row := range s.n {
		if evs[row], err = bc.event(s, row, dec); err != nil {
			t.Fatal(err)
		}
	}
	gen := s.meta.Gen
	s.close()
	slices.SortFunc(evs, func(a, b event.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	m := newMemtable()
	m.gen = gen
	for i := range evs {
		m.add(&evs[i], appendEvent(nil, &evs[i]), indexEvent(&evs[i]))
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if ver == segVersionV4 {
		_, err = writeSegmentV4(filepath.Dir(path), m, enc)
	} else {
		_, err = writeSegmentBlocks(filepath.Dir(path), m, enc, ver, rpb)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err = openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.ver != ver {
		t.Fatalf("rewritten segment has version %d", s.ver)
	}
	if want := blockRowsFor(ver, rpb, len(s.sec[secZDict]) > 0); ver != segVersionV4 && s.rpb != want {
		t.Fatalf("rewritten segment has %d-row blocks, want %d", s.rpb, want)
	}
}

// TestRepairSmallBlocksWithoutMeta: meta, which says how many rows a
// version 8 block holds, is damaged together with one event block. The
// repair counts the rows of the intact blocks, so the lost rows are still
// named by their range, and every other row is kept.
func TestRepairSmallBlocksWithoutMeta(t *testing.T) {
	for _, rpb := range []int{1, mergeBlockRows} {
		t.Run(fmt.Sprint(rpb), func(t *testing.T) {
			const n = 3000
			dir := t.TempDir()
			e := openT(t, dir)
			all := newGen(14).batch(n)
			appendT(t, e, all)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			path := segmentFiles(t, dir)[0]
			rewriteAsBlocks(t, path, segVersion, rpb)
			s, err := openSegment(path)
			if err != nil {
				t.Fatal(err)
			}
			// The damaged block: one in the middle.
			blk := s.n / s.rpb / 2
			off := s.secOff[secBlocks] + (s.u64(secBlockOffs, blk)+s.u64(secBlockOffs, blk+1))/2
			metaOff := s.secOff[secMeta] + 2
			s.close()
			flipByte(t, path, off)
			flipByte(t, path, metaOff)

			e = openT(t, dir)
			defer e.Close()
			d := e.Damage()
			if len(d) != 1 || !d[0].Repaired {
				t.Fatalf("Damage = %+v, want one repaired segment", d)
			}
			want := fmt.Sprintf("rows %d-%d ", blk*rpb, blk*rpb+rpb-1)
			if d[0].RowsLost != rpb || len(d[0].LostRows) != 1 || !strings.HasPrefix(d[0].LostRows[0], want) {
				t.Fatalf("RowsLost %d, LostRows %q, want %d rows named %q", d[0].RowsLost, d[0].LostRows, rpb, want)
			}
			if got := allOf(t, e); len(got) != n-rpb || d[0].RowsKept != n-rpb {
				t.Fatalf("%d rows served, %d kept, want %d", len(got), d[0].RowsKept, n-rpb)
			}
			checkT(t, e, n-rpb)
		})
	}
}

// TestBlockRowsInMeta: a version 8 segment holds the block size it says
// (a power of two up to 16); earlier versions hold 16-row blocks only.
func TestBlockRowsInMeta(t *testing.T) {
	m := memtableOf(newGen(15).batch(3000), nil) // enough for a zstd dictionary
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, c := range []struct {
		ver, rpb int
		claim    string // rewritten into meta ("" keeps it)
		wantRows int    // 0: refused as corrupt
	}{
		{segVersion, 4, "", 4}, {segVersion, 1, "", 1}, {segVersion, 16, "", 16},
		{segVersion, 4, `"rowsPerBlock":3`, 0}, {segVersion, 1, `"rowsPerBlock":0`, 0},
		{segVersion, 8, `"rowsPerBlock":2`, 0}, // the blocks do not match
		{segVersion7, 16, "", 16}, {segVersion7, 16, `"rowsPerBlock":32`, 0}, {segVersion7, 16, `"rowsPerBlock": 4`, 0},
	} {
		path, err := writeSegmentBlocks(t.TempDir(), m, enc, c.ver, c.rpb)
		if err != nil {
			t.Fatal(err)
		}
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.claim != "" {
			had := fmt.Sprintf(`"rowsPerBlock":%d`, c.rpb)
			i := strings.Index(string(file), had)
			if i < 0 || len(had) != len(c.claim) {
				t.Fatalf("v%d/%d: cannot rewrite %s as %s", c.ver, c.rpb, had, c.claim)
			}
			copy(file[i:], c.claim)
			reseal(file)
		}
		s := &segment{path: "test.seg", mm: file}
		err = s.parse()
		switch {
		case c.wantRows == 0 && !errors.Is(err, store.ErrCorrupt):
			t.Fatalf("v%d/%d claiming %s: %v, want ErrCorrupt", c.ver, c.rpb, c.claim, err)
		case c.wantRows != 0 && (err != nil || s.rpb != c.wantRows):
			t.Fatalf("v%d/%d: %v, %d rows per block", c.ver, c.rpb, err, s.rpb)
		}
		if err == nil {
			dec, _ := zstd.NewReader(nil)
			readSegment(t, s, dec)
			dec.Close()
			s.closeDecoder()
		}
	}
}

// TestCheckCountsRowsOfBlocks: a block holding a row more than its share
// (bytes that pass every checksum, as a writer bug would leave them) is
// reported by Check, although every row a reader asks for reads fine.
func TestCheckCountsRowsOfBlocks(t *testing.T) {
	dir := t.TempDir()
	e := openT(t, dir)
	appendT(t, e, newGen(16).batch(3000))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	path := segmentFiles(t, dir)[0]
	rewriteAsBlocks(t, path, segVersion, mergeBlockRows)
	s, err := openSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.block(0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := rowInBlock(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw = binary.AppendUvarint(raw, uint64(len(first)))
	raw = append(raw, first...)
	zdict, err := unpackZDict(s.sec[secZDict])
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newDictEncoder(zdict, segVersion)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	// The blocks again, block 0 with its extra row, and their offsets.
	nb := len(s.sec[secBlockOffs])/8 - 1
	blocks := enc.EncodeAll(raw, nil)
	offs := binary.LittleEndian.AppendUint64(nil, 0)
	offs = binary.LittleEndian.AppendUint64(offs, uint64(len(blocks)))
	for b := 1; b < nb; b++ {
		blocks = append(blocks, s.sec[secBlocks][s.u64(secBlockOffs, b):s.u64(secBlockOffs, b+1)]...)
		offs = binary.LittleEndian.AppendUint64(offs, uint64(len(blocks)))
	}
	var file bytes.Buffer
	sw := &sectionWriter{w: bufio.NewWriter(&file)}
	for sec := range numSections {
		sw.begin(sec)
		switch sec {
		case secBlocks:
			sw.write(blocks)
		case secBlockOffs:
			sw.write(offs)
		default:
			sw.write(s.sec[sec])
		}
		sw.end()
	}
	s.close()
	sw.w.Write(sw.footer())
	sw.w.Flush()
	forged := file.Bytes()
	reseal(forged) // the block checksums
	if err := os.WriteFile(path, forged, 0o644); err != nil {
		t.Fatal(err)
	}

	e = openT(t, dir)
	defer e.Close()
	if d := e.Damage(); len(d) != 0 {
		t.Fatalf("the forged segment does not pass its checksums: %+v", d)
	}
	rep, err := e.Check(context.Background())
	want := fmt.Sprintf("block 0: %d rows, want %d", mergeBlockRows+1, mergeBlockRows)
	if !errors.Is(err, store.ErrCorrupt) || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], want) {
		t.Fatalf("Check = %v, %q; want one problem %q", err, rep.Problems, want)
	}
}
