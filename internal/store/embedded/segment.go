package embedded

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// segment is an open, memory-mapped segment file. Its bytes never change;
// only deleted (guarded by Engine.mu) does. Bitmaps read from it alias the
// mapping, so it is unmapped only under Engine.mu held for writing, when no
// search can be using it.
type segment struct {
	path string
	mm   []byte
	sec  [numSections][]byte
	// secOff is where each section starts in the file.
	secOff [numSections]uint64
	meta   segMeta
	crcs   [numSections]uint32
	n      int
	id     uint32 // key of Engine.ix.segByID
	// deleted marks rows hidden by deletion rules.
	deleted *roaring.Bitmap
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrCorrupt, fmt.Sprintf(format, args...))
}

// openSegment maps a segment file and checks its structure and the
// checksums of every section except blocks and postings, which are
// checked on each read (or all of them by verifyLazy).
func openSegment(path string) (*segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(segMagic)+segTrailerSize) {
		return nil, corruptf("segment %s: too short (%d bytes)", filepath.Base(path), size)
	}
	mm, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	s := &segment{path: path, mm: mm, deleted: roaring.New()}
	if err := s.parse(); err != nil {
		syscall.Munmap(mm)
		return nil, fmt.Errorf("segment %s: %w", filepath.Base(path), err)
	}
	return s, nil
}

func (s *segment) parse() error {
	mm := s.mm
	tr := mm[len(mm)-segTrailerSize:]
	if string(tr[16:]) != segMagic {
		return corruptf("bad magic")
	}
	footerOff := binary.LittleEndian.Uint64(tr)
	nsec := binary.LittleEndian.Uint32(tr[8:])
	if nsec != numSections {
		return corruptf("%d sections, want %d", nsec, numSections)
	}
	footerEnd := uint64(len(mm) - segTrailerSize)
	if footerOff > footerEnd || footerEnd-footerOff != numSections*segFooterEntry {
		return corruptf("bad footer offset")
	}
	footer := mm[footerOff:footerEnd]
	if crc32.Checksum(footer, castagnoli) != binary.LittleEndian.Uint32(tr[12:]) {
		return corruptf("footer checksum mismatch")
	}
	for i := range numSections {
		e := footer[i*segFooterEntry:]
		off, ln := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
		if off > footerOff || ln > footerOff-off {
			return corruptf("section %d out of bounds", i)
		}
		s.sec[i] = mm[off : off+ln : off+ln]
		s.secOff[i] = off
		s.crcs[i] = binary.LittleEndian.Uint32(e[16:])
		if !lazySections[i] && crc32.Checksum(s.sec[i], castagnoli) != s.crcs[i] {
			return corruptf("section %d checksum mismatch", i)
		}
	}
	if err := json.Unmarshal(s.sec[secMeta], &s.meta); err != nil {
		return corruptf("meta: %v", err)
	}
	m := &s.meta
	n := m.Rows
	nb := (n + rowsPerBlock - 1) / rowsPerBlock
	switch {
	case m.Version != segVersion:
		return fmt.Errorf("%w: %d, this build reads %d", ErrVersion, m.Version, segVersion)
	case m.RowsPerBlock != rowsPerBlock:
		return corruptf("rows per block %d", m.RowsPerBlock)
	case n <= 0,
		len(s.sec[secOccurred]) != 8*n, len(s.sec[secSeq]) != 8*n, len(s.sec[secBySeq]) != 4*n,
		len(s.sec[secKeyOffs]) != 4*(n+1),
		len(s.sec[secBlockOffs]) != 8*(nb+1), len(s.sec[secBlockCRCs]) != 4*nb,
		len(s.sec[secDictOffs]) != 4*((m.Keys+dictBlockKeys-1)/dictBlockKeys+1), len(s.sec[secPostOffs]) != 4*(m.Keys+1),
		len(s.sec[secPostCRCs]) != 4*((m.Keys+postingsPerCRC-1)/postingsPerCRC):
		return corruptf("section sizes do not match %d rows, %d keys", n, m.Keys)
	case uint64(len(s.sec[secKeyBytes])) != uint64(s.u32(secKeyOffs, n)),
		uint64(len(s.sec[secDictKeys])) != uint64(s.u32(secDictOffs, (m.Keys+dictBlockKeys-1)/dictBlockKeys)),
		uint64(len(s.sec[secBlocks])) != s.u64(secBlockOffs, nb),
		uint64(len(s.sec[secPosts])) != uint64(s.u32(secPostOffs, m.Keys)):
		return corruptf("offset tables do not match their data")
	}
	s.n = n
	return nil
}

func (s *segment) u32(sec, i int) uint32 { return binary.LittleEndian.Uint32(s.sec[sec][4*i:]) }
func (s *segment) u64(sec, i int) uint64 { return binary.LittleEndian.Uint64(s.sec[sec][8*i:]) }

func (s *segment) occurred(row int) int64 { return int64(s.u64(secOccurred, row)) }
func (s *segment) seq(row int) uint64     { return s.u64(secSeq, row) }

// span returns bytes [offs[i], offs[i+1]) of data, checking the offsets
// (a checksummed table can still be inconsistent if written by a bug).
func (s *segment) span(offSec, dataSec, i int) ([]byte, error) {
	lo, hi := s.u32(offSec, i), s.u32(offSec, i+1)
	if lo > hi || int(hi) > len(s.sec[dataSec]) {
		return nil, corruptf("segment %s: bad offsets in section %d", filepath.Base(s.path), offSec)
	}
	return s.sec[dataSec][lo:hi], nil
}

// spanRange returns bytes [offs[i], offs[j]) of data.
func (s *segment) spanRange(offSec, dataSec, i, j int) ([]byte, error) {
	lo, hi := s.u32(offSec, i), s.u32(offSec, j)
	if lo > hi || int(hi) > len(s.sec[dataSec]) {
		return nil, corruptf("segment %s: bad offsets in section %d", filepath.Base(s.path), offSec)
	}
	return s.sec[dataSec][lo:hi], nil
}

// key is company, 0x00, id of the row.
func (s *segment) key(row int) ([]byte, error) { return s.span(secKeyOffs, secKeyBytes, row) }

// The dictionary is front-coded in blocks of dictBlockKeys keys: the first
// key of a block whole (uvarint length, bytes), each next one as the
// length it shares with the previous key, then its own suffix (uvarint
// length, bytes). Sorted keys share long prefixes ("t" + token).

func (s *segment) dictBlocks() int { return (s.meta.Keys + dictBlockKeys - 1) / dictBlockKeys }

// blockFirstKey returns the first key of dictionary block b, or nil if the
// block is malformed.
func (s *segment) blockFirstKey(b int) []byte {
	blk, err := s.span(secDictOffs, secDictKeys, b)
	if err != nil {
		return nil
	}
	d := decoder{b: blk}
	k := d.bytes(d.uvarint())
	if d.err != nil {
		return nil
	}
	return k
}

// scanDict calls fn with the index and bytes of every key ≥ from, in
// order, until fn returns false. The bytes are valid only during the call.
func (s *segment) scanDict(from string, fn func(i int, key []byte) bool) error {
	nb := s.dictBlocks()
	// The last block whose first key is ≤ from holds the first key ≥ from
	// (or it is the first key of the next block).
	b := sort.Search(nb, func(b int) bool { return string(s.blockFirstKey(b)) > from }) - 1
	b = max(b, 0)
	var key []byte
	for ; b < nb; b++ {
		blk, err := s.span(secDictOffs, secDictKeys, b)
		if err != nil {
			return err
		}
		d := decoder{b: blk}
		for j := 0; j < dictBlockKeys && b*dictBlockKeys+j < s.meta.Keys; j++ {
			if j == 0 {
				key = append(key[:0], d.bytes(d.uvarint())...)
			} else {
				shared := d.uvarint()
				suffix := d.bytes(d.uvarint())
				if shared > uint64(len(key)) {
					d.err = errBadEncoding
				}
				if d.err == nil {
					key = append(key[:shared], suffix...)
				}
			}
			if d.err != nil {
				return corruptf("segment %s: dictionary block %d: %v", filepath.Base(s.path), b, d.err)
			}
			if string(key) < from {
				continue
			}
			if !fn(b*dictBlockKeys+j, key) {
				return nil
			}
		}
		if len(d.b) != 0 {
			return corruptf("segment %s: dictionary block %d has trailing bytes", filepath.Base(s.path), b)
		}
	}
	return nil
}

// postingAt returns the bitmap at dictionary index i, after checking the
// checksum of the run of postings it belongs to.
func (s *segment) postingAt(i int) (*roaring.Bitmap, error) {
	b, err := s.span(secPostOffs, secPosts, i)
	if err != nil {
		return nil, err
	}
	j := i / postingsPerCRC
	run, err := s.spanRange(secPostOffs, secPosts, j*postingsPerCRC, min(s.meta.Keys, (j+1)*postingsPerCRC))
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(run, castagnoli) != s.u32(secPostCRCs, j) {
		return nil, corruptf("segment %s: postings %d-%d checksum mismatch", filepath.Base(s.path), j*postingsPerCRC, (j+1)*postingsPerCRC-1)
	}
	bm, err := decodePosting(b)
	if err != nil {
		return nil, fmt.Errorf("segment %s: posting %d: %w", filepath.Base(s.path), i, err)
	}
	return bm, nil
}

func decodePosting(b []byte) (*roaring.Bitmap, error) {
	if len(b) == 0 {
		return nil, corruptf("empty posting")
	}
	switch b[0] {
	case postingList:
		d := decoder{b: b[1:]}
		n := d.uvarint()
		if n > postingListMax {
			return nil, corruptf("posting list of %d", n)
		}
		rows := make([]uint32, 0, n)
		var row uint64
		for range n {
			row += d.uvarint()
			rows = append(rows, uint32(row))
		}
		if d.err != nil || len(d.b) != 0 || row > math.MaxUint32 {
			return nil, corruptf("bad posting list")
		}
		return roaring.BitmapOf(rows...), nil
	case postingRoaring:
		bm := roaring.New()
		if _, err := bm.FromBuffer(b[1:]); err != nil {
			return nil, corruptf("bad roaring posting: %v", err)
		}
		// FromBuffer checks the framing only: a run container with bad
		// runs reads fine and then panics when iterated (found by
		// FuzzDecodePosting), so the containers are checked too.
		if err := bm.Validate(); err != nil {
			return nil, corruptf("bad roaring posting: %v", err)
		}
		return bm, nil
	}
	return nil, corruptf("posting kind %d", b[0])
}

// posting returns the rows indexed under key k, or nil when none are.
func (s *segment) posting(k string) (*roaring.Bitmap, error) {
	idx := -1
	if err := s.scanDict(k, func(i int, key []byte) bool {
		if string(key) == k {
			idx = i
		}
		return false
	}); err != nil || idx < 0 {
		return nil, err
	}
	return s.postingAt(idx)
}

// prefixPostings calls fn with the posting of every key starting with p.
func (s *segment) prefixPostings(p string, fn func(*roaring.Bitmap)) error {
	var perr error
	err := s.scanDict(p, func(i int, key []byte) bool {
		if !bytes.HasPrefix(key, []byte(p)) {
			return false
		}
		bm, err := s.postingAt(i)
		if err != nil {
			perr = err
			return false
		}
		fn(bm)
		return true
	})
	if err != nil {
		return err
	}
	return perr
}

// rowRange returns the rows [lo, hi) whose Occurred lies in [from, to]
// (0 meaning unbounded), using the descending sort.
func (s *segment) rowRange(from, to int64) (int, int) {
	lo, hi := 0, s.n
	if to > 0 {
		lo = sort.Search(s.n, func(i int) bool { return s.occurred(i) <= to })
	}
	if from > 0 {
		hi = sort.Search(s.n, func(i int) bool { return s.occurred(i) < from })
	}
	return lo, max(lo, hi)
}

// block returns the decompressed block b, checking its checksum.
func (s *segment) block(b int, dec *zstd.Decoder) ([]byte, error) {
	lo, hi := s.u64(secBlockOffs, b), s.u64(secBlockOffs, b+1)
	if lo > hi || hi > uint64(len(s.sec[secBlocks])) {
		return nil, corruptf("segment %s: bad block offsets", filepath.Base(s.path))
	}
	comp := s.sec[secBlocks][lo:hi]
	if crc32.Checksum(comp, castagnoli) != s.u32(secBlockCRCs, b) {
		return nil, corruptf("segment %s: block %d checksum mismatch", filepath.Base(s.path), b)
	}
	raw, err := dec.DecodeAll(comp, nil)
	if err != nil {
		return nil, corruptf("segment %s: block %d: %v", filepath.Base(s.path), b, err)
	}
	return raw, nil
}

// rowInBlock finds the encoded event of row within its decompressed block.
func rowInBlock(raw []byte, idx int) ([]byte, error) {
	d := decoder{b: raw}
	for i := 0; ; i++ {
		b := d.bytes(d.uvarint())
		if d.err != nil {
			return nil, corruptf("block entry %d: %v", idx, d.err)
		}
		if i == idx {
			return b, nil
		}
	}
}

// blockCache keeps the blocks decoded during one read so that rows of a
// page that share a block decode it once; lru, when set, shares them
// across reads.
type blockCache struct {
	m   map[*segment]map[int][]byte
	lru *blockLRU
}

func newBlockCache(lru *blockLRU) *blockCache {
	return &blockCache{m: map[*segment]map[int][]byte{}, lru: lru}
}

func (c *blockCache) reset() { clear(c.m) }

func (c *blockCache) event(s *segment, row int, dec *zstd.Decoder) (event.Event, error) {
	b := row / rowsPerBlock
	raw, ok := c.m[s][b]
	if !ok {
		raw, ok = c.lru.get(blockKey{s.id, b})
		if !ok {
			var err error
			if raw, err = s.block(b, dec); err != nil {
				return event.Event{}, err
			}
			c.lru.put(blockKey{s.id, b}, raw)
		}
		if c.m[s] == nil {
			c.m[s] = map[int][]byte{}
		}
		c.m[s][b] = raw
	}
	enc, err := rowInBlock(raw, row%rowsPerBlock)
	if err != nil {
		return event.Event{}, fmt.Errorf("segment %s: %w", filepath.Base(s.path), err)
	}
	ev, err := decodeEvent(enc)
	if err != nil {
		return event.Event{}, fmt.Errorf("%w: segment %s row %d: %w", store.ErrCorrupt, filepath.Base(s.path), row, err)
	}
	if ev.Seq != s.seq(row) || ev.Occurred != s.occurred(row) {
		return event.Event{}, corruptf("segment %s row %d: columns disagree with the stored event", filepath.Base(s.path), row)
	}
	return ev, nil
}

// release tells the kernel this process no longer needs the pages it has
// read so far (the checks at open, the key hashing): they stay in the page
// cache and come back on the next access, but stop counting in the
// process's resident memory. Only what searches touch stays resident.
func (s *segment) release() {
	if s.mm != nil {
		syscall.Madvise(s.mm, syscall.MADV_DONTNEED)
	}
}

func (s *segment) close() error {
	if s.mm == nil {
		return nil
	}
	err := syscall.Munmap(s.mm)
	s.mm = nil
	return err
}
