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
// prefixes ("t" + token), which makes plain string sorting slow; comparing
// their first 8 bytes as an integer first settles most comparisons.
func sortedPostings(m *memtable) []*posting {
	type item struct {
		prefix uint64
		p      *posting
	}
	items := make([]item, 0, len(m.postings))
	m.allPostings(func(p *posting) {
		var b [8]byte
		copy(b[:], p.key)
		items = append(items, item{binary.BigEndian.Uint64(b[:]), p})
	})
	slices.SortFunc(items, func(a, b item) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return strings.Compare(a.p.key, b.p.key)
	})
	out := make([]*posting, len(items))
	for i := range items {
		out[i] = items[i].p
	}
	return out
}

// encodePosting writes ascending rows as a short varint list or, when
// longer, as a roaring bitmap.
func encodePosting(rows []uint32) []byte {
	if len(rows) <= postingListMax {
		b := []byte{postingList}
		b = binary.AppendUvarint(b, uint64(len(rows)))
		var prev uint32
		for _, r := range rows {
			b = binary.AppendUvarint(b, uint64(r-prev))
			prev = r
		}
		return b
	}
	bm := roaring.New()
	bm.AddMany(rows)
	bm.RunOptimize()
	out := make([]byte, 1, 1+bm.GetSerializedSizeInBytes())
	out[0] = postingRoaring
	w := bytes.NewBuffer(out)
	if _, err := bm.WriteTo(w); err != nil {
		panic(err) // writing to a bytes.Buffer cannot fail
	}
	return w.Bytes()
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
	var scratch []byte
	u32 := func(v uint32) error { return sw.write(binary.LittleEndian.AppendUint32(scratch[:0], v)) }
	u64 := func(v uint64) error { return sw.write(binary.LittleEndian.AppendUint64(scratch[:0], v)) }
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
	for _, old := range order {
		check(u64(uint64(m.occurred[old])))
	}
	sw.end()
	sw.begin(secSeq)
	for _, old := range order {
		check(u64(m.seqs[old]))
	}
	sw.end()
	sw.begin(secBySeq)
	for old := range n { // memtable rows are in Seq order
		check(u32(newRow[old]))
	}
	sw.end()

	sw.begin(secKeyOffs)
	var koff uint32
	check(u32(0))
	for _, old := range order {
		id, company := encodedKey(m.enc[old])
		koff += uint32(len(company) + 1 + len(id))
		check(u32(koff))
	}
	sw.end()
	sw.begin(secKeyBytes)
	for _, old := range order {
		id, company := encodedKey(m.enc[old])
		check(sw.write(append(append(append(scratch[:0], company...), 0), id...)))
	}
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
	check(u64(0))
	for _, b := range blocks {
		boff += uint64(len(b))
		check(u64(boff))
	}
	sw.end()
	sw.begin(secBlockCRCs)
	for _, b := range blocks {
		check(u32(crc32.Checksum(b, castagnoli)))
	}
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
	for _, o := range dictOffs {
		check(u32(o))
	}
	sw.end()
	sw.begin(secDictKeys)
	check(sw.write(dict))
	sw.end()
	dict = nil

	posts := make([][]byte, len(keys))
	var rows []uint32
	for i := range keys {
		rows = rows[:0]
		rows = posts0[i].appendRows(rows)
		for j, old := range rows {
			rows[j] = newRow[old]
		}
		slices.Sort(rows)
		posts[i] = encodePosting(rows)
	}
	sw.begin(secPostOffs)
	var poff uint64
	check(u32(0))
	for _, p := range posts {
		poff += uint64(len(p))
		if poff > math.MaxUint32 {
			return "", fmt.Errorf("write segment: postings exceed 4 GiB")
		}
		check(u32(uint32(poff)))
	}
	sw.end()
	sw.begin(secPostCRCs)
	for j := 0; j < len(posts); j += postingsPerCRC {
		var c uint32
		for _, p := range posts[j:min(len(posts), j+postingsPerCRC)] {
			c = crc32.Update(c, castagnoli, p)
		}
		check(u32(c))
	}
	sw.end()
	sw.begin(secPosts)
	for _, p := range posts {
		check(sw.write(p))
	}
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
