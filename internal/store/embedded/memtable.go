package embedded

import (
	"fmt"
	"slices"
	"sort"
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
	byKey                    map[dedupeKey]uint32
	// postings finds a key's posting by postingHash(key).
	postings postingTable
	// tokenKeys lists the token posting keys in first-seen order, and
	// tokenBuckets the same keys by their first tokenBucketLen bytes, for
	// prefix search (a map cannot be range-scanned by prefix): a query
	// token that long only scans its bucket.
	tokenKeys    []*posting
	tokenBuckets [][]*posting // 1<<tokenBucketBits, made for the first long token
	// postingSlab and keyArena hold the postings and their keys in big
	// allocations rather than one or two per key (see newPosting).
	postingSlab []posting
	fullSlabs   [][]posting // earlier postingSlabs, full
	keyArena    []byte
	rowSlab     []uint32
	deleted     *roaring.Bitmap
	live        int
	// gen is the newest log generation whose events this memtable holds.
	gen uint64
}

func newMemtable() *memtable {
	return &memtable{
		byKey:   make(map[dedupeKey]uint32),
		compIdx: make(map[string]uint32),
		deleted: roaring.New(),
	}
}

func (m *memtable) len() int { return len(m.enc) }

func (m *memtable) has(company, id string) bool {
	_, ok := m.byKey[dedupeKey{company, id}]
	return ok
}

// add appends ev, whose log encoding is enc (kept, not copied), with its
// posting keys (from indexKeys).
func (m *memtable) add(ev *event.Event, enc []byte, ek eventKeys) {
	row := uint32(len(m.enc))
	m.byKey[dedupeKey{ev.CompanyID, ev.ID}] = row
	m.enc = append(m.enc, enc)
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
	m.postings.reserve(len(ek.hashes))
	for i, h := range ek.hashes {
		k := ek.key(i)
		p, slot := m.postings.find(h, k)
		if p == nil {
			p = m.newPosting(k, h, slot)
		}
		p.add(row, &m.rowSlab)
	}
	m.live++
}

// newPosting files a posting for key k, whose hash is h, in the empty
// slot that postings.find returned for it.
func (m *memtable) newPosting(k []byte, h uint64, slot int) *posting {
	if len(m.postingSlab) == cap(m.postingSlab) {
		if m.postingSlab != nil {
			m.fullSlabs = append(m.fullSlabs, m.postingSlab)
		}
		m.postingSlab = make([]posting, 0, slabLen)
	}
	m.postingSlab = append(m.postingSlab, posting{key: m.internKey(k)})
	p := &m.postingSlab[len(m.postingSlab)-1]
	m.postings.insert(slot, h, p)
	if len(p.key) > 0 && p.key[0] == keyToken {
		m.tokenKeys = append(m.tokenKeys, p)
		if len(p.key) >= tokenBucketLen {
			if m.tokenBuckets == nil {
				m.tokenBuckets = make([][]*posting, 1<<tokenBucketBits)
			}
			b := tokenBucket(p.key)
			m.tokenBuckets[b] = append(m.tokenBuckets[b], p)
		}
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
	key  string
	rows []uint32 // ascending, as rows are added in order; nil once bm is set
	bm   *roaring.Bitmap
}

// lookup returns the posting of key k, or nil.
func (m *memtable) lookup(k string) *posting {
	p, _ := m.postings.find(postingHash(k), unsafe.Slice(unsafe.StringData(k), len(k)))
	return p
}

// postingTable is an open-addressing hash table (linear probing, at most
// half full) of postings by key hash. It does what a map[uint64]*posting
// with collision chains did, with one cache miss per probe instead of two
// (a Go map keeps control bytes and slots on different cache lines), which
// matters because most of a memtable's keys are rare and out of cache.
type postingTable struct {
	slots []postingSlot
	n     int
}

type postingSlot struct {
	h uint64
	p *posting // nil: empty
}

// find returns the posting of key k (hash h), or nil and the slot where
// insert must put it.
// It never changes the table, so readers may call it concurrently.
func (t *postingTable) find(h uint64, k []byte) (*posting, int) {
	if len(t.slots) == 0 {
		return nil, -1
	}
	mask := len(t.slots) - 1
	i := int(h) & mask
	for {
		s := &t.slots[i]
		if s.p == nil {
			return nil, i
		}
		if s.h == h && s.p.key == string(k) {
			return s.p, i
		}
		i = (i + 1) & mask
	}
}

// reserve makes room for extra more postings, so that the slots find
// returns stay valid for insert until then.
func (t *postingTable) reserve(extra int) {
	for 2*(t.n+extra) > len(t.slots) {
		t.grow()
	}
}

// insert puts p (hash h) into slot, as returned by find after reserve and
// with no other change to the table in between.
func (t *postingTable) insert(slot int, h uint64, p *posting) {
	t.slots[slot] = postingSlot{h, p}
	t.n++
}

func (t *postingTable) grow() {
	old := t.slots
	t.slots = make([]postingSlot, max(1024, 2*len(old)))
	mask := len(t.slots) - 1
	for _, s := range old {
		if s.p == nil {
			continue
		}
		i := int(s.h) & mask
		for t.slots[i].p != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// allPostings calls fn with every posting, walking the slabs (contiguous
// memory) rather than the map.
func (m *memtable) allPostings(fn func(*posting)) {
	for _, slab := range append(m.fullSlabs, m.postingSlab) {
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

// tokenBucketOf returns the bucket of the token prefix p (at least
// tokenBucketLen long).
func (m *memtable) tokenBucketOf(p string) []*posting {
	if m.tokenBuckets == nil {
		return nil
	}
	return m.tokenBuckets[tokenBucket(p)]
}

// add appends row; slab lends single-row postings their row.
func (p *posting) add(row uint32, slab *[]uint32) {
	if p.bm != nil {
		p.bm.Add(row)
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
		p.rows = nil
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
			return dst
		}
	}
}

// bitmap returns the rows as a bitmap the caller must not modify.
func (p *posting) bitmap() *roaring.Bitmap {
	if p.bm != nil {
		return p.bm
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

func (m *memtable) get(company, id string) (uint32, bool) {
	i, ok := m.byKey[dedupeKey{company, id}]
	return i, ok
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
		m.deleted.Add(uint32(i))
		id, company := encodedKey(m.enc[i])
		delete(m.byKey, dedupeKey{company, id})
		m.live--
		n++
	}
	return n
}

// firstAfter is the index of the first row with Seq > seq.
func (m *memtable) firstAfter(seq uint64) int {
	return sort.Search(len(m.seqs), func(i int) bool { return m.seqs[i] > seq })
}
