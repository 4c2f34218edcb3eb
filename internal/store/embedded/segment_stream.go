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
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"
)

// A merge output is written straight from its input segments. Going
// through a memtable, as a flush does, decoded every event, derived its
// posting keys again, filed them into hash tables and sorted them: about
// 16 µs and 2 KB of heap per row, as much CPU as ingesting the row. Here
// the rows stay encoded (an input block is decompressed once, its rows
// copied into the output's blocks) and the postings come from the inputs'
// dictionaries, which are sorted already: a k-way merge of the keys, each
// key's rows renumbered. The file is the one writeSegment would write for
// the same rows (TestStreamWriterMatchesWriteSegment holds it to that), so
// a change to the format must be made in both.

// mergeIn is one input segment of a merge and its reading state.
type mergeIn struct {
	s   *segment
	dec *zstd.Decoder // for segments without a dictionary of their own
	// newRow[row] is 1 + the row's number in the output being written, 0
	// when it is not in that output.
	newRow []uint32
	// comp maps the input's company indexes (version 5) to the output's,
	// -1 when not assigned yet.
	comp []int32
	// The last block decompressed: rows of one input reach the output in
	// their own order (both sort newest first), so each block is
	// decompressed once per output.
	blk    int
	raw    []byte
	lo, hi [maxBlockRows]int // each row's bytes in raw
}

func newMergeIn(s *segment, dec *zstd.Decoder) *mergeIn {
	return &mergeIn{s: s, dec: dec, newRow: make([]uint32, s.n), blk: -1}
}

// mref is a row of an input: its index in the merge's inputs and its row.
type mref struct{ in, row uint32 }

// event returns the encoded event of row, valid until the next call for
// another block. Its Seq and Occurred must agree with the columns, as a
// read checks them.
func (m *mergeIn) event(row int) ([]byte, error) {
	s := m.s
	b := row / s.rpb
	if b != m.blk {
		m.blk = -1
		dec := m.dec
		if s.zd != nil {
			dec = s.zd
		}
		lo, hi := s.u64(secBlockOffs, b), s.u64(secBlockOffs, b+1)
		if lo > hi || hi > uint64(len(s.sec[secBlocks])) {
			return nil, corruptf("segment %s: bad block offsets", filepath.Base(s.path))
		}
		comp := s.sec[secBlocks][lo:hi]
		if crc32.Checksum(comp, castagnoli) != s.u32(secBlockCRCs, b) {
			return nil, corruptf("segment %s: block %d checksum mismatch", filepath.Base(s.path), b)
		}
		raw, err := dec.DecodeAll(comp, m.raw[:0])
		if err != nil {
			return nil, corruptf("segment %s: block %d: %v", filepath.Base(s.path), b, err)
		}
		m.raw = raw
		d := decoder{b: raw}
		want := min(s.rpb, s.n-b*s.rpb)
		for i := range want {
			e := d.bytes(d.uvarint())
			if d.err != nil {
				break
			}
			m.lo[i] = len(raw) - len(d.b) - len(e)
			m.hi[i] = len(raw) - len(d.b)
		}
		if d.err != nil || len(d.b) != 0 {
			return nil, corruptf("segment %s: block %d does not hold its %d rows", filepath.Base(s.path), b, want)
		}
		m.blk = b
	}
	i := row % s.rpb
	enc := m.raw[m.lo[i]:m.hi[i]:m.hi[i]]
	d := decoder{b: enc}
	seq, occ := d.uvarint(), d.varint()
	if d.err != nil || seq != s.seq(row) || occ != s.occurred(row) {
		return nil, corruptf("segment %s row %d: columns disagree with the stored event", filepath.Base(s.path), row)
	}
	return enc, nil
}

// keyOf returns the company of row, as its index in the input's
// companies (-1 for version 4) and its name, and the row's id.
func (m *mergeIn) keyOf(row int) (compIdx int, company string, id []byte, err error) {
	s := m.s
	b, err := s.span(secKeyOffs, secKeyBytes, row)
	if err != nil {
		return 0, "", nil, err
	}
	if s.ver == segVersionV4 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return 0, "", nil, corruptf("segment %s: bad key of row %d", filepath.Base(s.path), row)
		}
		return -1, string(b[:i]), b[i+1:], nil
	}
	c, n := binary.Uvarint(b)
	if n <= 0 || c >= uint64(len(s.meta.Companies)) {
		return 0, "", nil, corruptf("segment %s: bad key of row %d", filepath.Base(s.path), row)
	}
	return int(c), s.meta.Companies[c], b[n:], nil
}

// dictCursor walks the posting keys of a segment in order, a dictionary
// block at a time, and reads each key's posting, checking the checksum
// of each run of postings once.
type dictCursor struct {
	in   *mergeIn
	next int // index of the key after the current one
	// The current block's keys, whole, one after another.
	kb    []byte
	ends  [dictBlockKeys + 1]int
	first int // index of the block's first key
	nk    int
	hbuf  []byte
	key   []byte // current key; nil when done
	idx   int    // its index
	crcAt int    // the run of postings whose checksum was checked, -1: none
	last  []byte
}

func newDictCursor(in *mergeIn) (*dictCursor, error) {
	c := &dictCursor{in: in, crcAt: -1, first: -dictBlockKeys}
	return c, c.advance()
}

// advance moves to the next key.
func (c *dictCursor) advance() error {
	s := c.in.s
	if c.next >= s.meta.Keys {
		c.key = nil
		return nil
	}
	if c.next >= c.first+c.nk {
		if err := c.loadBlock(c.next / dictBlockKeys); err != nil {
			return err
		}
	}
	j := c.next - c.first
	k := c.kb[c.ends[j]:c.ends[j+1]]
	if c.key != nil && bytes.Compare(k, c.key) <= 0 && j > 0 {
		return corruptf("segment %s: dictionary out of order at key %d", filepath.Base(s.path), c.next)
	}
	c.key, c.idx = k, c.next
	c.next++
	return nil
}

func (c *dictCursor) loadBlock(b int) error {
	s := c.in.s
	blk, err := s.span(secDictOffs, secDictKeys, b)
	if err != nil {
		return err
	}
	last := c.last[:0]
	if c.key != nil {
		last = append(last, c.key...) // the previous block's last key, for the order check
	}
	c.last = last
	c.kb = c.kb[:0]
	c.first = b * dictBlockKeys
	c.nk = 0
	d := decoder{b: blk}
	prev := 0 // start of the previous key in kb
	for j := 0; j < dictBlockKeys && c.first+j < s.meta.Keys; j++ {
		start := len(c.kb)
		if j == 0 {
			c.kb = append(c.kb, d.bytes(d.uvarint())...)
			if s.ver != segVersionV4 && d.err == nil {
				d.b, d.err = s.dictRest(d.b, &c.hbuf)
			}
		} else {
			shared := d.uvarint()
			suffix := d.bytes(d.uvarint())
			if shared > uint64(start-prev) {
				d.err = errBadEncoding
			}
			if d.err == nil {
				c.kb = append(c.kb, c.kb[prev:prev+int(shared)]...)
				c.kb = append(c.kb, suffix...)
			}
		}
		if d.err != nil {
			return corruptf("segment %s: dictionary block %d: %v", filepath.Base(s.path), b, d.err)
		}
		c.ends[j] = start
		c.ends[j+1] = len(c.kb)
		prev = start
		c.nk++
	}
	if len(d.b) != 0 {
		return corruptf("segment %s: dictionary block %d has trailing bytes", filepath.Base(s.path), b)
	}
	if last != nil && c.nk > 0 && bytes.Compare(c.kb[:c.ends[1]], last) <= 0 {
		return corruptf("segment %s: dictionary out of order at block %d", filepath.Base(s.path), b)
	}
	return nil
}

// appendRows appends the output rows of the current key's posting (those
// of its input rows that are in the output), ascending.
func (c *dictCursor) appendRows(dst []uint32) ([]uint32, error) {
	s := c.in.s
	i := c.idx
	if j := i / postingsPerCRC; j != c.crcAt {
		run, err := s.spanRange(secPostOffs, secPosts, j*postingsPerCRC, min(s.meta.Keys, (j+1)*postingsPerCRC))
		if err != nil {
			return dst, err
		}
		if crc32.Checksum(run, castagnoli) != s.u32(secPostCRCs, j) {
			return dst, corruptf("segment %s: postings %d-%d checksum mismatch", filepath.Base(s.path), j*postingsPerCRC, (j+1)*postingsPerCRC-1)
		}
		c.crcAt = j
	}
	b, err := s.span(secPostOffs, secPosts, i)
	if err != nil {
		return dst, err
	}
	newRow := c.in.newRow
	add := func(row uint64) bool {
		if row >= uint64(len(newRow)) {
			return false
		}
		if nr := newRow[row]; nr != 0 {
			dst = append(dst, nr-1)
		}
		return true
	}
	bad := func() ([]uint32, error) {
		return dst, corruptf("segment %s: posting %d malformed", filepath.Base(s.path), i)
	}
	var bm *roaring.Bitmap
	if s.ver == segVersionV4 {
		if bm, err = decodePostingV4(b); err != nil {
			return dst, fmt.Errorf("segment %s: posting %d: %w", filepath.Base(s.path), i, err)
		}
	} else {
		d := decoder{b: b}
		head := d.uvarint()
		switch {
		case d.err != nil:
			return bad()
		case head&3 == postOne:
			if len(d.b) != 0 || !add(head>>2) {
				return bad()
			}
			return dst, nil
		case head&3 == postList:
			n := head >> 2
			if n < 2 || n > postListMax {
				return bad()
			}
			var row uint64
			for range n {
				row += d.uvarint()
				if d.err != nil || !add(row) {
					return bad()
				}
			}
			if len(d.b) != 0 {
				return bad()
			}
			return dst, nil
		case head == postRoaring:
			bm = roaring.New()
			if _, err := bm.FromBuffer(d.b); err != nil {
				return bad()
			}
			if err := bm.Validate(); err != nil {
				return bad()
			}
		default:
			return bad()
		}
	}
	var buf [256]uint32
	it := bm.ManyIterator()
	for {
		got := it.NextMany(buf[:])
		if got == 0 {
			break
		}
		for _, r := range buf[:got] {
			if !add(uint64(r)) {
				return bad()
			}
		}
	}
	return dst, nil
}

// keyCursor walks the stored keys of an input in order.
type keyCursor interface {
	current() []byte // the current key; nil when done
	advance() error
	// appendRows appends the output rows of the current key's posting.
	appendRows(dst []uint32) ([]uint32, error)
}

func (c *dictCursor) current() []byte { return c.key }

// storedCursor walks the keys a version 6 segment stores for the rows of
// an input of version 4 or 5 (which stores the logical keys).
type storedCursor struct {
	in   *mergeIn
	keys []segKey // rows, when set, in the input's numbering
	at   int
	kb   []byte
}

func newStoredCursor(in *mergeIn) (*storedCursor, error) {
	s := in.s
	var logical []string
	if err := s.scanDict("", func(_ int, key []byte) bool {
		logical = append(logical, string(key))
		return true
	}); err != nil {
		return nil, err
	}
	var perr error
	keys := segmentKeys(logical, func(i int) []uint32 {
		bm, err := s.postingAt(i)
		if err != nil {
			perr = err
			return []uint32{}
		}
		return bm.ToArray()
	})
	if perr != nil {
		return nil, perr
	}
	c := &storedCursor{in: in, keys: keys}
	c.set()
	return c, nil
}

func (c *storedCursor) set() {
	c.kb = nil
	if c.at < len(c.keys) {
		c.kb = []byte(c.keys[c.at].key)
	}
}

func (c *storedCursor) current() []byte { return c.kb }

func (c *storedCursor) advance() error {
	c.at++
	c.set()
	return nil
}

func (c *storedCursor) appendRows(dst []uint32) ([]uint32, error) {
	sk := c.keys[c.at]
	rows := sk.rows
	if rows == nil {
		bm, err := c.in.s.postingAt(sk.src)
		if err != nil {
			return dst, err
		}
		rows = bm.ToArray()
	}
	newRow := c.in.newRow
	for _, r := range rows {
		if int(r) >= len(newRow) {
			return dst, corruptf("segment %s: posting row %d of %d", filepath.Base(c.in.s.path), r, len(newRow))
		}
		if nr := newRow[r]; nr != 0 {
			dst = append(dst, nr-1)
		}
	}
	return dst, nil
}

// ordItem sorts the rows of an output into the segment order.
type ordItem struct {
	occ int64
	seq uint64
	j   uint32 // index into the output's rows (Seq order)
}

// writeMergedSegment writes the rows (ascending Seq, every one live) of
// the inputs ins as a segment of generation gen in dir and returns its
// path. pause is called between chunks of work (CPU throttling, stop).
func writeMergedSegment(dir string, gen uint64, ins []*mergeIn, rows []mref, enc *zstd.Encoder, pause func() error) (string, error) {
	n := len(rows)
	if n == 0 || uint64(n) >= math.MaxUint32 {
		return "", fmt.Errorf("write merged segment: %d rows", n)
	}
	items := make([]ordItem, n)
	for j, r := range rows {
		s := ins[r.in].s
		items[j] = ordItem{s.occurred(int(r.row)), s.seq(int(r.row)), uint32(j)}
	}
	slices.SortFunc(items, func(a, b ordItem) int {
		if c := cmp.Compare(b.occ, a.occ); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	used := make([]bool, len(ins))
	fromIn := make([]int, len(ins))
	for nr, it := range items {
		r := rows[it.j]
		ins[r.in].newRow[r.row] = uint32(nr + 1)
		used[r.in] = true
		fromIn[r.in]++
	}
	// est is what section sec of the inputs holds for the rows taken from
	// them, plus an eighth: the output's sections are sized from it, so
	// that they do not grow by doubling, which left as much garbage as
	// they hold and set the merge's peak heap.
	est := func(sec int) int {
		n := 0
		for i, in := range ins {
			n += int(float64(len(in.s.sec[sec])) * float64(fromIn[i]) / float64(in.s.n))
		}
		return n + n/8 + 4096
	}
	estKeys := 0
	for i, in := range ins {
		estKeys += int(float64(in.s.meta.Keys) * float64(fromIn[i]) / float64(in.s.n))
	}
	defer func() {
		for _, r := range rows {
			ins[r.in].newRow[r.row] = 0
		}
	}()

	// Companies in first-seen Seq order, as a memtable interns them.
	var companies []string
	compIdx := map[string]uint32{}
	comps := make([]uint32, n) // by j
	for _, in := range ins {
		in.comp = in.comp[:0]
		for range in.s.meta.Companies {
			in.comp = append(in.comp, -1)
		}
	}
	for j, r := range rows {
		in := ins[r.in]
		ci, company, _, err := in.keyOf(int(r.row))
		if err != nil {
			return "", err
		}
		if ci >= 0 && in.comp[ci] >= 0 {
			comps[j] = uint32(in.comp[ci])
			continue
		}
		c, ok := compIdx[company]
		if !ok {
			c = uint32(len(companies))
			companies = append(companies, company)
			compIdx[company] = c
		}
		if ci >= 0 {
			in.comp[ci] = int32(c)
		}
		comps[j] = c
	}

	zdict, err := mergeZDict(ins, rows)
	if err != nil {
		return "", err
	}
	rpb := blockRowsFor(segVersion, mergeBlockRows, zdict != nil)
	meta := segMeta{Version: segVersion, Rows: n, RowsPerBlock: rpb, Gen: gen,
		MinSeq: ins[rows[0].in].s.seq(int(rows[0].row)), MaxSeq: ins[rows[n-1].in].s.seq(int(rows[n-1].row)),
		MinOccurred: items[n-1].occ, MaxOccurred: items[0].occ, Companies: companies}
	if zdict != nil {
		if enc, err = newDictEncoder(zdict, segVersion); err != nil {
			return "", fmt.Errorf("write segment: %w", err)
		}
		defer enc.Close()
	}

	// Columns.
	vals := make([]uint64, 0, n+1)
	var cols [numSections][]byte
	for _, it := range items {
		vals = append(vals, uint64(it.occ)^1<<63)
	}
	cols[secOccurred] = appendPacked(nil, vals)
	vals = vals[:0]
	for _, it := range items {
		vals = append(vals, it.seq)
	}
	cols[secSeq] = appendPacked(nil, vals)
	vals = vals[:0]
	for _, r := range rows {
		vals = append(vals, uint64(ins[r.in].newRow[r.row]-1))
	}
	cols[secBySeq] = appendPacked(nil, vals)
	keyBytes := make([]byte, 0, est(secKeyBytes))
	vals = append(vals[:0], 0)
	for _, it := range items {
		r := rows[it.j]
		_, _, id, err := ins[r.in].keyOf(int(r.row))
		if err != nil {
			return "", err
		}
		keyBytes = binary.AppendUvarint(keyBytes, uint64(comps[it.j]))
		keyBytes = append(keyBytes, id...)
		vals = append(vals, uint64(len(keyBytes)))
	}
	cols[secKeyOffs] = appendPacked(nil, vals)
	cols[secKeyBytes] = keyBytes
	vals = nil

	// Postings: the inputs' sorted keys merged, each key's rows
	// renumbered; a key none of whose rows is in this output is dropped.
	// Inputs of versions 4 and 5 hold the logical keys: each is read
	// through the keys version 6 stores for its rows (segment_keys.go;
	// every part is row by row, so the merged stored keys are the
	// output's).
	var curs []keyCursor
	for i, in := range ins {
		if !used[i] {
			continue
		}
		var c keyCursor
		var err error
		if in.s.ver >= segVersion6 {
			c, err = newDictCursor(in)
		} else {
			c, err = newStoredCursor(in)
		}
		if err != nil {
			return "", err
		}
		if c.current() != nil {
			curs = append(curs, c)
		}
	}
	var (
		keys     = make([]string, 0, estKeys+1)
		keyArena []byte
		posts    = make([]byte, 0, est(secPosts))
		postEnds = append(make([]uint64, 0, estKeys+2), 0)
		prows    []uint32
		scratch  = roaring.New()
		at       []keyCursor
	)
	for steps := 0; len(curs) > 0; steps++ {
		if steps%8192 == 0 {
			if err := pause(); err != nil {
				return "", err
			}
		}
		at = at[:0]
		var low []byte
		for _, c := range curs {
			switch k := bytes.Compare(c.current(), low); {
			case len(at) == 0 || k < 0:
				at, low = append(at[:0], c), c.current()
			case k == 0:
				at = append(at, c)
			}
		}
		prows = prows[:0]
		for _, c := range at {
			var err error
			if prows, err = c.appendRows(prows); err != nil {
				return "", err
			}
		}
		if len(at) > 1 {
			slices.Sort(prows)
		}
		if len(prows) > 0 {
			if len(keyArena)+len(low) > cap(keyArena) {
				keyArena = make([]byte, 0, max(keyArenaLen, len(low)))
			}
			off := len(keyArena)
			keyArena = append(keyArena, low...)
			keys = append(keys, unsafe.String(unsafe.SliceData(keyArena[off:]), len(low)))
			posts = appendPosting(posts, prows, scratch)
			postEnds = append(postEnds, uint64(len(posts)))
		}
		for _, c := range at {
			if err := c.advance(); err != nil {
				return "", err
			}
		}
		curs = slices.DeleteFunc(curs, func(c keyCursor) bool { return c.current() == nil })
	}
	meta.Keys = len(keys)
	dict, dictOffs := buildDict(keys)
	if uint64(len(dict)) > math.MaxUint32 {
		return "", fmt.Errorf("write segment: dictionary exceeds 4 GiB")
	}
	keys, keyArena = nil, nil
	var col []byte
	for _, o := range dictOffs {
		col = binary.LittleEndian.AppendUint32(col, o)
	}
	cols[secDictOffs] = col
	cols[secDictKeys] = dict
	cols[secPostOffs] = appendPacked(nil, postEnds)
	col = nil
	nk := len(postEnds) - 1
	for j := 0; j < nk; j += postingsPerCRC {
		lo, hi := postEnds[j], postEnds[min(nk, j+postingsPerCRC)]
		col = binary.LittleEndian.AppendUint32(col, crc32.Checksum(posts[lo:hi], castagnoli))
	}
	cols[secPostCRCs] = col
	cols[secPosts] = posts
	if meta.Version >= segVersion7 {
		zdict = packZDict(zdict)
	}
	cols[secZDict] = zdict
	cols[secZDictCopy] = zdict
	mj, _ := json.Marshal(meta)
	cols[secMeta] = mj
	// Blocks go to the file as they are compressed, so that the
	// output's compressed events (~150 B per row) are never all held;
	// their offsets and checksums, which precede them in the file, are
	// written into the room kept for them once they are known.
	nb := (n + rpb - 1) / rpb
	writeBlocks := func(write func([]byte) error) (offs, crcs []byte, err error) {
		offs = binary.LittleEndian.AppendUint64(make([]byte, 0, 8*(nb+1)), 0)
		crcs = make([]byte, 0, 4*nb)
		var raw, comp []byte
		var end uint64
		for b := range nb {
			if b%(1024/rpb) == 0 {
				if err := pause(); err != nil {
					return nil, nil, err
				}
			}
			raw = raw[:0]
			for nr := b * rpb; nr < min(n, (b+1)*rpb); nr++ {
				r := rows[items[nr].j]
				e, err := ins[r.in].event(int(r.row))
				if err != nil {
					return nil, nil, err
				}
				raw = binary.AppendUvarint(raw, uint64(len(e)))
				raw = append(raw, e...)
			}
			comp = enc.EncodeAll(raw, comp[:0])
			if err := write(comp); err != nil {
				return nil, nil, err
			}
			end += uint64(len(comp))
			offs = binary.LittleEndian.AppendUint64(offs, end)
			crcs = binary.LittleEndian.AppendUint32(crcs, crc32.Checksum(comp, castagnoli))
		}
		return offs, crcs, nil
	}
	return writeSectionsFile(dir, gen, &cols, nb, writeBlocks)
}

// mergeZDict picks the zstd dictionary of a merge output as buildZDict
// does for a memtable: encoded events sampled evenly over the rows in Seq
// order, zdictSize bytes. Summing the bytes
// of every event would cost a second decompression of all of them, so
// beyond zdictExactRows rows the total is estimated from a sample.
func mergeZDict(ins []*mergeIn, rows []mref) ([]byte, error) {
	n := len(rows)
	size := func(j int) (int, error) {
		r := rows[j]
		e, err := ins[r.in].event(int(r.row))
		return len(e), err
	}
	total := 0
	if n <= zdictExactRows {
		for j := range n {
			l, err := size(j)
			if err != nil {
				return nil, err
			}
			total += l
		}
	} else {
		const samples = 1024
		sum := 0
		for k := range samples {
			l, err := size(k * n / samples)
			if err != nil {
				return nil, err
			}
			sum += l
		}
		total = sum * n / samples
	}
	sz := zdictSize(n, total)
	if sz < 4<<10 {
		return nil, nil
	}
	avg := max(1, total/n)
	step := max(1, n/(sz/avg+1))
	dict := make([]byte, 0, sz+avg)
	for start := 0; len(dict) < sz && start < step; start++ {
		for j := start; j < n && len(dict) < sz; j += step {
			r := rows[j]
			e, err := ins[r.in].event(int(r.row))
			if err != nil {
				return nil, err
			}
			dict = append(dict, e...)
		}
	}
	return dict[:min(len(dict), sz)], nil
}

// zdictExactRows: outputs up to this many rows count their events' bytes
// exactly (and so pick exactly writeSegment's dictionary).
const zdictExactRows = 4096

// writeSectionsFile writes the sections as a segment file of generation
// gen, as writeSegment does: tmp file, fsync, rename, directory fsync.
// The nb blocks come from writeBlocks, which writes them and returns the
// block offsets and checksums sections.
func writeSectionsFile(dir string, gen uint64, cols *[numSections][]byte, nb int,
	writeBlocks func(write func([]byte) error) (offs, crcs []byte, err error)) (string, error) {
	f, err := createSegmentFile(dir, gen)
	if err != nil {
		return "", err
	}
	defer f.discard()
	sw := &sectionWriter{w: bufio.NewWriterSize(f, 1<<20)}
	var werr error
	var patch [numSections][]byte
	for sec := range numSections {
		sw.begin(sec)
		var err error
		switch sec {
		case secBlockOffs, secBlockCRCs:
			size := 8 * (nb + 1)
			if sec == secBlockCRCs {
				size = 4 * nb
			}
			err = sw.write(make([]byte, size)) // filled in below
		case secBlocks:
			patch[secBlockOffs], patch[secBlockCRCs], err = writeBlocks(sw.write)
			if err != nil {
				return "", err
			}
		default:
			err = sw.write(cols[sec])
		}
		if err != nil && werr == nil {
			werr = err
		}
		sw.end()
	}
	for _, sec := range []int{secBlockOffs, secBlockCRCs} {
		if t := &sw.table[sec]; uint64(len(patch[sec])) == t.len {
			t.crc = crc32.Checksum(patch[sec], castagnoli)
		} else if werr == nil {
			werr = fmt.Errorf("section %d: %d bytes, %d kept", sec, len(patch[sec]), t.len)
		}
	}
	if _, err := sw.w.Write(sw.footer()); err != nil && werr == nil {
		werr = err
	}
	if err := sw.w.Flush(); err != nil && werr == nil {
		werr = err
	}
	for _, sec := range []int{secBlockOffs, secBlockCRCs} {
		if _, err := f.WriteAt(patch[sec], int64(sw.table[sec].off)); err != nil && werr == nil {
			werr = err
		}
	}
	if werr != nil {
		return "", fmt.Errorf("write segment: %w", werr)
	}
	return f.publish()
}
