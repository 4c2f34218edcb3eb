package embedded

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/audittrail/audittrail/internal/query"
)

// rowSource is what a query runs on: a memtable or a segment. Bitmaps it
// returns are read-only; every filter step builds a new one.
type rowSource interface {
	// postingOf returns the rows indexed under key k (nil: none).
	postingOf(k string) (*roaring.Bitmap, error)
	// postingCard is postingOf with the posting's cardinality, which a
	// segment keeps with the postings it holds in memory (computing it
	// walks every container).
	postingCard(k *lookupKey) (*roaring.Bitmap, uint64, error)
	prefixPostings(p string, fn func(*roaring.Bitmap)) error
	// filterTime returns the rows of bm with Occurred in [from, to]
	// (0 = open); bm itself is not modified.
	filterTime(bm *roaring.Bitmap, from, to int64) *roaring.Bitmap
	// filterTimeRows keeps the rows with Occurred in [from, to], in place.
	filterTimeRows(rows []uint32, from, to int64) []uint32
	deletedRows() *roaring.Bitmap
	rowKey(row uint32) (occurred int64, seq uint64)
	// numRows is the number of rows, deleted ones included.
	numRows() int
}

// lookupKey is a posting key a query looks up in every source, built once
// per query rather than once per day partition.
type lookupKey struct {
	k string // the logical key (terms.go)
	// stored is the key a version 6 segment stores a user or actor key
	// under (storedIDKey), made at its first use.
	stored string
}

func newLookupKeys(field byte, vals []string) []lookupKey {
	out := make([]lookupKey, len(vals))
	for i, v := range vals {
		out[i].k = pkey(field, v)
	}
	return out
}

// storedID returns storedIDKey(field, X) of the user or actor key 'field'+X.
func (lk *lookupKey) storedID() string {
	if lk.stored == "" {
		lk.stored = storedIDKey(lk.k[0], lk.k[1:])
	}
	return lk.stored
}

// matcher is a query prepared for match: its posting keys, and buffers
// reused from one source to the next. A matcher serves one goroutine.
type matcher struct {
	q               *query.Query
	company, level  []lookupKey
	project         []lookupKey
	fields          [][]lookupKey
	tenants         []lookupKey
	noTenant        []lookupKey
	excluded        []lookupKey
	tokens          []string
	terms           []term
	parts, excParts []*roaring.Bitmap
	rows            []uint32
}

func newMatcher(q *query.Query) *matcher {
	m := &matcher{q: q, company: newLookupKeys(keyCompany, []string{q.CompanyID})}
	if q.IncludeCompany {
		m.level = newLookupKeys(keyLevelComp, []string{""})
	}
	if q.IncludeProject {
		m.project = newLookupKeys(keyProject, []string{q.ProjectID})
	}
	for _, f := range []struct {
		field byte
		vals  []string
	}{
		{keyUser, q.UserIDs}, {keyAction, q.Actions}, {keyActor, q.ActorIDs}, {keyDevice, q.Devices},
		{keyMethod, q.Methods}, {keyGeo, q.Geos}, {keyAddr, q.RemoteAddresses}, {keyLoginID, q.LoginIDs},
		{keyChanged, q.ChangedFields}, {keyType, q.Types},
	} {
		if len(f.vals) > 0 {
			m.fields = append(m.fields, newLookupKeys(f.field, f.vals))
		}
	}
	m.tenants = newLookupKeys(keyTenant, q.Tenants)
	if q.NoTenants {
		m.noTenant = newLookupKeys(keyNoTenant, []string{""})
	}
	m.excluded = newLookupKeys(keyAction, q.ExcludedActions)
	for _, tok := range q.TextTokens {
		m.tokens = append(m.tokens, pkey(keyToken, tok))
	}
	return m
}

// match returns the rows of src that m.q.Match accepts, as bitmap
// AND/OR/ANDNOT over postings, so that the count is a cardinality.
//
// The query is a conjunction of terms, each an OR of postings (the company,
// the project or company level, each filter list, tenants, each text
// token). They are applied smallest first: a user's few rows are checked
// against the company and project postings one by one (a container lookup
// each) rather than ANDing postings that span the whole source, and an OR
// of big postings is never built when the candidates are few.
func (m *matcher) match(src rowSource) (*roaring.Bitmap, error) {
	q := m.q
	var err error
	n := uint64(src.numRows())
	terms := m.terms[:0]
	// Every term's parts are a stretch of one buffer, parts, from which
	// the next term starts: no slice per term and source.
	parts := m.parts[:0]
	defer func() { m.terms, m.parts = terms[:0], parts[:0] }()
	// add files the postings of keys as a term; false when none is in src,
	// so that nothing matches. The term's all is set when one of them
	// holds every row of src (the term is then true of every row: the
	// company in a store of one company).
	add := func(keys ...[]lookupKey) bool {
		t := term{}
		from := len(parts)
		for _, ks := range keys {
			for i := range ks {
				if err != nil {
					return false
				}
				var bm *roaring.Bitmap
				var card uint64
				if bm, card, err = src.postingCard(&ks[i]); bm != nil {
					parts = append(parts, bm)
					t.card += card
					t.all = t.all || card == n
				}
			}
		}
		if len(parts) == from {
			return false
		}
		t.parts = parts[from:len(parts):len(parts)]
		terms = append(terms, t)
		return true
	}
	if !add(m.company) {
		return roaring.New(), err
	}
	if !add(m.project, m.level) {
		return roaring.New(), err
	}
	for _, f := range m.fields {
		if !add(f) {
			return roaring.New(), err
		}
	}
	if (len(m.tenants) > 0 || q.NoTenants) && !add(m.tenants, m.noTenant) {
		return roaring.New(), err
	}
	for _, tok := range m.tokens {
		if err != nil {
			break
		}
		t := term{}
		from := len(parts)
		// A copy of parts for the callback, which escapes: parts itself
		// stays on the stack in queries without text.
		tp := parts
		if perr := src.prefixPostings(tok, func(bm *roaring.Bitmap) { tp = append(tp, bm) }); perr != nil {
			return nil, perr
		}
		parts = tp
		if len(parts) == from {
			return roaring.New(), err
		}
		t.parts = parts[from:len(parts):len(parts)]
		for _, p := range t.parts {
			t.card += p.GetCardinality()
		}
		terms = append(terms, t)
	}
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(terms, func(a, b term) int { return cmp.Compare(a.card, b.card) })
	excluded := func() ([]*roaring.Bitmap, error) {
		ex := m.excParts[:0]
		for i := range m.excluded {
			bm, _, err := src.postingCard(&m.excluded[i])
			if err != nil {
				return nil, err
			}
			if bm != nil {
				ex = append(ex, bm)
			}
		}
		m.excParts = ex[:0]
		return ex, nil
	}
	if terms[0].card <= rowFilterMax {
		return m.matchFew(src, terms, excluded)
	}
	cand := orAll(terms[0].parts)
	for _, t := range terms[1:] {
		if cand.IsEmpty() {
			return cand, nil
		}
		if !t.all {
			cand = t.and(cand)
		}
	}
	if len(m.excluded) > 0 && !cand.IsEmpty() {
		ex, err := excluded()
		if err != nil {
			return nil, err
		}
		if len(ex) > 0 {
			cand = andNotAny(cand, ex)
		}
	}
	if (q.From > 0 || q.To > 0) && !cand.IsEmpty() {
		cand = src.filterTime(cand, q.From, q.To)
	}
	if del := src.deletedRows(); !del.IsEmpty() && !cand.IsEmpty() {
		cand = roaring.AndNot(cand, del)
	}
	return cand, nil
}

// matchFew is match when the smallest term (terms[0]) holds at most
// rowFilterMax rows, the case of a point look-up (a user, an address) in
// each of a month's day partitions: its rows are checked against every
// other term, the excluded actions, the time range and the deleted rows
// in one slice, and made a bitmap once (none when every row passes: the
// term's own posting is the answer), where ANDing term by term built a
// bitmap per step.
func (m *matcher) matchFew(src rowSource, terms []term, excluded func() ([]*roaring.Bitmap, error)) (*roaring.Bitmap, error) {
	q := m.q
	first := orAll(terms[0].parts)
	rows := m.rows[:0]
	first.Iterate(func(row uint32) bool {
		rows = append(rows, row)
		return true
	})
	defer func() { m.rows = rows[:0] }()
	all := len(rows)
	for _, t := range terms[1:] {
		if len(rows) == 0 {
			break
		}
		if !t.all {
			rows = keepRows(rows, t.parts, true)
		}
	}
	if len(m.excluded) > 0 && len(rows) > 0 {
		ex, err := excluded()
		if err != nil {
			return nil, err
		}
		rows = keepRows(rows, ex, false)
	}
	if (q.From > 0 || q.To > 0) && len(rows) > 0 {
		rows = src.filterTimeRows(rows, q.From, q.To)
	}
	if del := src.deletedRows(); !del.IsEmpty() && len(rows) > 0 {
		rows = keepRows(rows, []*roaring.Bitmap{del}, false)
	}
	if len(rows) == all {
		return first, nil
	}
	return roaring.BitmapOf(rows...), nil
}

// keepRows keeps, in place, the rows that are in one of parts (in true)
// or in none of them (in false).
func keepRows(rows []uint32, parts []*roaring.Bitmap, in bool) []uint32 {
	out := rows[:0]
	for _, row := range rows {
		found := false
		for _, p := range parts {
			if p.Contains(row) {
				found = true
				break
			}
		}
		if found == in {
			out = append(out, row)
		}
	}
	return out
}

// rowFilterMax is the candidate count up to which a term is applied row by
// row (Contains on each posting) rather than as bitmap ANDs, which cost
// the size of the postings' containers.
const rowFilterMax = 512

// term is one conjunct of a query: the rows in any of parts. card, the sum
// of the parts' cardinalities, bounds its size; all is set when one part
// holds every row of the source.
type term struct {
	parts []*roaring.Bitmap
	card  uint64
	all   bool
}

// and returns cand ∩ t, without modifying either (both may be postings).
func (t *term) and(cand *roaring.Bitmap) *roaring.Bitmap {
	if n := cand.GetCardinality(); n <= rowFilterMax {
		rows := make([]uint32, 0, n)
		it := cand.Iterator()
		for it.HasNext() {
			row := it.Next()
			for _, p := range t.parts {
				if p.Contains(row) {
					rows = append(rows, row)
					break
				}
			}
		}
		return roaring.BitmapOf(rows...)
	}
	if len(t.parts) == 1 {
		return roaring.And(cand, t.parts[0])
	}
	// cand ∩ (a ∪ b) = (cand ∩ a) ∪ (cand ∩ b): each AND is bounded by
	// cand, where the OR of big postings would be built whole.
	ands := make([]*roaring.Bitmap, len(t.parts))
	for i, p := range t.parts {
		ands[i] = roaring.And(cand, p)
	}
	return roaring.FastOr(ands...)
}

// andNotAny returns cand minus every part, without modifying either.
func andNotAny(cand *roaring.Bitmap, parts []*roaring.Bitmap) *roaring.Bitmap {
	if n := cand.GetCardinality(); n <= rowFilterMax {
		rows := make([]uint32, 0, n)
		it := cand.Iterator()
	next:
		for it.HasNext() {
			row := it.Next()
			for _, p := range parts {
				if p.Contains(row) {
					continue next
				}
			}
			rows = append(rows, row)
		}
		return roaring.BitmapOf(rows...)
	}
	out := roaring.AndNot(cand, parts[0])
	for _, p := range parts[1:] {
		out.AndNot(p)
	}
	return out
}

// hit is one matching row of one source, with its sort key.
type hit struct {
	src      int
	row      uint32
	occurred int64
	seq      uint64
}

// before reports whether a comes before b in q's order (query.Less).
func before(a, b *hit, oldestFirst bool) bool {
	if a.occurred != b.occurred {
		return (a.occurred > b.occurred) != oldestFirst
	}
	return (a.seq > b.seq) != oldestFirst
}

// topRows returns up to k rows of bm in q's order. Rows of a memtable are
// in ingest order, roughly Occurred ascending, so they are visited from the
// end for newest-first: most then fail a single comparison with the worst
// kept row.
func topRows(src rowSource, srcIdx int, bm *roaring.Bitmap, k int, oldestFirst bool) []hit {
	if k <= 0 {
		return nil
	}
	h := &hitHeap{oldestFirst: oldestFirst}
	visit := func(row uint32) {
		occ, seq := src.rowKey(row)
		x := hit{src: srcIdx, row: row, occurred: occ, seq: seq}
		if len(h.hits) < k {
			heap.Push(h, x)
		} else if before(&x, &h.hits[0], oldestFirst) {
			h.hits[0] = x
			heap.Fix(h, 0)
		}
	}
	if oldestFirst {
		it := bm.Iterator()
		for it.HasNext() {
			visit(it.Next())
		}
	} else {
		it := bm.ReverseIterator()
		for it.HasNext() {
			visit(it.Next())
		}
	}
	out := h.hits
	slices.SortFunc(out, func(a, b hit) int {
		if before(&a, &b, oldestFirst) {
			return -1
		}
		return 1
	})
	return out
}

// hitHeap keeps the worst kept hit on top.
type hitHeap struct {
	hits        []hit
	oldestFirst bool
}

func (h *hitHeap) Len() int           { return len(h.hits) }
func (h *hitHeap) Less(i, j int) bool { return before(&h.hits[j], &h.hits[i], h.oldestFirst) }
func (h *hitHeap) Swap(i, j int)      { h.hits[i], h.hits[j] = h.hits[j], h.hits[i] }
func (h *hitHeap) Push(x any)         { h.hits = append(h.hits, x.(hit)) }
func (h *hitHeap) Pop() any {
	x := h.hits[len(h.hits)-1]
	h.hits = h.hits[:len(h.hits)-1]
	return x
}

// cursor walks one source's hits in q's order.
type cursor struct {
	cur  hit
	next func() (hit, bool)
}

// segmentCursor walks a segment's matching rows, which its sort order
// already yields in q's order (backwards for oldest-first).
func segmentCursor(src rowSource, srcIdx int, bm *roaring.Bitmap, oldestFirst bool) func() (hit, bool) {
	var it roaring.IntIterable
	if oldestFirst {
		it = bm.ReverseIterator()
	} else {
		it = bm.Iterator()
	}
	return func() (hit, bool) {
		if !it.HasNext() {
			return hit{}, false
		}
		row := it.Next()
		occ, seq := src.rowKey(row)
		return hit{src: srcIdx, row: row, occurred: occ, seq: seq}, true
	}
}

func sliceCursor(hits []hit) func() (hit, bool) {
	return func() (hit, bool) {
		if len(hits) == 0 {
			return hit{}, false
		}
		h := hits[0]
		hits = hits[1:]
		return h, true
	}
}

// mergePage merges the sources' ordered hits and returns those at
// positions [off, off+size) of the merged order.
func mergePage(cursors []func() (hit, bool), off, size int, oldestFirst bool) []hit {
	m := &mergeHeap{oldestFirst: oldestFirst}
	for _, next := range cursors {
		if h, ok := next(); ok {
			m.cs = append(m.cs, cursor{cur: h, next: next})
		}
	}
	heap.Init(m)
	var out []hit
	for pos := 0; m.Len() > 0 && pos < off+size; pos++ {
		c := &m.cs[0]
		if pos >= off {
			out = append(out, c.cur)
		}
		if h, ok := c.next(); ok {
			c.cur = h
			heap.Fix(m, 0)
		} else {
			heap.Pop(m)
		}
	}
	return out
}

type mergeHeap struct {
	cs          []cursor
	oldestFirst bool
}

func (m *mergeHeap) Len() int           { return len(m.cs) }
func (m *mergeHeap) Less(i, j int) bool { return before(&m.cs[i].cur, &m.cs[j].cur, m.oldestFirst) }
func (m *mergeHeap) Swap(i, j int)      { m.cs[i], m.cs[j] = m.cs[j], m.cs[i] }
func (m *mergeHeap) Push(x any)         { m.cs = append(m.cs, x.(cursor)) }
func (m *mergeHeap) Pop() any {
	x := m.cs[len(m.cs)-1]
	m.cs = m.cs[:len(m.cs)-1]
	return x
}

// memtable as a rowSource.

func (m *memtable) postingOf(k string) (*roaring.Bitmap, error) {
	if p := m.lookup(k); p != nil {
		return p.bitmap(), nil
	}
	return nil, nil
}

func (m *memtable) postingCard(k *lookupKey) (*roaring.Bitmap, uint64, error) {
	if p := m.lookup(k.k); p != nil {
		bm := p.bitmap()
		return bm, bm.GetCardinality(), nil
	}
	return nil, 0, nil
}

func (m *memtable) numRows() int { return m.len() }

func (m *memtable) filterTimeRows(rows []uint32, from, to int64) []uint32 {
	if (from <= 0 || m.minOccurred >= from) && (to <= 0 || m.maxOccurred <= to) {
		return rows
	}
	out := rows[:0]
	for _, row := range rows {
		if occ := m.occurred[row]; (from <= 0 || occ >= from) && (to <= 0 || occ <= to) {
			out = append(out, row)
		}
	}
	return out
}

func (m *memtable) prefixPostings(p string, fn func(*roaring.Bitmap)) error {
	m.tokenPostings(p, func(post *posting) { fn(post.bitmap()) })
	return nil
}

func (m *memtable) filterTime(bm *roaring.Bitmap, from, to int64) *roaring.Bitmap {
	if (from <= 0 || m.minOccurred >= from) && (to <= 0 || m.maxOccurred <= to) {
		return bm // the whole memtable is in range
	}
	out := roaring.New()
	it := bm.Iterator()
	for it.HasNext() {
		row := it.Next()
		if occ := m.occurred[row]; (from <= 0 || occ >= from) && (to <= 0 || occ <= to) {
			out.Add(row)
		}
	}
	return out
}

func (m *memtable) deletedRows() *roaring.Bitmap { return m.deleted }

func (m *memtable) rowKey(row uint32) (int64, uint64) { return m.occurred[row], m.seqs[row] }

// segment as a rowSource.

// timeCovers reports whether every row of s lies in [from, to]: a day
// partition inside a query's window needs no time filter (rowRange would
// binary-search the Occurred column twice).
func (s *segment) timeCovers(from, to int64) bool {
	return (from <= 0 || s.meta.MinOccurred >= from) && (to <= 0 || s.meta.MaxOccurred <= to)
}

func (s *segment) filterTimeRows(rows []uint32, from, to int64) []uint32 {
	if s.timeCovers(from, to) {
		return rows
	}
	out := rows[:0]
	for _, row := range rows {
		if occ := s.occurred(int(row)); (from <= 0 || occ >= from) && (to <= 0 || occ <= to) {
			out = append(out, row)
		}
	}
	return out
}

func (s *segment) numRows() int { return s.n }

func (s *segment) filterTime(bm *roaring.Bitmap, from, to int64) *roaring.Bitmap {
	if s.timeCovers(from, to) {
		return bm
	}
	lo, hi := s.rowRange(from, to)
	if lo == 0 && hi == s.n {
		return bm
	}
	rng := roaring.New()
	rng.AddRange(uint64(lo), uint64(hi))
	return roaring.And(bm, rng)
}

func (s *segment) deletedRows() *roaring.Bitmap { return s.deleted }

func (s *segment) rowKey(row uint32) (int64, uint64) { return s.occurred(int(row)), s.seq(int(row)) }

// orAll returns the union of parts, which may be one of them (read-only).
func orAll(parts []*roaring.Bitmap) *roaring.Bitmap {
	switch len(parts) {
	case 0:
		return roaring.New()
	case 1:
		return parts[0]
	}
	return roaring.FastOr(parts...)
}
