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
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
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

// appendPosting appends ascending rows as a short varint list or, when
// longer, as a roaring bitmap (bm is scratch space).
func appendPosting(dst []byte, rows []uint32, bm *roaring.Bitmap) []byte {
	if len(rows) <= postingListMax {
		dst = append(dst, postingList)
		dst = binary.AppendUvarint(dst, uint64(len(rows)))
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
	dst = append(dst, postingRoaring)
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

// writeSegment writes the rows of a frozen memtable as an immutable segment
// file in dir and returns its path. The file appears under its final name
// only once complete and fsynced.
func writeSegment(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
	n := m.len()
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
	meta := segMeta{Version: segVersion, Rows: n, RowsPerBlock: rowsPerBlock, Gen: m.gen,
		MinSeq: m.seqs[0], MaxSeq: m.seqs[n-1],
		MinOccurred: m.occurred[order[n-1]], MaxOccurred: m.occurred[order[0]]}

	final := filepath.Join(dir, segName(m.gen))
	tmp := final + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	sw := &sectionWriter{w: bufio.NewWriterSize(f, 1<<20)}
	// Fixed-width columns are built whole in col, then written at once.
	col := make([]byte, 0, 8*n+8)
	var werr error
	check := func(err error) {
		if werr == nil {
			werr = err
		}
	}

	posts0 := sortedPostings(m)
	keys := make([]string, len(posts0))
	for i, p := range posts0 {
		keys[i] = p.key
	}
	meta.Keys = len(keys)

	sw.begin(secMeta)
	mj, _ := json.Marshal(meta)
	check(sw.write(mj))
	sw.end()

	sw.begin(secOccurred)
	col = col[:0]
	for _, old := range order {
		col = binary.LittleEndian.AppendUint64(col, uint64(m.occurred[old]))
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secSeq)
	col = col[:0]
	for _, old := range order {
		col = binary.LittleEndian.AppendUint64(col, m.seqs[old])
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secBySeq)
	col = col[:0]
	for old := range n { // memtable rows are in Seq order
		col = binary.LittleEndian.AppendUint32(col, newRow[old])
	}
	check(sw.write(col))
	sw.end()

	sw.begin(secKeyOffs)
	var koff uint32
	col = binary.LittleEndian.AppendUint32(col[:0], 0)
	for _, old := range order {
		id, company := encodedKeyBytes(m.enc[old])
		koff += uint32(len(company) + 1 + len(id))
		col = binary.LittleEndian.AppendUint32(col, koff)
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secKeyBytes)
	col = col[:0]
	for _, old := range order {
		id, company := encodedKeyBytes(m.enc[old])
		col = append(append(append(col, company...), 0), id...)
	}
	check(sw.write(col))
	sw.end()

	// Blocks are compressed first so that their offsets and checksums can
	// be written ahead of them.
	nb := (n + rowsPerBlock - 1) / rowsPerBlock
	blocks := make([][]byte, nb)
	var raw []byte
	for b := range nb {
		raw = raw[:0]
		for nr := b * rowsPerBlock; nr < min(n, (b+1)*rowsPerBlock); nr++ {
			enc := m.enc[order[nr]]
			raw = binary.AppendUvarint(raw, uint64(len(enc)))
			raw = append(raw, enc...)
		}
		blocks[b] = enc.EncodeAll(raw, nil)
	}
	sw.begin(secBlockOffs)
	var boff uint64
	col = binary.LittleEndian.AppendUint64(col[:0], 0)
	for _, b := range blocks {
		boff += uint64(len(b))
		col = binary.LittleEndian.AppendUint64(col, boff)
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secBlockCRCs)
	col = col[:0]
	for _, b := range blocks {
		col = binary.LittleEndian.AppendUint32(col, crc32.Checksum(b, castagnoli))
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secBlocks)
	for _, b := range blocks {
		check(sw.write(b))
	}
	sw.end()
	blocks = nil

	var dict []byte
	var dictOffs []uint32
	for i, k := range keys {
		if i%dictBlockKeys == 0 {
			dictOffs = append(dictOffs, uint32(len(dict)))
			dict = appendString(dict, k)
			continue
		}
		prev := keys[i-1]
		shared := 0
		for shared < len(prev) && shared < len(k) && prev[shared] == k[shared] {
			shared++
		}
		dict = binary.AppendUvarint(dict, uint64(shared))
		dict = appendString(dict, k[shared:])
	}
	dictOffs = append(dictOffs, uint32(len(dict)))
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
	postEnds := make([]uint32, len(keys))
	var rows []uint32
	scratchBM := roaring.New()
	for i := range keys {
		rows = posts0[i].appendRows(rows[:0])
		for j, old := range rows {
			rows[j] = newRow[old]
		}
		slices.Sort(rows)
		posts = appendPosting(posts, rows, scratchBM)
		if uint64(len(posts)) > math.MaxUint32 {
			return "", fmt.Errorf("write segment: postings exceed 4 GiB")
		}
		postEnds[i] = uint32(len(posts))
	}
	sw.begin(secPostOffs)
	col = binary.LittleEndian.AppendUint32(col[:0], 0)
	for _, end := range postEnds {
		col = binary.LittleEndian.AppendUint32(col, end)
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secPostCRCs)
	col = col[:0]
	for j := 0; j < len(postEnds); j += postingsPerCRC {
		lo := uint32(0)
		if j > 0 {
			lo = postEnds[j-1]
		}
		hi := postEnds[min(len(postEnds), j+postingsPerCRC)-1]
		col = binary.LittleEndian.AppendUint32(col, crc32.Checksum(posts[lo:hi], castagnoli))
	}
	check(sw.write(col))
	sw.end()
	sw.begin(secPosts)
	check(sw.write(posts))
	sw.end()

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
	if _, err := sw.w.Write(footer); err != nil {
		check(err)
	}
	if _, err := sw.w.Write(trailer); err != nil {
		check(err)
	}
	check(sw.w.Flush())
	if werr != nil {
		return "", fmt.Errorf("write segment: %w", werr)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync segment: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close segment: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("rename segment: %w", err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("sync segment dir: %w", err)
	}
	return final, nil
}
