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

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"
)

// appendPostingV4 appends ascending rows as a version 4 posting: a short
// varint list or, when longer, a roaring bitmap (bm is scratch space).
func appendPostingV4(dst []byte, rows []uint32, bm *roaring.Bitmap) []byte {
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
		panic(err)
	}
	return w.Bytes()
}

// encodePostingV4 is appendPostingV4 into a new slice.
func encodePostingV4(rows []uint32) []byte { return appendPostingV4(nil, rows, roaring.New()) }

// writeSegmentV4 is the version-4 writer as it was before version 5, kept
// so that tests can make the files users' data directories hold and prove
// that this build still opens, searches, checks and repairs them.
func writeSegmentV4(dir string, m *memtable, enc *zstd.Encoder) (string, error) {
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
	meta := segMeta{Version: segVersionV4, Rows: n, RowsPerBlock: rowsPerBlockV4, Gen: m.gen,
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
	nb := (n + rowsPerBlockV4 - 1) / rowsPerBlockV4
	blocks := make([][]byte, nb)
	var raw []byte
	for b := range nb {
		raw = raw[:0]
		for nr := b * rowsPerBlockV4; nr < min(n, (b+1)*rowsPerBlockV4); nr++ {
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
		posts = appendPostingV4(posts, rows, scratchBM)
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
	for _, t := range sw.table[:numSectionsV4] {
		footer = binary.LittleEndian.AppendUint64(footer, t.off)
		footer = binary.LittleEndian.AppendUint64(footer, t.len)
		footer = binary.LittleEndian.AppendUint32(footer, t.crc)
	}
	trailer := binary.LittleEndian.AppendUint64(nil, footerOff)
	trailer = binary.LittleEndian.AppendUint32(trailer, numSectionsV4)
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
