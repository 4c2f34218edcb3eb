package embedded

// Fuzz targets for every decoder that reads bytes from disk: the event
// encoding, a write-ahead log file and its batch records, postings,
// blocks and whole segment files. Checksums catch random damage, so the
// segment target can also re-seal the mutated file (recompute every
// checksum): what is left is a file a bug or an attacker wrote, and it
// must still be refused with an error, never a panic or a wrong row.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

func fuzzEvents(n int) []event.Event {
	evs := storetest.Generate(11, n, storetest.GenOptions{})
	for i := range evs {
		evs[i].Seq = uint64(i + 1)
	}
	return evs
}

func FuzzDecodeEvent(f *testing.F) {
	for _, ev := range fuzzEvents(8) {
		f.Add(appendEvent(nil, &ev))
	}
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			if !errors.Is(err, errBadEncoding) {
				t.Fatalf("decodeEvent error %v does not wrap errBadEncoding", err)
			}
			return
		}
		// What decodes re-encodes to bytes that decode to the same event:
		// nothing is dropped or invented on the way. (The bytes themselves
		// may differ: binary.Uvarint accepts overlong varints such as
		// 0x80 0x00 for 0, which the fuzzer found; the value is the same.)
		again := appendEvent(nil, &ev)
		back, err := decodeEvent(again)
		if err != nil || !reflect.DeepEqual(back, ev) {
			t.Fatalf("decodeEvent(%x) = %+v re-encodes as %x, which decodes to %+v, %v", b, ev, again, back, err)
		}
		if len(again) > len(b) {
			t.Fatalf("decodeEvent(%x) re-encodes longer: %x", b, again)
		}
		id, company := encodedKey(b)
		if id != ev.ID || company != ev.CompanyID {
			t.Fatalf("encodedKey = (%q, %q), decodeEvent says (%q, %q)", id, company, ev.ID, ev.CompanyID)
		}
	})
}

// walBatch frames events as one log record, as commit.go does.
func walBatch(evs []event.Event) []byte {
	buf, start := beginRecord(nil)
	buf = append(buf, recordBatch)
	buf = binary.AppendUvarint(buf, uint64(len(evs)))
	for i := range evs {
		enc := appendEvent(nil, &evs[i])
		buf = binary.AppendUvarint(buf, uint64(len(enc)))
		buf = append(buf, enc...)
	}
	finishRecord(buf, start)
	return buf
}

func FuzzWALReplay(f *testing.F) {
	evs := fuzzEvents(6)
	one := walBatch(evs[:3])
	two := append(slices.Clone(one), walBatch(evs[3:])...)
	f.Add(one, true)
	f.Add(two, false)
	f.Add(two[:len(two)-5], true) // torn tail
	f.Add([]byte{1, 0, 0, 0}, true)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte, last bool) {
		path := filepath.Join(dir, "fuzz.wal")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		replay := func() ([]event.Event, []Damage, error) {
			e := &Engine{}
			var pending []event.Event
			var encs [][]byte
			damage, err := replayWAL(path, last, func(p []byte) error {
				return e.replayRecord(p, &pending, &encs)
			})
			for i := range pending {
				if i > 0 && pending[i].Seq <= pending[i-1].Seq {
					t.Fatalf("replay accepted Seq %d after %d", pending[i].Seq, pending[i-1].Seq)
				}
				got, derr := decodeEvent(encs[i])
				if derr != nil || got.ID != pending[i].ID {
					t.Fatalf("kept encoding %d does not decode to its event: %v", i, derr)
				}
			}
			return pending, damage, err
		}
		pending, damage, err := replay()
		if err != nil && !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("replay error %v is not corruption", err)
		}
		for _, d := range damage {
			if d.Kind == "log-tail" && !last {
				t.Fatalf("an older log was cut: %+v", d)
			}
		}
		if last && err == nil {
			// The torn tail is gone: a second replay finds the same events
			// and nothing more to cut.
			again, damage2, err := replay()
			if err != nil || len(again) != len(pending) {
				t.Fatalf("second replay: %d events (%v), first %d", len(again), err, len(pending))
			}
			for _, d := range damage2 {
				if d.Kind == "log-tail" {
					t.Fatalf("second replay cut the log again: %+v", d)
				}
			}
		}
	})
}

// FuzzDecodePosting decodes version 4 postings (FuzzDecodePostingV5 the
// current ones).
func FuzzDecodePosting(f *testing.F) {
	for _, rows := range [][]uint32{{0}, {1, 5, 9}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 100000}} {
		f.Add(encodePostingV4(rows))
	}
	f.Add([]byte{postingList, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{postingRoaring, 0x3a, 0x30, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { checkPostingDecode(t, decodePostingV4, b) })
}

func FuzzDecodePostingV5(f *testing.F) {
	long := make([]uint32, 0, 200)
	for i := range 200 {
		long = append(long, uint32(i*i))
	}
	for _, rows := range [][]uint32{{0}, {99999}, {1, 5, 9}, long[:postListMax], long[:postListMax+1], long, {0, 1 << 31}} {
		f.Add(encodePosting(rows))
	}
	f.Add([]byte{postList | 3<<2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1})
	f.Add([]byte{postRoaring, 0x3a, 0x30, 0, 0})
	f.Add([]byte{0xfc, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) { checkPostingDecode(t, decodePosting, b) })
}

// checkPostingDecode: a posting either fails as corruption or decodes to
// a bitmap the search can use.
func checkPostingDecode(t *testing.T, decode func([]byte) (*roaring.Bitmap, error), b []byte) {
	{
		bm, err := decode(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("decodePosting error %v is not ErrCorrupt", err)
			}
			return
		}
		// A posting that decodes must be usable: the search iterates it
		// and combines it with others.
		n := 0
		it := bm.Iterator()
		for it.HasNext() && n < 1<<16 {
			it.Next()
			n++
		}
		_ = bm.GetCardinality()
		bm.Clone().Or(bm)
	}
}

// TestPostingRoundTrip: every posting size class reads back as written.
func TestPostingRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, postListMax, postListMax + 1, 5000} {
		rows := make([]uint32, n)
		for i := range rows {
			rows[i] = uint32(i*37 + n)
		}
		bm, err := decodePosting(encodePosting(rows))
		if err != nil || !slices.Equal(bm.ToArray(), rows) {
			t.Fatalf("%d rows: %v, %v", n, err, bm)
		}
	}
}

func FuzzRowInBlock(f *testing.F) {
	var block []byte
	for _, ev := range fuzzEvents(4) {
		enc := appendEvent(nil, &ev)
		block = binary.AppendUvarint(block, uint64(len(enc)))
		block = append(block, enc...)
	}
	f.Add(block, 2)
	f.Add(block[:len(block)-3], 3)
	f.Add([]byte{0xff, 0xff}, 0)
	f.Fuzz(func(t *testing.T, raw []byte, idx int) {
		if idx < 0 || idx >= rowsPerBlockV4 {
			return // rows of a block are numbered by the engine, not read from disk
		}
		enc, err := rowInBlock(raw, idx)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("rowInBlock error %v is not ErrCorrupt", err)
			}
			return
		}
		if _, err := decodeEvent(enc); err != nil && !errors.Is(err, errBadEncoding) {
			t.Fatalf("decodeEvent: %v", err)
		}
	})
}

// fuzzSegmentFile writes n generated events as a segment and returns its
// bytes.
func fuzzSegmentFile(tb testing.TB, n int) []byte {
	return fuzzSegmentFileWith(tb, n, writeSegment)
}

// fuzzSegmentFileWith is fuzzSegmentFile with a given writer (the version
// 4 one for the old format).
func fuzzSegmentFileWith(tb testing.TB, n int, write func(string, *memtable, *zstd.Encoder) (string, error)) []byte {
	tb.Helper()
	m := newMemtable()
	for _, ev := range fuzzEvents(n) {
		m.add(&ev, appendEvent(nil, &ev), indexEvent(&ev))
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	path, err := write(tb.TempDir(), m, enc)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// reseal recomputes every checksum of a (mutated) segment file in place,
// as far as its trailer and offset tables can be followed.
func reseal(mm []byte) {
	if len(mm) < segTrailerSize {
		return
	}
	tr := mm[len(mm)-segTrailerSize:]
	footerOff := binary.LittleEndian.Uint64(tr)
	footerEnd := uint64(len(mm) - segTrailerSize)
	nsec := int(binary.LittleEndian.Uint32(tr[8:]))
	if nsec != numSections && nsec != numSectionsV4 || footerOff > footerEnd || footerEnd-footerOff < uint64(nsec*segFooterEntry) {
		return
	}
	footer := mm[footerOff:footerEnd]
	var sec [numSections][]byte
	for i := range nsec {
		e := footer[i*segFooterEntry:]
		off, ln := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
		if off > footerOff || ln > footerOff-off {
			return
		}
		sec[i] = mm[off : off+ln]
	}
	// Per-block and per-run checksums first: they live in sections whose
	// own checksums are computed after.
	crcs := sec[secBlockCRCs]
	offs := sec[secBlockOffs]
	for b := 0; 4*b+4 <= len(crcs) && 8*b+16 <= len(offs); b++ {
		lo, hi := binary.LittleEndian.Uint64(offs[8*b:]), binary.LittleEndian.Uint64(offs[8*b+8:])
		if lo <= hi && hi <= uint64(len(sec[secBlocks])) {
			binary.LittleEndian.PutUint32(crcs[4*b:], crc32.Checksum(sec[secBlocks][lo:hi], castagnoli))
		}
	}
	// Posting offsets: version 4 a uint32 table, version 5 a packed
	// column of meta.Keys+1 values.
	pcrcs, poffs := sec[secPostCRCs], sec[secPostOffs]
	nkeys := len(poffs)/4 - 1
	postOff := func(i int) uint64 { return uint64(binary.LittleEndian.Uint32(poffs[4*i:])) }
	if nsec == numSections {
		var meta segMeta
		if json.Unmarshal(sec[secMeta], &meta) != nil {
			nkeys = -1
		} else if c, err := parsePacked(poffs, meta.Keys+1); err == nil {
			nkeys = meta.Keys
			postOff = func(i int) uint64 { return c.get(i) }
		} else {
			nkeys = -1
		}
	}
	for j := 0; 4*j+4 <= len(pcrcs) && nkeys >= 0; j++ {
		a, z := j*postingsPerCRC, min(nkeys, (j+1)*postingsPerCRC)
		if a > z || nsec == numSectionsV4 && 4*z+4 > len(poffs) {
			break
		}
		lo, hi := postOff(a), postOff(z)
		if lo <= hi && hi <= uint64(len(sec[secPosts])) {
			binary.LittleEndian.PutUint32(pcrcs[4*j:], crc32.Checksum(sec[secPosts][lo:hi], castagnoli))
		}
	}
	for i := range nsec {
		binary.LittleEndian.PutUint32(footer[i*segFooterEntry+16:], crc32.Checksum(sec[i], castagnoli))
	}
	binary.LittleEndian.PutUint32(tr[12:], crc32.Checksum(footer[:nsec*segFooterEntry], castagnoli))
}

func FuzzSegment(f *testing.F) {
	var segs [][]byte
	// 1 and 40 rows: no zstd dictionary; 600: one (and Huffman-coded
	// dictionary blocks); then version 4 and 5 files, which must still read.
	for _, n := range []int{1, 40, 600} {
		segs = append(segs, fuzzSegmentFile(f, n))
	}
	for _, n := range []int{1, 40} {
		segs = append(segs, fuzzSegmentFileWith(f, n, writeSegmentV4))
	}
	// Version 5 files (the version 6 layout with the logical keys).
	writeV5 := func(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
		return writeSegmentVersion(dir, m, enc, segVersionV5)
	}
	for _, n := range []int{40, 600} {
		segs = append(segs, fuzzSegmentFileWith(f, n, writeV5))
	}
	// Version 6 (the zstd dictionary stored raw).
	writeV6 := func(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
		return writeSegmentVersion(dir, m, enc, segVersion6)
	}
	segs = append(segs, fuzzSegmentFileWith(f, 600, writeV6))
	// Version 7 (16-row blocks, frames with a checksum), and version 8
	// merge outputs: blocks of mergeBlockRows rows, and of one row.
	for _, w := range []struct{ ver, rpb int }{{segVersion7, rowsPerBlockV5}, {segVersion, mergeBlockRows}, {segVersion, 1}} {
		seg := fuzzSegmentFileWith(f, 600, func(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
			return writeSegmentBlocks(dir, m, enc, w.ver, w.rpb)
		})
		if s := (&segment{mm: seg}); s.parse() != nil || s.rpb != w.rpb {
			f.Fatalf("seed v%d/%d: %d-row blocks", w.ver, w.rpb, s.rpb)
		} else {
			s.closeDecoder()
		}
		segs = append(segs, seg)
	}
	for _, seg := range segs {
		f.Add(seg, false)
		f.Add(seg, true)
		bad := slices.Clone(seg)
		bad[len(bad)/3] ^= 0x40
		f.Add(bad, true)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dec.Close)
	f.Fuzz(func(t *testing.T, file []byte, resealed bool) {
		if len(file) < len(segMagic)+segTrailerSize {
			return // openSegment refuses these before parsing
		}
		mm := slices.Clone(file)
		if resealed {
			reseal(mm)
		}
		s := &segment{path: "fuzz.seg", mm: mm, deleted: nil}
		if err := s.parse(); err != nil {
			if !errors.Is(err, store.ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("parse error %v is neither corruption nor a version", err)
			}
			return
		}
		defer s.closeDecoder()
		readSegment(t, s, dec)
	})
}

// readSegment does every read a search, a get or a check does on a
// parsed segment; each must give a row or an ErrCorrupt error.
func readSegment(t *testing.T, s *segment, dec *zstd.Decoder) {
	corrupt := func(what string, err error) {
		if err != nil && !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("%s: error %v is not ErrCorrupt", what, err)
		}
	}
	bc := newBlockCache(nil)
	var ids []string // user and actor IDs of readable rows, to look up
	for row := 0; row < s.n && row < 4096; row++ {
		ev, err := bc.event(s, row, dec)
		corrupt("event", err)
		if err == nil && len(ids) < 16 {
			ids = append(ids, ev.UserID, ev.ActorID)
		}
		if err == nil && (ev.Seq != s.seq(row) || ev.Occurred != s.occurred(row)) {
			t.Fatalf("row %d served although it disagrees with its columns", row)
		}
		_, err = s.key(row)
		corrupt("key", err)
		_ = s.bySeq(row)
	}
	s.rowRange(1, 1<<62)
	keys := 0
	err := s.scanDict("", func(i int, key []byte) bool {
		keys++
		bm, err := s.postingAt(i)
		corrupt("postingAt", err)
		if bm != nil {
			_ = bm.GetCardinality()
			it := bm.Iterator()
			for n := 0; it.HasNext() && n < 1024; n++ {
				it.Next()
			}
		}
		return keys < 4096
	})
	corrupt("scanDict", err)
	_, err = s.posting(pkey(keyToken, "login"))
	corrupt("posting", err)
	// The lookups version 6 translates (segment_keys.go).
	for _, id := range ids {
		for _, k := range []string{pkey(keyUser, id), pkey(keyActor, id), pkey(keyToken, strings.ToLower(id))} {
			_, err = s.posting(k)
			corrupt("posting "+k, err)
		}
	}
	corrupt("prefixPostings", s.prefixPostings(string([]byte{keyToken}), func(*roaring.Bitmap) {}))
}
