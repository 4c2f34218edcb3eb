package embedded

import (
	"sort"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/event"
)

type dedupeKey struct{ company, id string }

// memtable is the in-memory tail: events in Seq order with an inverted
// index over their row numbers. Rows never move; a deleted row is only
// marked, so positions stay valid for readers. Everything is guarded by
// Engine.mu except that a frozen memtable's events and postings, which no
// longer change, are read by the flusher without it.
type memtable struct {
	rows     []event.Event
	occurred []int64 // rows[i].Occurred, contiguous for time-range scans
	// minOccurred and maxOccurred bound occurred, so that a time filter
	// that covers the whole memtable costs nothing.
	minOccurred, maxOccurred int64
	byKey                    map[dedupeKey]uint32
	postings                 map[string]*posting
	// tokenKeys lists the token posting keys in first-seen order, and
	// tokenBuckets the same keys by their first tokenBucketLen bytes, for
	// prefix search (a map cannot be range-scanned by prefix): a query
	// token that long only scans its bucket.
	tokenKeys    []string
	tokenBuckets map[string][]string
	deleted      *roaring.Bitmap
	live         int
	// gen is the newest log generation whose events this memtable holds.
	gen uint64
}

func newMemtable() *memtable {
	return &memtable{
		byKey:        make(map[dedupeKey]uint32),
		postings:     make(map[string]*posting),
		tokenBuckets: make(map[string][]string),
		deleted:      roaring.New(),
	}
}

func (m *memtable) len() int { return len(m.rows) }

func (m *memtable) has(company, id string) bool {
	_, ok := m.byKey[dedupeKey{company, id}]
	return ok
}

// add appends ev with its posting keys (from indexKeys).
func (m *memtable) add(ev event.Event, keys []string) {
	row := uint32(len(m.rows))
	m.byKey[dedupeKey{ev.CompanyID, ev.ID}] = row
	m.rows = append(m.rows, ev)
	m.occurred = append(m.occurred, ev.Occurred)
	if row == 0 || ev.Occurred < m.minOccurred {
		m.minOccurred = ev.Occurred
	}
	if ev.Occurred > m.maxOccurred {
		m.maxOccurred = ev.Occurred
	}
	for _, k := range keys {
		p := m.postings[k]
		if p == nil {
			p = &posting{}
			m.postings[k] = p
			if k[0] == keyToken {
				m.tokenKeys = append(m.tokenKeys, k)
				if len(k) >= tokenBucketLen {
					b := k[:tokenBucketLen]
					m.tokenBuckets[b] = append(m.tokenBuckets[b], k)
				}
			}
		}
		p.add(row)
	}
	m.live++
}

// posting is the rows of one key in a memtable. Most keys (user IDs, rare
// tokens) have a handful of rows, kept as a plain list; a bitmap, which
// costs several allocations, is kept only for frequent ones.
type posting struct {
	rows []uint32 // ascending, as rows are added in order
	bm   *roaring.Bitmap
}

const postingBitmapAt = 256

// tokenBucketLen is the key prefix (field byte and 3 bytes of token) that
// buckets memtable tokens.
const tokenBucketLen = 4

func (p *posting) add(row uint32) {
	p.rows = append(p.rows, row)
	if p.bm != nil {
		p.bm.Add(row)
	} else if len(p.rows) >= postingBitmapAt {
		p.bm = roaring.BitmapOf(p.rows...)
	}
}

// bitmap returns the rows as a bitmap the caller must not modify.
func (p *posting) bitmap() *roaring.Bitmap {
	if p.bm != nil {
		return p.bm
	}
	return roaring.BitmapOf(p.rows...)
}

func (m *memtable) get(company, id string) (*event.Event, bool) {
	i, ok := m.byKey[dedupeKey{company, id}]
	if !ok {
		return nil, false
	}
	return &m.rows[i], true
}

// deleteWhere marks the rows the rule covers and forgets their keys, so
// that the same id may be stored again later.
func (m *memtable) deleteWhere(r *deleteRule) int64 {
	var n int64
	for i := range m.rows {
		ev := &m.rows[i]
		if !r.covers(ev) || m.deleted.Contains(uint32(i)) {
			continue
		}
		m.deleted.Add(uint32(i))
		delete(m.byKey, dedupeKey{ev.CompanyID, ev.ID})
		m.live--
		n++
	}
	return n
}

// firstAfter is the index of the first row with Seq > seq.
func (m *memtable) firstAfter(seq uint64) int {
	return sort.Search(len(m.rows), func(i int) bool { return m.rows[i].Seq > seq })
}
