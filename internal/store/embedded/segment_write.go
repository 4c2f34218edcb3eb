package embedded

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

// sectionWriter writes sections one after another, remembering where each
// one is and its checksum.
type sectionWriter struct {
	w     *bufio.Writer
	off   uint64
	table [numSections]struct {
		off, len uint64
		crc      uint32
	}
	cur int
	crc uint32
}

func (s *sectionWriter) begin(sec int) {
	s.cur = sec
	s.table[sec].off = s.off
	s.crc = 0
}

func (s *sectionWriter) write(b []byte) error {
	s.crc = crc32.Update(s.crc, castagnoli, b)
	s.off += uint64(len(b))
	_, err := s.w.Write(b)
	return err
}

func (s *sectionWriter) end() {
	t := &s.table[s.cur]
	t.len = s.off - t.off
	t.crc = s.crc
}

// sortedPostings returns the postings of m in key order. Posting keys share
// prefixes ("t" + token), which makes plain string sorting slow: the keys
// are radix-sorted by their first 8 bytes as an integer, and only keys
// that agree on those are compared as strings.
func sortedPostings(m *memtable) []*posting {
	items := make([]prefixItem, 0, m.postings.n)
	m.allPostings(func(p *posting) {
		var b [8]byte
		copy(b[:], p.key)
		items = append(items, prefixItem{binary.BigEndian.Uint64(b[:]), p})
	})
	items = radixSort(items, make([]prefixItem, len(items)))
	for i := 0; i < len(items); {
		j := i + 1
		for j < len(items) && items[j].prefix == items[i].prefix {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(items[i:j], func(a, b prefixItem) int { return strings.Compare(a.p.key, b.p.key) })
		}
		i = j
	}
	out := make([]*posting, len(items))
	for i := range items {
		out[i] = items[i].p
	}
	return out
}

type prefixItem struct {
	prefix uint64
	p      *posting
}

// radixSort sorts a by prefix (LSD, a byte per pass, skipping bytes all
// items share), using tmp (as long as a) as scratch; it returns the sorted
// slice, which is a or tmp.
func radixSort(a, tmp []prefixItem) []prefixItem {
	if len(a) < 2 {
		return a
	}
	for shift := 0; shift < 64; shift += 8 {
		var count [256]int
		for _, it := range a {
			count[byte(it.prefix>>shift)]++
		}
		if count[byte(a[0].prefix>>shift)] == len(a) {
			continue
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, it := range a {
			d := byte(it.prefix >> shift)
			tmp[count[d]] = it
			count[d]++
		}
		a, tmp = tmp, a
	}
	return a
}

// appendPosting appends ascending rows as a version 5 posting: one row as
// its head alone, a few as a uvarint list, more as a roaring bitmap (bm is
// scratch space).
func appendPosting(dst []byte, rows []uint32, bm *roaring.Bitmap) []byte {
	switch {
	case len(rows) == 1:
		return binary.AppendUvarint(dst, uint64(rows[0])<<2|postOne)
	case len(rows) <= postListMax:
		dst = binary.AppendUvarint(dst, uint64(len(rows))<<2|postList)
		var prev uint32
		for _, r := range rows {
			dst = binary.AppendUvarint(dst, uint64(r-prev))
			prev = r
		}
		return dst
	}
	bm.Clear()
	bm.AddMany(rows)
	bm.RunOptimize()
	dst = binary.AppendUvarint(dst, postRoaring)
	w := bytes.NewBuffer(dst)
	if _, err := bm.WriteTo(w); err != nil {
		panic(err) // writing to a bytes.Buffer cannot fail
	}
	return w.Bytes()
}

// encodePosting is appendPosting into a new slice.
func encodePosting(rows []uint32) []byte { return appendPosting(nil, rows, roaring.New()) }

// encodedKeyBytes is encodedKey without copying: the ID and CompanyID of
// an encoded event, aliasing b.
func encodedKeyBytes(b []byte) (id, company []byte) {
	d := decoder{b: b}
	d.uvarint()
	d.varint()
	id = d.bytes(d.uvarint())
	company = d.bytes(d.uvarint())
	return id, company
}

// buildDict front-codes the sorted keys in blocks of dictBlockKeys (see
// scanDict): a block's first key whole, so that a lookup binary-searches
// the blocks without decoding them, then the rest of the block
// Huffman-coded with one table for the whole dictionary, kept at the start
// of the section (dictOffs[0] is its length). Keys are mostly random IDs
// and tokens in a small alphabet (base 62, lower-cased base 36): Huffman
// codes take the benchmark trail's dictionary from 91 to 73 B/row, and a
// block decodes in about a microsecond.
func buildDict(keys []string) ([]byte, []uint32) {
	nb := (len(keys) + dictBlockKeys - 1) / dictBlockKeys
	// Sized up front: growing by doubling copied the whole section over
	// and over (growslice was a tenth of the segment write).
	keyBytes := 0
	for _, k := range keys {
		keyBytes += len(k)
	}
	rest := make([]byte, 0, keyBytes)
	restEnds := make([]int, nb)
	for i, k := range keys {
		if i%dictBlockKeys != 0 {
			prev := keys[i-1]
			shared := 0
			for shared < len(prev) && shared < len(k) && prev[shared] == k[shared] {
				shared++
			}
			rest = binary.AppendUvarint(rest, uint64(shared))
			rest = appendString(rest, k[shared:])
		}
		restEnds[i/dictBlockKeys] = len(rest)
	}
	sc, table := huffTable(rest, restEnds)
	dict := append(make([]byte, 0, len(table)+keyBytes*3/4+nb*8), table...)
	dictOffs := make([]uint32, 0, nb+1)
	lo := 0
	for b := range nb {
		dictOffs = append(dictOffs, uint32(len(dict)))
		dict = appendString(dict, keys[b*dictBlockKeys])
		r := rest[lo:restEnds[b]]
		lo = restEnds[b]
		if sc != nil && len(r) < huff0.BlockSizeMax {
			sc.Reuse = huff0.ReusePolicyMust
			if out, _, err := huff0.Compress1X(r, sc); err == nil && len(out)+binary.MaxVarintLen32 < len(r) {
				dict = append(dict, dictHuff)
				dict = binary.AppendUvarint(dict, uint64(len(r)))
				dict = append(dict, out...)
				continue
			}
		}
		dict = append(dict, dictRaw)
		dict = append(dict, r...)
	}
	return dict, append(dictOffs, uint32(len(dict)))
}

// huffTable builds the Huffman table of the dictionary blocks' bytes from
// a sample of blocks (a table covers at most huff0.BlockSizeMax bytes),
// with every byte value that occurs anywhere added once so that the table
// can code every block. It returns nil when Huffman coding does not pay.
func huffTable(rest []byte, ends []int) (*huff0.Scratch, []byte) {
	var sample []byte
	step := len(rest)/(huff0.BlockSizeMax/2) + 1
	lo := 0
	for b, hi := range ends {
		if b%step == 0 && len(sample)+hi-lo < huff0.BlockSizeMax-256 {
			sample = append(sample, rest[lo:hi]...)
		}
		lo = hi
	}
	var seen [256]bool
	for _, c := range sample {
		seen[c] = true
	}
	for _, c := range rest {
		if !seen[c] {
			seen[c] = true
			sample = append(sample, c)
		}
	}
	sc := &huff0.Scratch{}
	if _, _, err := huff0.Compress1X(sample, sc); err != nil {
		return nil, nil
	}
	return sc, slices.Clone(sc.OutTable)
}

// zdictMax bounds the zstd dictionary of a segment: 64 KiB of sampled
// events took the benchmark trail's 16-row blocks from 204 to 145 B/row
// (32 KiB: 150). A bigger dictionary pays (TestFormatStats' trail, blocks
// alone, B/row): 100k rows 145.8 at 64 KiB, 141.4 at 128, 137.0 at 256,
// 134.4 at 512; 250k rows 145.8, 142.2, 138.3, 133.7, and 133.1 at 1 MiB;
// decoding a block costs 13-14 µs at every size. Since version 7 stores
// the dictionary compressed (packZDict, ~4×), its two copies cost ~0.5 B
// per byte: about 8 bytes of dictionary per row, between zdictMin and
// zdictMax (v7, 33k / 100k / 250k rows: 293.5 → 288.9, 268.5 → 265.9,
// 253.0 → 253.0 B/row against ~2.5 bytes per row).
const (
	zdictMin = 64 << 10
	zdictMax = 512 << 10
)

// zdictSize is the size of the zstd dictionary of a segment of rows rows
// whose encoded events take total bytes: see zdictMax, and at most 1/32
// of the events (a small segment would otherwise pay more for its
// dictionary than it saves).
func zdictSize(rows, total int) int {
	return min(zdictMax, max(zdictMin, rows*8), total/32)
}

// packZDict is how version 7 stores the zstd dictionary of a segment
// (twice): as a zstd frame of it (no dictionary, fastest level). The
// sampled events compress about 4×: 250 KB took 60 KB, which saves ~3.8 B
// per row of a 100k-row segment for ~3 ms at write and ~0.3 ms at open.
// Empty stays empty. The output is a function of the input alone, so a
// merge writes the same bytes as writeSegment.
func packZDict(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		panic(err) // only bad options make NewWriter fail
	}
	defer enc.Close()
	return enc.EncodeAll(raw, make([]byte, 0, len(raw)/3))
}

// unpackZDict reverses packZDict; the result is at most zdictMax bytes.
func unpackZDict(b []byte) ([]byte, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*zdictMax))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(b, nil)
	if err != nil {
		return nil, err
	}
	if len(raw) > zdictMax {
		return nil, fmt.Errorf("zstd dictionary of %d bytes", len(raw))
	}
	return raw, nil
}

// buildZDict returns a raw zstd dictionary for the blocks of m: encoded
// events sampled evenly over the memtable, zdictSize bytes. Field names,
// IDs and values that recur across rows are then found in the dictionary
// by every block. A raw dictionary costs no training (training one took
// seconds per 100k events) and compresses these blocks as well.
func buildZDict(m *memtable) []byte {
	total := 0
	for _, e := range m.enc {
		total += len(e)
	}
	size := zdictSize(len(m.enc), total)
	if size < 4<<10 {
		return nil
	}
	// An evenly spaced sample: every step-th event until size, starting
	// again one further along if a pass falls short.
	avg := max(1, total/len(m.enc))
	step := max(1, len(m.enc)/(size/avg+1))
	dict := make([]byte, 0, size+avg)
	for start := 0; len(dict) < size && start < step; start++ {
		for i := start; i < len(m.enc) && len(dict) < size; i += step {
			dict = append(dict, m.enc[i]...)
		}
	}
	return dict[:min(len(dict), size)]
}

// newDictEncoder returns the encoder of the blocks of a segment of
// version ver with the raw zstd dictionary zdict. From version 8 its frames
// carry no checksum: readers never checked it (every block has a CRC32C,
// checked before decoding), and it cost 4 bytes per block.
func newDictEncoder(zdict []byte, ver int) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderDictRaw(0, zdict), zstd.WithEncoderCRC(ver < segVersion8))
}

// writeSegment writes the rows of a frozen memtable as an immutable segment
// file in dir (the current version) and returns its path. The file appears
// under its final name only once complete and fsynced. enc compresses the
// blocks of a segment too small to have a dictionary.
func writeSegment(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
	return writeSegmentBlocks(dir, m, enc, segVersion, flushBlockRows)
}

// writeSegmentVersion is writeSegment writing version ver: 6, or 5 (the
// same layout with the logical keys stored as they are), which tests use
// to make version 5 files.
func writeSegmentVersion(dir string, m *memtable, enc *zstd.Encoder, ver int) (string, error) {
	return writeSegmentBlocks(dir, m, enc, ver, rowsPerBlockV5)
}

// writeSegmentBlocks is writeSegmentVersion with blocks of rpb rows when
// the segment has a zstd dictionary and ver allows it (blockRowsFor): the
// merge writer's layout, which TestStreamWriterMatchesWriteSegment holds
// it to.
func writeSegmentBlocks(dir string, m *memtable, enc *zstd.Encoder, ver, rpb int) (string, error) {
	n := m.len()
	if uint64(n) >= math.MaxUint32 {
		return "", fmt.Errorf("write segment: %d rows", n)
	}
	// order[newRow] = old row; newRow follows query.Less newest first.
	order := make([]uint32, n)
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int {
		if c := cmp.Compare(m.occurred[b], m.occurred[a]); c != 0 {
			return c
		}
		return cmp.Compare(m.seqs[b], m.seqs[a])
	})
	newRow := make([]uint32, n)
	for nr, old := range order {
		newRow[old] = uint32(nr)
	}
	zdict := buildZDict(m)
	rpb = blockRowsFor(ver, rpb, zdict != nil)
	meta := segMeta{Version: ver, Rows: n, RowsPerBlock: rpb, Gen: m.gen,
		MinSeq: m.seqs[0], MaxSeq: m.seqs[n-1],
		MinOccurred: m.occurred[order[n-1]], MaxOccurred: m.occurred[order[0]],
		Companies: m.compNames}
	if zdict != nil {
		// The dictionary's encoder is this segment's alone: it is set up
		// once per segment (a few ms), against a flush of 100k events.
		var err error
		if enc, err = newDictEncoder(zdict, ver); err != nil {
			return "", fmt.Errorf("write segment: %w", err)
		}
		defer enc.Close()
	}

	f, err := createSegmentFile(dir, m.gen)
	if err != nil {
		return "", err
	}
	defer f.discard()
	sw := &sectionWriter{w: bufio.NewWriterSize(f, 1<<20)}
	// Columns are built whole in col, then written at once.
	col := make([]byte, 0, 8*n+8)
	vals := make([]uint64, 0, n+1)
	var werr error
	check := func(err error) {
		if werr == nil {
			werr = err
		}
	}
	packed := func(sec int, vals []uint64) {
		sw.begin(sec)
		col = appendPacked(col[:0], vals)
		check(sw.write(col))
		sw.end()
	}

	posts0 := sortedPostings(m)
	keys := make([]string, len(posts0))
	for i, p := range posts0 {
		keys[i] = p.key
	}
	// rowsOf returns the rows of logical key i in the segment's row order.
	// A big posting's rows are marked in a bitset of the segment's rows and
	// read back in order: sorting them was a tenth of the flush (the
	// memtable's Seq order maps to a nearly reversed, not a sorted, run).
	mark := make([]uint64, (n+63)/64)
	rowsOf := func(i int, dst []uint32) []uint32 {
		dst = posts0[i].appendRows(dst[:0])
		if len(dst) < rowsByMarkMin || len(dst) < n/1024 {
			for j, old := range dst {
				dst[j] = newRow[old]
			}
			slices.Sort(dst)
			return dst
		}
		for _, old := range dst {
			nr := newRow[old]
			mark[nr/64] |= 1 << (nr % 64)
		}
		dst = dst[:0]
		for w, bits64 := range mark {
			if bits64 == 0 {
				continue
			}
			mark[w] = 0
			for ; bits64 != 0; bits64 &= bits64 - 1 {
				dst = append(dst, uint32(w*64+bits.TrailingZeros64(bits64)))
			}
		}
		return dst
	}
	var stored []segKey
	if ver >= segVersion6 {
		stored = segmentKeys(keys, func(i int) []uint32 { return rowsOf(i, nil) })
	} else {
		stored = make([]segKey, len(keys))
		for i, k := range keys {
			stored[i] = segKey{key: k, src: i}
		}
	}
	keys = keys[:0]
	for _, sk := range stored {
		keys = append(keys, sk.key)
	}
	meta.Keys = len(keys)

	sw.begin(secMeta)
	mj, _ := json.Marshal(meta)
	check(sw.write(mj))
	sw.end()

	vals = vals[:0]
	for _, old := range order {
		vals = append(vals, uint64(m.occurred[old])^1<<63)
	}
	packed(secOccurred, vals)
	vals = vals[:0]
	for _, old := range order {
		vals = append(vals, m.seqs[old])
	}
	packed(secSeq, vals)
	vals = vals[:0]
	for old := range n { // memtable rows are in Seq order
		vals = append(vals, uint64(newRow[old]))
	}
	packed(secBySeq, vals)

	// Keys: the company as its index into meta.Companies, then the id.
	var keyBytes []byte
	vals = append(vals[:0], 0)
	for _, old := range order {
		id, _ := encodedKeyBytes(m.enc[old])
		keyBytes = binary.AppendUvarint(keyBytes, uint64(m.comps[old]))
		keyBytes = append(keyBytes, id...)
		vals = append(vals, uint64(len(keyBytes)))
	}
	packed(secKeyOffs, vals)
	sw.begin(secKeyBytes)
	check(sw.write(keyBytes))
	sw.end()
	keyBytes = nil

	// Blocks are compressed first so that their offsets and checksums can
	// be written ahead of them.
	nb := (n + rpb - 1) / rpb
	// Blocks compress to about a fifth of the events (TestFormatStats:
	// 137 B of ~650 B per row); sized for a quarter, so that appending
	// does not copy the section again and again.
	encBytes := 0
	for _, e := range m.enc {
		encBytes += len(e)
	}
	blocks := make([]byte, 0, encBytes/4+64<<10)
	blockEnds := make([]uint64, nb)
	var raw []byte
	for b := range nb {
		raw = raw[:0]
		for nr := b * rpb; nr < min(n, (b+1)*rpb); nr++ {
			e := m.enc[order[nr]]
			raw = binary.AppendUvarint(raw, uint64(len(e)))
			raw = append(raw, e...)
		}
		blocks = enc.EncodeAll(raw, blocks)
		blockEnds[b] = uint64(len(blocks))
	}
	sw.begin(secBlockOffs)
	col = binary.LittleEndian.AppendUint64(col[:0], 0)
	for _, end := range blockEnds {
		col = binary.LittleEndian.AppendUint64(col, end)
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secBlockCRCs)
	col = col[:0]
	var lo uint64
	for _, end := range blockEnds {
		col = binary.LittleEndian.AppendUint32(col, crc32.Checksum(blocks[lo:end], castagnoli))
		lo = end
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secBlocks)
	check(sw.write(blocks))
	sw.end()
	blocks = nil

	dict, dictOffs := buildDict(keys)
	if uint64(len(dict)) > math.MaxUint32 {
		return "", fmt.Errorf("write segment: dictionary exceeds 4 GiB")
	}
	sw.begin(secDictOffs)
	col = col[:0]
	for _, o := range dictOffs {
		col = binary.LittleEndian.AppendUint32(col, o)
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secDictKeys)
	check(sw.write(dict))
	sw.end()
	dict = nil

	// Postings go one after another into posts; postEnds[i] is the end of
	// key i's.
	var posts []byte
	postEnds := make([]uint64, len(keys)+1)
	var rows []uint32
	scratchBM := roaring.New()
	for i, sk := range stored {
		r := sk.rows
		if r == nil {
			rows = rowsOf(sk.src, rows)
			r = rows
		}
		posts = appendPosting(posts, r, scratchBM)
		postEnds[i+1] = uint64(len(posts))
	}
	packed(secPostOffs, postEnds)
	sw.begin(secPostCRCs)
	col = col[:0]
	for j := 0; j < len(keys); j += postingsPerCRC {
		lo, hi := postEnds[j], postEnds[min(len(keys), j+postingsPerCRC)]
		col = binary.LittleEndian.AppendUint32(col, crc32.Checksum(posts[lo:hi], castagnoli))
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secPosts)
	check(sw.write(posts))
	sw.end()
	posts = nil

	zstored := zdict
	if ver >= segVersion7 {
		zstored = packZDict(zdict)
	}
	for _, sec := range []int{secZDict, secZDictCopy} {
		sw.begin(sec)
		check(sw.write(zstored))
		sw.end()
	}

	if _, err := sw.w.Write(sw.footer()); err != nil {
		check(err)
	}
	check(sw.w.Flush())
	if werr != nil {
		return "", fmt.Errorf("write segment: %w", werr)
	}
	return f.publish()
}

// rowsByMarkMin is the smallest posting whose rows writeSegment orders
// through a bitset of the segment's rows rather than by sorting them
// (also at least 1/1024 of the rows, so that reading the bitset back
// costs no more than the sort).
const rowsByMarkMin = 64

// segmentFile is a segment being written: a temporary file, renamed to its
// final name only once complete and synced, so that a crash leaves either
// no segment or a whole one (Open deletes stray temporary files).
type segmentFile struct {
	*os.File
	tmp, final, dir string
	published       bool
}

func createSegmentFile(dir string, gen uint64) (*segmentFile, error) {
	final := filepath.Join(dir, segName(gen))
	f, err := os.Create(final + ".tmp")
	if err != nil {
		return nil, err
	}
	return &segmentFile{File: f, tmp: final + ".tmp", final: final, dir: dir}, nil
}

// discard removes the temporary file unless publish renamed it; writers
// defer it.
func (f *segmentFile) discard() {
	if !f.published {
		f.Close()
		os.Remove(f.tmp)
	}
}

// publish syncs and closes the file, renames it to its final name and
// syncs the directory, returning the final path.
func (f *segmentFile) publish() (string, error) {
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync segment: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close segment: %w", err)
	}
	if err := os.Rename(f.tmp, f.final); err != nil {
		return "", fmt.Errorf("rename segment: %w", err)
	}
	f.published = true
	if err := syncDir(f.dir); err != nil {
		return "", fmt.Errorf("sync segment dir: %w", err)
	}
	return f.final, nil
}

// footer returns the section table (offset, length, CRC of each section)
// and the trailer that ends a segment file: the table's offset, the number
// of sections, the table's CRC and the magic. It goes after the last
// section.
func (sw *sectionWriter) footer() []byte {
	footerOff := sw.off
	var footer []byte
	for _, t := range sw.table {
		footer = binary.LittleEndian.AppendUint64(footer, t.off)
		footer = binary.LittleEndian.AppendUint64(footer, t.len)
		footer = binary.LittleEndian.AppendUint32(footer, t.crc)
	}
	trailer := binary.LittleEndian.AppendUint64(nil, footerOff)
	trailer = binary.LittleEndian.AppendUint32(trailer, numSections)
	trailer = binary.LittleEndian.AppendUint32(trailer, crc32.Checksum(footer, castagnoli))
	trailer = append(trailer, segMagic...)
	return append(footer, trailer...)
}
