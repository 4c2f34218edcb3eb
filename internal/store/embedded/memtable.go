package embedded

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

type dedupeKey struct{ company, id string }

// memtable is the in-memory tail: events in Seq order with an inverted
// index over their row numbers. Rows never move; a deleted row is only
// marked, so positions stay valid for readers. Everything is guarded by
// Engine.mu except that a frozen memtable's events and postings, which no
// longer change, are read by the flusher without it.
type memtable struct {
	// enc holds each event in its log encoding (appendEvent), sliced from
	// one buffer per commit group: a few pointers per group for the
	// garbage collector rather than a dozen strings per event, and the
	// bytes a segment block needs as they are.
	enc      [][]byte
	seqs     []uint64
	occurred []int64  // contiguous for time-range scans
	comps    []uint32 // index into compNames
	// compNames interns the companies of the rows (a handful).
	compNames []string
	compIdx   map[string]uint32
	// minOccurred and maxOccurred bound occurred, so that a time filter
	// that covers the whole memtable costs nothing.
	minOccurred, maxOccurred int64
	// ids finds a row by (CompanyID, ID), for deduplication and Get;
	// idHashes[row] is the row's idHash, for growing ids.
	ids      idTable
	idHashes []uint64
	// postings finds a key's posting by postingHash(key).
	postings postingTable
	// tokens lists the posting numbers of the token keys in first-seen
	// order, and tokenHead chains the same keys by their first
	// tokenBucketLen bytes, for prefix search (a map cannot be range-scanned
	// by prefix): a query token that long only scans its bucket. A bucket is
	// a chain through tokenNext, newest first, of indexes into tokens plus
	// one (0 ends it): numbers rather than a slice of pointers per bucket,
	// which cost the writer a cache miss and now and then a growslice for
	// every new token, and the garbage collector the pointers to scan.
	tokens    []uint32
	tokenNext []uint32 // parallel to tokens
	tokenHead []uint32 // 1<<tokenBucketBits, made for the first long token
	// slabs and keyArena hold the postings and their keys in big
	// allocations rather than one or two per key (see newPosting). Posting
	// n is slabs[n/slabLen][n%slabLen]; only the last slab has room left.
	slabs    [][]posting
	keyArena []byte
	rowSlab  []uint32
	deleted  *roaring.Bitmap
	live     int
	// gen is the newest log generation whose events this memtable holds.
	gen uint64
	// touched is the sum of what touch loaded (see there).
	touched uint32
	// unsettled lists the bitmap postings with rows in their tail (see
	// settle).
	unsettled []*posting
}

func newMemtable() *memtable {
	return &memtable{
		compIdx: make(map[string]uint32),
		deleted: roaring.New(),
	}
}

func (m *memtable) len() int { return len(m.enc) }

func (m *memtable) has(company, id string) bool {
	_, ok := m.get(company, id)
	return ok
}

// add appends ev, whose log encoding is enc (kept, not copied), with its
// posting keys (from indexKeys).
func (m *memtable) add(ev *event.Event, enc []byte, ek eventKeys) {
	row := uint32(len(m.enc))
	m.enc = append(m.enc, enc)
	h := idHash(ev.CompanyID, ev.ID)
	m.idHashes = append(m.idHashes, h)
	m.ids.insert(h, row, m.idHashes)
	m.seqs = append(m.seqs, ev.Seq)
	m.occurred = append(m.occurred, ev.Occurred)
	c, ok := m.compIdx[ev.CompanyID]
	if !ok {
		c = uint32(len(m.compNames))
		m.compNames = append(m.compNames, ev.CompanyID)
		m.compIdx[ev.CompanyID] = c
	}
	m.comps = append(m.comps, c)
	if row == 0 || ev.Occurred < m.minOccurred {
		m.minOccurred = ev.Occurred
	}
	if ev.Occurred > m.maxOccurred {
		m.maxOccurred = ev.Occurred
	}
	m.reservePostings(len(ek.hashes))
	m.touch(&ek)
	for i, h := range ek.hashes {
		k := ek.key(i)
		p, slot := m.find(h, k)
		if p == nil {
			p = m.newPosting(k, h, slot)
		}
		if p.bm != nil {
			// A frequent key: the row waits in the posting's tail for
			// settle, which adds a run of rows to the bitmap at once.
			if len(p.rows) == 0 {
				m.unsettled = append(m.unsettled, p)
			}
			p.rows = append(p.rows, row)
			continue
		}
		p.add(row, &m.rowSlab)
	}
	m.live++
}

// settle adds the rows waiting in the tails of bitmap postings to their
// bitmaps. The writer calls it before it lets readers in; readers that
// meet a tail anyway (a memtable replayed at Open) still see every row.
// Adding a run of rows to one bitmap keeps its containers in cache and
// finds each container once, where a bitmap Add per row and key was a
// fifth of the writer's time.
func (m *memtable) settle() {
	for _, p := range m.unsettled {
		p.bm.AddMany(p.rows)
		p.rows = p.rows[:0]
	}
	clear(m.unsettled)
	m.unsettled = m.unsettled[:0]
}

// touch loads, for every key of an event, its home slot in the posting
// table before find needs it: most of a memtable's keys are rare, so each
// of these loads is a cache miss, and issued here, independent of one
// another, the processor overlaps them. The sum only keeps the compiler
// from dropping the loads. Loading the postings and key bytes of the slots
// here too, a second pass that waited on each slot, cost the writer more
// than find then saved (BenchmarkMemtableFiling, alternated).
func (m *memtable) touch(ek *eventKeys) {
	slots := m.postings.slots
	mask := uint64(len(slots) - 1)
	var sum uint32
	for _, h := range ek.hashes {
		sum += slots[h&mask].idx
	}
	m.touched += sum
}

// newPosting files a posting for key k, whose hash is h, in the empty
// slot that postings.find returned for it.
func (m *memtable) newPosting(k []byte, h uint64, slot int) *posting {
	if len(m.slabs) == 0 || len(m.slabs[len(m.slabs)-1]) == slabLen {
		m.slabs = append(m.slabs, make([]posting, 0, slabLen))
	}
	last := &m.slabs[len(m.slabs)-1]
	*last = append(*last, posting{key: m.internKey(k)})
	p := &(*last)[len(*last)-1]
	m.postings.slots[slot] = postingSlot{tag: uint32(h >> 32), idx: uint32(m.postings.n + 1)}
	m.postings.n++
	if len(p.key) > 0 && p.key[0] == keyToken {
		next := uint32(0)
		if len(p.key) >= tokenBucketLen {
			if m.tokenHead == nil {
				m.tokenHead = make([]uint32, 1<<tokenBucketBits)
			}
			b := tokenBucket(p.key)
			next = m.tokenHead[b]
			m.tokenHead[b] = uint32(len(m.tokens) + 1)
		}
		m.tokens = append(m.tokens, uint32(m.postings.n))
		m.tokenNext = append(m.tokenNext, next)
	}
	return p
}

// internKey copies k into the key arena: most keys of a memtable are new
// (unique tokens, IP addresses), and a string each would be an object for
// the garbage collector to track. Arena bytes are never written again, so
// the strings stay immutable.
func (m *memtable) internKey(k []byte) string {
	if len(k) == 0 || len(k) > keyArenaLen/4 {
		return string(k)
	}
	if len(m.keyArena)+len(k) > cap(m.keyArena) {
		m.keyArena = make([]byte, 0, keyArenaLen)
	}
	at := len(m.keyArena)
	m.keyArena = append(m.keyArena, k...)
	return unsafe.String(&m.keyArena[at], len(k))
}

const (
	slabLen     = 4096    // postings per allocation
	keyArenaLen = 1 << 16 // bytes of keys per allocation
)

// posting is the rows of one key in a memtable. Most keys (user IDs, rare
// tokens) have a handful of rows, kept as a plain list; a bitmap, which
// costs several allocations, replaces the list for frequent ones.
type posting struct {
	key string
	// rows are ascending, as rows are added in order. Once bm is set, rows
	// is only the tail not yet in bm (see settle), every row above bm's.
	rows []uint32
	bm   *roaring.Bitmap
}

// lookup returns the posting of key k, or nil.
func (m *memtable) lookup(k string) *posting {
	p, _ := m.find(postingHash(k), unsafe.Slice(unsafe.StringData(k), len(k)))
	return p
}

// postingTable is an open-addressing hash table (linear probing, at most
// half full) of postings by key hash. A slot is 8 bytes and holds no
// pointer: the posting's number and 32 more bits of the hash, so that a
// probe rarely looks at a posting that is not the one sought. Most of a
// memtable's keys are rare and out of cache, so the table's size is what
// the writer's probes pay for, and the garbage collector does not scan it.
type postingTable struct {
	slots []postingSlot
	n     int // postings, numbered 1..n in slab order
}

type postingSlot struct {
	tag uint32 // the hash's high 32 bits; the low bits chose the slot
	idx uint32 // posting number; 0: empty
}

// postingAt returns posting number idx (from 1).
func (m *memtable) postingAt(idx uint32) *posting {
	n := idx - 1
	return &m.slabs[n/slabLen][n%slabLen]
}

// find returns the posting of key k (hash h), or nil and the slot where
// newPosting must put it.
// It never changes the table, so readers may call it concurrently.
func (m *memtable) find(h uint64, k []byte) (*posting, int) {
	slots := m.postings.slots
	if len(slots) == 0 {
		return nil, -1
	}
	mask := len(slots) - 1
	tag := uint32(h >> 32)
	i := int(h) & mask
	for {
		s := slots[i]
		if s.idx == 0 {
			return nil, i
		}
		if s.tag == tag {
			if p := m.postingAt(s.idx); p.key == string(k) {
				return p, i
			}
		}
		i = (i + 1) & mask
	}
}

// presize sizes the posting and id tables for postings keys and rows
// events, the size the previous memtable reached, so that they do not
// grow (rehashing every posting, a few times) while this one fills.
func (m *memtable) presize(postings, rows int) {
	if m.len() == 0 && len(m.postings.slots) == 0 {
		m.reservePostings(postings)
		m.ids.slots = make([]idSlot, tableSize(rows))
	}
}

// tableSize is the power of two (at least 1024) at which a half-full
// table holds n entries.
func tableSize(n int) int {
	size := 1024
	for size < 2*n {
		size *= 2
	}
	return size
}

// reservePostings makes room for extra more postings, so that the slots
// find returns stay valid for newPosting until then.
func (m *memtable) reservePostings(extra int) {
	t := &m.postings
	if 2*(t.n+extra) <= len(t.slots) {
		return
	}
	size := max(len(t.slots), tableSize(t.n+extra))
	// The postings are walked in slab order, which is contiguous memory,
	// and their hashes computed again, rather than the old table's slots
	// read: cheaper than a hash kept per posting for this alone.
	t.slots = make([]postingSlot, size)
	mask := size - 1
	idx := uint32(0)
	for _, slab := range m.slabs {
		for j := range slab {
			idx++
			h := postingHash(slab[j].key)
			i := int(h) & mask
			for t.slots[i].idx != 0 {
				i = (i + 1) & mask
			}
			t.slots[i] = postingSlot{tag: uint32(h >> 32), idx: idx}
		}
	}
}

// allPostings calls fn with every posting, walking the slabs (contiguous
// memory) rather than the map.
func (m *memtable) allPostings(fn func(*posting)) {
	for _, slab := range m.slabs {
		for i := range slab {
			fn(&slab[i])
		}
	}
}

const postingBitmapAt = 256

// tokenBucketLen is the key prefix (field byte and 3 bytes of token) that
// buckets memtable tokens.
const tokenBucketLen = 4

// tokenBucket is the bucket of a key at least tokenBucketLen long: a hash
// of its three bytes after the field byte. A bucket holds several such
// prefixes (prefix search filters them); a fixed table of buckets costs
// the writer an index, where a map of prefixes cost a hash lookup and many
// small slices for each new token.
func tokenBucket(k string) uint32 {
	v := uint32(k[1])<<16 | uint32(k[2])<<8 | uint32(k[3])
	return (v * 2654435761) >> (32 - tokenBucketBits)
}

const tokenBucketBits = 14

// tokenPostings calls fn with the posting of every token key that starts
// with the token prefix p, in no particular order.
func (m *memtable) tokenPostings(p string, fn func(*posting)) {
	if len(p) < tokenBucketLen {
		for _, idx := range m.tokens {
			if q := m.postingAt(idx); strings.HasPrefix(q.key, p) {
				fn(q)
			}
		}
		return
	}
	if m.tokenHead == nil {
		return
	}
	for t := m.tokenHead[tokenBucket(p)]; t != 0; t = m.tokenNext[t-1] {
		if q := m.postingAt(m.tokens[t-1]); strings.HasPrefix(q.key, p) {
			fn(q)
		}
	}
}

// add appends row; slab lends single-row postings their row.
func (p *posting) add(row uint32, slab *[]uint32) {
	if p.bm != nil {
		p.rows = append(p.rows, row) // until settle
		return
	}
	if p.rows == nil {
		// One row, the most common case: a slice of the shared row slab,
		// with no room to grow, so that a second row moves it out.
		if len(*slab) == cap(*slab) {
			*slab = make([]uint32, 0, slabLen)
		}
		*slab = append(*slab, row)
		p.rows = (*slab)[len(*slab)-1 : len(*slab) : len(*slab)]
		return
	}
	p.rows = append(p.rows, row)
	if len(p.rows) >= postingBitmapAt {
		p.bm = roaring.BitmapOf(p.rows...)
		p.rows = p.rows[:0] // the tail from now on
	}
}

// appendRows appends the rows of p to dst.
func (p *posting) appendRows(dst []uint32) []uint32 {
	if p.bm == nil {
		return append(dst, p.rows...)
	}
	it := p.bm.ManyIterator()
	for {
		n := len(dst)
		dst = slices.Grow(dst, 256)[:n+256]
		got := it.NextMany(dst[n:])
		dst = dst[:n+got]
		if got == 0 {
			return append(dst, p.rows...)
		}
	}
}

// bitmap returns the rows as a bitmap the caller must not modify.
func (p *posting) bitmap() *roaring.Bitmap {
	if p.bm != nil {
		if len(p.rows) == 0 {
			return p.bm
		}
		bm := p.bm.Clone() // not settled: rare, see settle
		bm.AddMany(p.rows)
		return bm
	}
	return roaring.BitmapOf(p.rows...)
}

// event decodes row.
func (m *memtable) event(row uint32) (event.Event, error) {
	ev, err := decodeEvent(m.enc[row])
	if err != nil {
		return event.Event{}, fmt.Errorf("%w: memtable row %d: %w", store.ErrCorrupt, row, err)
	}
	return ev, nil
}

// get returns the live row of (company, id).
func (m *memtable) get(company, id string) (uint32, bool) {
	return m.ids.find(idHash(company, id), func(row uint32) bool {
		if m.deleted.Contains(row) {
			return false
		}
		i, c := encodedKeyBytes(m.enc[row])
		return string(i) == id && string(c) == company
	})
}

// idHash hashes (company, id) for the memtable's idTable.
func idHash(company, id string) uint64 {
	return maphash.String(keySetSeed, id) ^ bits.RotateLeft64(maphash.String(keySetSeed, company), 29)
}

// idTable finds rows by idHash: open addressing, linear probing, at most
// half full, slots of 8 bytes without pointers (a map of the two strings
// cost the writer a tenth of its time and kept every event's ID alive for
// the garbage collector to scan). Rows are checked against their encoded
// key, so collisions only cost a probe. A deleted row keeps its slot and is
// skipped, so that the same ID may be stored again.
type idTable struct {
	slots []idSlot
	n     int
}

type idSlot struct {
	tag uint32 // the hash's high 32 bits
	row uint32 // row + 1; 0: empty
}

// insert files row under h; hashes[r] is the hash of every row r, for
// growing.
func (t *idTable) insert(h uint64, row uint32, hashes []uint64) {
	if 2*(t.n+1) > len(t.slots) {
		t.slots = make([]idSlot, tableSize(2*t.n))
		t.n = 0
		for r, h := range hashes[:row] {
			t.put(h, uint32(r))
		}
	}
	t.put(h, row)
}

func (t *idTable) put(h uint64, row uint32) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].row != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = idSlot{uint32(h >> 32), row + 1}
	t.n++
}

// find returns the first row filed under h for which is returns true.
func (t *idTable) find(h uint64, is func(row uint32) bool) (uint32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	tag := uint32(h >> 32)
	for i := h & mask; t.slots[i].row != 0; i = (i + 1) & mask {
		if s := t.slots[i]; s.tag == tag && is(s.row-1) {
			return s.row - 1, true
		}
	}
	return 0, false
}

// deleteWhere marks the rows the rule covers and forgets their keys, so
// that the same id may be stored again later.
func (m *memtable) deleteWhere(r *deleteRule) int64 {
	var n int64
	for i := range m.enc {
		if m.compNames[m.comps[i]] != r.CompanyID || m.occurred[i] >= r.Before || m.seqs[i] > r.MaxSeq ||
			m.deleted.Contains(uint32(i)) {
			continue
		}
		m.deleted.Add(uint32(i)) // get skips it from now on
		m.live--
		n++
	}
	return n
}

// firstAfter is the index of the first row with Seq > seq.
func (m *memtable) firstAfter(seq uint64) int {
	return sort.Search(len(m.seqs), func(i int) bool { return m.seqs[i] > seq })
}
