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
	"runtime"
	"sort"
	"sync"
	"syscall"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/huff0"
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
	// file stays open for the blocks, which are read with pread rather
	// than through mm: a page's rows are scattered over the segment, and
	// every block read through the mapping maps a large folio (1-2 MB of
	// resident memory, see residency.go), so a few searches filled the
	// residency budget and its release made every next read fault again.
	file *os.File
	// fd is file's descriptor, for readahead.go's system calls (when
	// file is set).
	fd  int
	sec [numSections][]byte
	// secOff is where each section starts in the file.
	secOff [numSections]uint64
	meta   segMeta
	crcs   [numSections]uint32
	n      int
	id     uint32 // key of Engine.ix.segByID
	ver    int    // meta.Version
	rpb    int    // rows per block
	// cols are the packed columns of a version 5 segment.
	cols struct{ occ, seq, bySeq, keyOffs, postOffs packedCol }
	// zd decodes the blocks of a version 5 segment that has a zstd
	// dictionary; nil otherwise (the engine's decoder is used).
	zd *zstd.Decoder
	// hdec decodes the Huffman-coded dictionary blocks of a version 5
	// segment; nil when it has none.
	hdec *huff0.Decoder
	// deleted marks rows hidden by deletion rules.
	deleted *roaring.Bitmap
	// hot is the search side's cache of big postings (query_postings.go).
	hot     *hotPostings
	hotOnce sync.Once
	// dictPrefix holds every dictionary block's first key's prefix, built
	// at the first lookup (dictFind).
	dictPrefix     dictPrefixes
	dictPrefixOnce sync.Once
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
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
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
	s := &segment{path: path, mm: mm, file: f, fd: int(f.Fd()), deleted: roaring.New()}
	if err := s.parse(); err != nil {
		syscall.Munmap(mm)
		return nil, fmt.Errorf("segment %s: %w", filepath.Base(path), err)
	}
	// The dictionary's prefixes are built now rather than at the first
	// lookup: the file's pages are then cached (a flush or merge just
	// wrote it, Open's check reads it whole), while by the first search
	// the kernel may have dropped them (this VM's DAMON pageout drops
	// file pages untouched for ~60 s): the first search after a Compact
	// of 10M events then read ~90,000 pages of dictionaries one fault
	// after another. The callers release the pages.
	s.dictPrefixOnce.Do(s.buildDictPrefix)
	keep = true
	return s, nil
}

func (s *segment) parse() error {
	mm := s.mm
	tr := mm[len(mm)-segTrailerSize:]
	if string(tr[16:]) != segMagic {
		return corruptf("bad magic")
	}
	footerOff := binary.LittleEndian.Uint64(tr)
	nsec := int(binary.LittleEndian.Uint32(tr[8:]))
	if nsec != numSections && nsec != numSectionsV4 {
		return corruptf("%d sections, want %d or %d", nsec, numSectionsV4, numSections)
	}
	footerEnd := uint64(len(mm) - segTrailerSize)
	if footerOff > footerEnd || footerEnd-footerOff != uint64(nsec*segFooterEntry) {
		return corruptf("bad footer offset")
	}
	footer := mm[footerOff:footerEnd]
	if crc32.Checksum(footer, castagnoli) != binary.LittleEndian.Uint32(tr[12:]) {
		return corruptf("footer checksum mismatch")
	}
	for i := range nsec {
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
	switch {
	case m.Version != segVersion && m.Version != segVersion8 && m.Version != segVersion7 && m.Version != segVersion6 && m.Version != segVersionV5 && m.Version != segVersionV4:
		return fmt.Errorf("%w: %d, this build reads %d to %d", ErrVersion, m.Version, segVersionV4, segVersion)
	case (m.Version != segVersionV4) != (nsec == numSections):
		return corruptf("version %d with %d sections", m.Version, nsec)
	}
	s.ver = m.Version
	if s.ver == segVersionV4 {
		return s.parseV4()
	}
	return s.parseV5()
}

func (s *segment) parseV4() error {
	m := &s.meta
	n := m.Rows
	s.rpb = rowsPerBlockV4
	nb := (n + s.rpb - 1) / s.rpb
	switch {
	case m.RowsPerBlock != s.rpb:
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

func (s *segment) parseV5() error {
	m := &s.meta
	n := m.Rows
	s.rpb = rowsPerBlockV5
	if s.ver >= segVersion8 && validBlockRows(s.ver, m.RowsPerBlock) {
		s.rpb = m.RowsPerBlock
	}
	nb := (n + s.rpb - 1) / s.rpb
	switch {
	case m.RowsPerBlock != s.rpb:
		return corruptf("rows per block %d", m.RowsPerBlock)
	case n <= 0 || m.Keys < 0 || len(m.Companies) == 0,
		len(s.sec[secBlockOffs]) != 8*(nb+1), len(s.sec[secBlockCRCs]) != 4*nb,
		len(s.sec[secDictOffs]) != 4*((m.Keys+dictBlockKeys-1)/dictBlockKeys+1),
		len(s.sec[secPostCRCs]) != 4*((m.Keys+postingsPerCRC-1)/postingsPerCRC):
		return corruptf("section sizes do not match %d rows, %d keys", n, m.Keys)
	}
	c := &s.cols
	for _, p := range []struct {
		col *packedCol
		sec int
		n   int
	}{{&c.occ, secOccurred, n}, {&c.seq, secSeq, n}, {&c.bySeq, secBySeq, n}, {&c.keyOffs, secKeyOffs, n + 1}, {&c.postOffs, secPostOffs, m.Keys + 1}} {
		var err error
		if *p.col, err = parsePacked(s.sec[p.sec], p.n); err != nil {
			return corruptf("section %d: %v", p.sec, err)
		}
	}
	s.n = n
	switch {
	case uint64(len(s.sec[secKeyBytes])) != s.offAt(secKeyOffs, n),
		uint64(len(s.sec[secDictKeys])) != uint64(s.u32(secDictOffs, (m.Keys+dictBlockKeys-1)/dictBlockKeys)),
		uint64(len(s.sec[secBlocks])) != s.u64(secBlockOffs, nb),
		uint64(len(s.sec[secPosts])) != s.offAt(secPostOffs, m.Keys):
		return corruptf("offset tables do not match their data")
	case !bytes.Equal(s.sec[secZDict], s.sec[secZDictCopy]):
		return corruptf("the two copies of the zstd dictionary differ")
	}
	if int(s.u32(secDictOffs, 0)) > len(s.sec[secDictKeys]) {
		return corruptf("dictionary offsets do not match their data")
	}
	if table := s.sec[secDictKeys][:s.u32(secDictOffs, 0)]; len(table) > 0 {
		sc, remain, err := huff0.ReadTable(table, nil)
		if err != nil || len(remain) != 0 {
			return corruptf("dictionary Huffman table: %v", err)
		}
		s.hdec = sc.Decoder()
	}
	if len(s.sec[secZDict]) > 0 {
		raw := s.sec[secZDict]
		if s.ver >= segVersion7 {
			var err error
			if raw, err = unpackZDict(raw); err != nil {
				return corruptf("zstd dictionary: %v", err)
			}
		}
		zd, err := newDictDecoder(raw)
		if err != nil {
			return corruptf("zstd dictionary: %v", err)
		}
		s.zd = zd
	}
	return nil
}

// newDictDecoder returns a decoder of blocks compressed with the raw zstd
// dictionary dict (copied: the decoder may outlive a mapping). Frames
// carry no dictionary ID (it would cost bytes in every block), so the
// dictionary is registered as ID 0, which such frames use. The frames'
// own checksums (xxhash of the output, a few % of decoding a block) are
// not checked: every block's CRC32C is, before it is decoded.
func newDictDecoder(dict []byte) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(maxBlockBytes), zstd.WithDecoderDictRaw(0, bytes.Clone(dict)),
		zstd.IgnoreChecksum(true))
}

// maxBlockBytes bounds a decompressed block (rows of at most a few
// hundred KiB each), so that a forged frame header cannot make the decoder
// allocate without limit.
const maxBlockBytes = 256 << 20

func (s *segment) u32(sec, i int) uint32 { return binary.LittleEndian.Uint32(s.sec[sec][4*i:]) }
func (s *segment) u64(sec, i int) uint64 { return binary.LittleEndian.Uint64(s.sec[sec][8*i:]) }

func (s *segment) occurred(row int) int64 {
	if s.ver == segVersionV4 {
		return int64(s.u64(secOccurred, row))
	}
	return int64(s.cols.occ.get(row) ^ 1<<63)
}

func (s *segment) seq(row int) uint64 {
	if s.ver == segVersionV4 {
		return s.u64(secSeq, row)
	}
	return s.cols.seq.get(row)
}

// bySeq returns the row holding the i-th smallest Seq.
func (s *segment) bySeq(i int) uint32 {
	if s.ver == segVersionV4 {
		return s.u32(secBySeq, i)
	}
	return uint32(s.cols.bySeq.get(i))
}

// offAt returns entry i of the offset table offSec.
func (s *segment) offAt(offSec, i int) uint64 {
	if s.ver != segVersionV4 {
		switch offSec {
		case secKeyOffs:
			return s.cols.keyOffs.get(i)
		case secPostOffs:
			return s.cols.postOffs.get(i)
		}
	}
	return uint64(s.u32(offSec, i))
}

// span returns bytes [offs[i], offs[i+1]) of data, checking the offsets
// (a checksummed table can still be inconsistent if written by a bug).
func (s *segment) span(offSec, dataSec, i int) ([]byte, error) {
	lo, hi := s.offAt(offSec, i), s.offAt(offSec, i+1)
	if lo > hi || hi > uint64(len(s.sec[dataSec])) {
		return nil, corruptf("segment %s: bad offsets in section %d", filepath.Base(s.path), offSec)
	}
	return s.sec[dataSec][lo:hi], nil
}

// spanRange returns bytes [offs[i], offs[j]) of data.
func (s *segment) spanRange(offSec, dataSec, i, j int) ([]byte, error) {
	lo, hi := s.offAt(offSec, i), s.offAt(offSec, j)
	if lo > hi || hi > uint64(len(s.sec[dataSec])) {
		return nil, corruptf("segment %s: bad offsets in section %d", filepath.Base(s.path), offSec)
	}
	return s.sec[dataSec][lo:hi], nil
}

// key is company, 0x00, id of the row.
func (s *segment) key(row int) ([]byte, error) {
	b, err := s.span(secKeyOffs, secKeyBytes, row)
	if err != nil || s.ver == segVersionV4 {
		return b, err
	}
	c, n := binary.Uvarint(b)
	if n <= 0 || c >= uint64(len(s.meta.Companies)) {
		return nil, corruptf("segment %s: bad key of row %d", filepath.Base(s.path), row)
	}
	company := s.meta.Companies[c]
	k := make([]byte, 0, len(company)+1+len(b)-n)
	return append(append(append(k, company...), 0), b[n:]...), nil
}

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

// dictPrefixes holds, for every dictionary block, the first 8 bytes of its
// first key as a big-endian integer (zero-padded), built at the first
// lookup (dictFind). A lookup binary-searches those integers in memory and
// compares whole first keys in the mapping only among the blocks whose
// prefix equals the key's (one or two, usually none). It replaced a copy of
// every 16th block's first key: that search compared strings through two
// slices (a cache miss or two per step in each of a month's ~30 day
// partitions) and then probed up to 16 first keys in the mapping. The
// copy costs 8 bytes per block of 16 keys (440 KB for a 333k-row day
// partition of 870k keys).
type dictPrefixes struct {
	pre []uint64
	// ok is false when the first keys were not in order (or a block was
	// malformed): dictFind then searches the mapping alone.
	ok bool
}

// keyPrefix returns the first 8 bytes of k as a big-endian integer, zeros
// past its end. keyPrefix(a) < keyPrefix(b) implies a < b: where the two
// first differ within 8 bytes, a byte of a key that ends there compares
// as 0, below any byte of the longer key but 0x00 itself, and a key is
// less than the longer keys it prefixes.
func keyPrefix[T string | []byte](k T) uint64 {
	if len(k) >= 8 {
		return uint64(k[0])<<56 | uint64(k[1])<<48 | uint64(k[2])<<40 | uint64(k[3])<<32 |
			uint64(k[4])<<24 | uint64(k[5])<<16 | uint64(k[6])<<8 | uint64(k[7])
	}
	var p uint64
	for i := range 8 {
		p <<= 8
		if i < len(k) {
			p |= uint64(k[i])
		}
	}
	return p
}

// prefixSearch returns the first index ≥ lo of the sorted pre whose value
// is ≥ p (len(pre) if none is).
func prefixSearch(pre []uint64, lo int, p uint64) int {
	hi := len(pre)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if pre[m] < p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// dictFind returns the last dictionary block whose first key is ≤ from
// (0 if none is): it holds the first key ≥ from, or that key starts the
// next block.
func (s *segment) dictFind(from string, nb int) int {
	// openSegment built the prefixes; a segment parsed from bytes without
	// it (the fuzz and corruption tests) builds them here.
	s.dictPrefixOnce.Do(s.buildDictPrefix)
	firstAbove := func(lo, hi int) int {
		return lo + sort.Search(hi-lo, func(i int) bool { return string(s.blockFirstKey(lo+i)) > from })
	}
	d := &s.dictPrefix
	if !d.ok {
		return max(firstAbove(0, nb)-1, 0)
	}
	// lo: the first block whose prefix is ≥ from's; hi: the first whose
	// prefix is greater. Blocks before lo start below from, blocks from hi
	// on above it; those between share from's prefix and are compared
	// whole.
	p := keyPrefix(from)
	lo := prefixSearch(d.pre, 0, p)
	hi := lo
	if hi < len(d.pre) && d.pre[hi] == p {
		hi = prefixSearch(d.pre, hi, p+1)
		if p == math.MaxUint64 {
			hi = len(d.pre)
		}
	}
	return max(firstAbove(lo, hi)-1, 0)
}

// buildDictPrefix fills dictPrefix from every dictionary block's first key.
func (s *segment) buildDictPrefix() {
	nb := s.dictBlocks()
	d := &s.dictPrefix
	d.pre = make([]uint64, nb)
	d.ok = true
	for b := range nb {
		k := s.blockFirstKey(b)
		d.pre[b] = keyPrefix(k)
		if k == nil || b > 0 && d.pre[b] < d.pre[b-1] {
			d.ok = false
		}
	}
}

// scanDict calls fn with the index and bytes of every key ≥ from, in
// order, until fn returns false. The bytes are valid only during the call.
func (s *segment) scanDict(from string, fn func(i int, key []byte) bool) error {
	nb := s.dictBlocks()
	// The last block whose first key is ≤ from holds the first key ≥ from
	// (or it is the first key of the next block).
	b := s.dictFind(from, nb)
	sc := dictScans.Get().(*dictScan)
	key, buf := sc.key[:0], sc.buf
	defer func() {
		sc.key, sc.buf = key[:0], buf
		dictScans.Put(sc)
	}()
	for ; b < nb; b++ {
		blk, err := s.span(secDictOffs, secDictKeys, b)
		if err != nil {
			return err
		}
		d := decoder{b: blk}
		for j := 0; j < dictBlockKeys && b*dictBlockKeys+j < s.meta.Keys; j++ {
			if j == 0 {
				key = append(key[:0], d.bytes(d.uvarint())...)
				if s.ver != segVersionV4 && d.err == nil {
					d.b, d.err = s.dictRest(d.b, &buf)
				}
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

// dictScan holds scanDict's buffers (the current key, a block's decoded
// keys), pooled: a point look-up in each of a month's day partitions
// allocated both every time.
type dictScan struct{ key, buf []byte }

var dictScans = sync.Pool{New: func() any { return new(dictScan) }}

// dictRest returns the keys of a version 5 dictionary block after its
// first key (b), decoding them into *buf if Huffman-coded.
func (s *segment) dictRest(b []byte, buf *[]byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errBadEncoding
	}
	switch b[0] {
	case dictRaw:
		return b[1:], nil
	case dictHuff:
		d := decoder{b: b[1:]}
		n := d.uvarint()
		if d.err != nil || n >= huff0.BlockSizeMax || s.hdec == nil {
			return nil, errBadEncoding
		}
		if uint64(cap(*buf)) < n {
			*buf = make([]byte, n)
		}
		out, err := s.hdec.Decompress1X((*buf)[:0:n], d.b)
		if err != nil || uint64(len(out)) != n {
			return nil, errBadEncoding
		}
		return out, nil
	}
	return nil, errBadEncoding
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
	var bm *roaring.Bitmap
	if s.ver == segVersionV4 {
		bm, err = decodePostingV4(b)
	} else {
		bm, err = decodePosting(b)
	}
	if err != nil {
		return nil, fmt.Errorf("segment %s: posting %d: %w", filepath.Base(s.path), i, err)
	}
	return bm, nil
}

// decodePostingV4 reads a posting of a version 4 segment.
func decodePostingV4(b []byte) (*roaring.Bitmap, error) {
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
		return decodeRowList(&d, n)
	case postingRoaring:
		return decodeRoaring(b[1:])
	}
	return nil, corruptf("posting kind %d", b[0])
}

// decodeRowList reads n delta-coded rows that must fill the rest of d.
func decodeRowList(d *decoder, n uint64) (*roaring.Bitmap, error) {
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
}

// decodeRoaring reads a serialized roaring bitmap. FromBuffer checks the
// framing only: a run container with bad runs reads fine and then panics
// when iterated (found by FuzzDecodePosting), so the containers are
// checked too, by checkRoaring (Validate's checks in linear time).
func decodeRoaring(b []byte) (*roaring.Bitmap, error) {
	bm := roaring.New()
	if _, err := bm.FromBuffer(b); err != nil {
		return nil, corruptf("bad roaring posting: %v", err)
	}
	if err := checkRoaring(b); err != nil {
		return nil, corruptf("bad roaring posting: %v", err)
	}
	return bm, nil
}

// decodePosting reads a posting of a version 5 segment (see appendPosting).
func decodePosting(b []byte) (*roaring.Bitmap, error) {
	d := decoder{b: b}
	head := d.uvarint()
	if d.err != nil {
		return nil, corruptf("bad posting head")
	}
	switch head & 3 {
	case postOne:
		if len(d.b) != 0 || head>>2 > math.MaxUint32 {
			return nil, corruptf("bad one-row posting")
		}
		return roaring.BitmapOf(uint32(head >> 2)), nil
	case postList:
		n := head >> 2
		if n < 2 || n > postListMax {
			return nil, corruptf("posting list of %d", n)
		}
		return decodeRowList(&d, n)
	case postRoaring:
		if head != postRoaring {
			return nil, corruptf("bad posting head %d", head)
		}
		return decodeRoaring(d.b)
	}
	return nil, corruptf("posting kind %d", head&3)
}

// posting returns the rows indexed under key k, or nil when none are.
func (s *segment) posting(k string) (*roaring.Bitmap, error) {
	return s.postingKey(&lookupKey{k: k})
}

// postingKey is posting of lk.k.
func (s *segment) postingKey(lk *lookupKey) (*roaring.Bitmap, error) {
	if s.ver >= segVersion6 {
		return s.postingV6(lk)
	}
	return s.dictPosting(lk.k)
}

// dictPosting returns the rows stored under key k in the dictionary, or
// nil when it holds no such key.
func (s *segment) dictPosting(k string) (*roaring.Bitmap, error) {
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

// block returns the decompressed block b, checking its checksum,
// appended to dst. dec decodes blocks of segments without a dictionary of
// their own.
func (s *segment) block(b int, dec *zstd.Decoder, dst []byte) ([]byte, error) {
	lo, hi, err := s.blockRange(b)
	if err != nil {
		return nil, err
	}
	buf := compBufs.Get().(*[]byte)
	defer compBufs.Put(buf)
	comp, err := s.readBlock(*buf, lo, hi)
	*buf = comp[:0]
	if err != nil {
		return nil, err
	}
	return s.decodeBlock(b, comp, dec, dst)
}

// blockRange returns where block b lies in the blocks section.
func (s *segment) blockRange(b int) (lo, hi uint64, err error) {
	lo, hi = s.u64(secBlockOffs, b), s.u64(secBlockOffs, b+1)
	if lo > hi || hi > uint64(len(s.sec[secBlocks])) {
		return 0, 0, corruptf("segment %s: bad block offsets", filepath.Base(s.path))
	}
	return lo, hi, nil
}

// decodeBlock checks the compressed bytes comp of block b against its
// checksum and returns them decompressed, appended to dst.
func (s *segment) decodeBlock(b int, comp []byte, dec *zstd.Decoder, dst []byte) ([]byte, error) {
	if s.zd != nil {
		dec = s.zd
	}
	if crc32.Checksum(comp, castagnoli) != s.u32(secBlockCRCs, b) {
		return nil, corruptf("segment %s: block %d checksum mismatch", filepath.Base(s.path), b)
	}
	raw, err := dec.DecodeAll(comp, dst)
	if err != nil {
		return nil, corruptf("segment %s: block %d: %v", filepath.Base(s.path), b, err)
	}
	return raw, nil
}

// compBufs holds the buffers compressed blocks are read into.
var compBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// readBlock reads the compressed bytes [lo, hi) of the blocks section into
// buf (grown as needed). Segments without a file (tests that build one in
// memory) read the mapping.
func (s *segment) readBlock(buf []byte, lo, hi uint64) ([]byte, error) {
	if s.file == nil {
		return append(buf[:0], s.sec[secBlocks][lo:hi]...), nil
	}
	n := int(hi - lo)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := s.file.ReadAt(buf, int64(s.secOff[secBlocks]+lo)); err != nil {
		return buf, fmt.Errorf("segment %s: read block: %w", filepath.Base(s.path), err)
	}
	return buf, nil
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

// blockEntries counts the encoded events of a decompressed block, -1 if
// it does not parse as a sequence of them.
func blockEntries(raw []byte) int {
	d := decoder{b: raw}
	n := 0
	for ; len(d.b) > 0; n++ {
		d.bytes(d.uvarint())
		if d.err != nil {
			return -1
		}
	}
	return n
}

// blockCache keeps the blocks decoded during one read so that rows of a
// page that share a block decode it once; lru, when set, shares them
// across reads. Blocks the LRU does not take are decoded into pooled
// buffers, given back by reset: a selective page decodes one block per row
// (~11 KB each), which otherwise were as many allocations for the garbage
// collector.
type blockCache struct {
	m   map[blockKey][]byte
	lru *blockLRU
	// pooled are the buffers of m to give back to blockBufs.
	pooled []*[]byte
	// comp holds blocks prefetch read (compressed, buffers of compBufs)
	// and event has not decoded yet.
	comp map[blockKey]*[]byte
}

// blockBufs holds buffers for decompressed blocks.
var blockBufs = sync.Pool{New: func() any { return new([]byte) }}

func newBlockCache(lru *blockLRU) *blockCache {
	return &blockCache{m: map[blockKey][]byte{}, lru: lru}
}

// reset forgets the blocks decoded so far; none of them may be used after.
func (c *blockCache) reset() {
	clear(c.m)
	for _, p := range c.pooled {
		blockBufs.Put(p)
	}
	clear(c.pooled)
	c.pooled = c.pooled[:0]
	for k, p := range c.comp {
		compBufs.Put(p)
		delete(c.comp, k)
	}
}

// prefetch prepares block b of s for event: it reads the block now if the
// page cache holds it, and otherwise only asks the kernel to start reading
// it (see readahead.go), so that a page's blocks missing from the cache
// are read from the disk at the same time rather than one after another.
func (c *blockCache) prefetch(s *segment, b int) {
	k := blockKey{s.id, b}
	if _, ok := c.m[k]; ok || s.file == nil {
		return
	}
	if _, ok := c.comp[k]; ok {
		return
	}
	if raw, ok := c.lru.get(k); ok {
		c.m[k] = raw
		return
	}
	lo, hi, err := s.blockRange(b)
	if err != nil {
		return // event reports it
	}
	off, n := int64(s.secOff[secBlocks]+lo), int(hi-lo)
	p := compBufs.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	*p = (*p)[:n]
	if readNoWait(s.fd, *p, off) {
		if c.comp == nil {
			c.comp = map[blockKey]*[]byte{}
		}
		c.comp[k] = p
		return
	}
	compBufs.Put(p)
	willNeed(s.fd, off, int64(n))
}

func (c *blockCache) event(s *segment, row int, dec *zstd.Decoder) (event.Event, error) {
	b := row / s.rpb
	k := blockKey{s.id, b}
	raw, ok := c.m[k]
	if !ok {
		if raw, ok = c.lru.get(k); !ok {
			var err error
			decode := s.block
			if comp, ok := c.comp[k]; ok {
				decode = func(b int, dec *zstd.Decoder, dst []byte) ([]byte, error) {
					return s.decodeBlock(b, *comp, dec, dst)
				}
			}
			if c.lru.admit(k) {
				// The LRU keeps the block: it gets memory of its own.
				if raw, err = decode(b, dec, nil); err != nil {
					return event.Event{}, err
				}
				c.lru.put(k, raw)
			} else {
				p := blockBufs.Get().(*[]byte)
				if raw, err = decode(b, dec, (*p)[:0]); err != nil {
					blockBufs.Put(p)
					return event.Event{}, err
				}
				*p = raw
				c.pooled = append(c.pooled, p)
			}
		}
		c.m[k] = raw
	}
	enc, err := rowInBlock(raw, row%s.rpb)
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
//
// It also marks the mapping random-access (MADV_RANDOM): what maps back
// later is searches' scattered reads (dictionary probes, postings, column
// values), and with the default the kernel maps each fault's neighbours
// as well; measured on the 10M-event directory, userId CPU per query
// 2.65 -> 2.09 ms. Open's checks, which read whole segments, run before
// the first release.
func (s *segment) release() {
	if s.mm != nil {
		syscall.Madvise(s.mm, syscall.MADV_DONTNEED)
		syscall.Madvise(s.mm, syscall.MADV_RANDOM)
	}
}

func (s *segment) close() error {
	s.closeDecoder()
	if s.file != nil {
		s.file.Close()
		s.file = nil
		s.fd = -1
	}
	if s.mm == nil {
		return nil
	}
	err := syscall.Munmap(s.mm)
	s.mm = nil
	return err
}

// closeDecoder releases the segment's own zstd decoder, if any.
func (s *segment) closeDecoder() {
	if s.zd != nil {
		s.zd.Close()
		s.zd = nil
	}
}
