package embedded

import (
	"hash/maphash"
	"math/bits"
	"slices"
	"sort"
)

// The dedupe index answers "is (company, id) stored in a segment, and
// where" for every ingested event. A map with one entry per segment row
// cost ~30 B per stored event (400 MB at 10M events) and had to be
// rewritten whenever a merge renumbered rows. Instead each segment keeps a
// sorted column of entries, 8 B per row, built from its key column when it
// is opened or written, and dropped with it; one filter over all segments
// (~1.2 B per row) answers the common case, a key never seen, without
// visiting any segment.

// keyEntry packs the top 32 bits of a key's hash and its row:
// hash32<<32 | row. Sorted, the entries of one hash are adjacent.
type keyEntry = uint64

// segKeyIndex builds the sorted key entries of s.
func segKeyIndex(s *segment) []keyEntry {
	ents := make([]keyEntry, s.n)
	for row := range s.n {
		k, _ := s.key(row) // offsets were checked at open
		ents[row] = maphash.Bytes(hashSeed, k)>>32<<32 | uint64(row)
	}
	slices.Sort(ents)
	return ents
}

// rowsOfHash calls fn for each row of ents whose key hash has top bits h32,
// until fn returns false.
func rowsOfHash(ents []keyEntry, h32 uint32, fn func(row uint32) bool) {
	lo := uint64(h32) << 32
	i := sort.Search(len(ents), func(i int) bool { return ents[i] >= lo })
	for ; i < len(ents) && uint32(ents[i]>>32) == h32; i++ {
		if !fn(uint32(ents[i])) {
			return
		}
	}
}

// keyFilter is a blocked Bloom filter over the 32-bit key hashes of every
// segment row: one 64-byte block per key, filterProbes bits set in it. A
// row that leaves (merge, deletion) leaves its bits, which only costs a
// false positive, until the filter is rebuilt at twice the size when the
// rows added since exceed its capacity.
type keyFilter struct {
	blocks [][8]uint64
	mask   uint64 // len(blocks)-1
	added  int    // keys added since it was built
	cap    int    // keys it was sized for
}

const (
	filterBitsPerKey = 10 // ~1 % false positives
	filterProbes     = 6
	filterMinKeys    = 1 << 16
)

func newKeyFilter(keys int) *keyFilter {
	keys = max(keys, filterMinKeys)
	nb := 1 << bits.Len(uint(keys*filterBitsPerKey/512))
	return &keyFilter{blocks: make([][8]uint64, nb), mask: uint64(nb - 1), cap: keys}
}

// probes derives the block and the bit positions from the 32-bit hash
// (all the sorted entries keep, so that a rebuild needs nothing else).
func filterMix(h32 uint32) uint64 {
	x := uint64(h32) * 0x9E3779B97F4A7C15
	return x ^ x>>29
}

func (f *keyFilter) add(h32 uint32) {
	x := filterMix(h32)
	b := &f.blocks[x&f.mask]
	x >>= 20
	for range filterProbes {
		bit := x & 511
		b[bit>>6] |= 1 << (bit & 63)
		x = x>>9 | x<<55
	}
	f.added++
}

func (f *keyFilter) mayHave(h32 uint32) bool {
	x := filterMix(h32)
	b := &f.blocks[x&f.mask]
	x >>= 20
	for range filterProbes {
		bit := x & 511
		if b[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
		x = x>>9 | x<<55
	}
	return true
}

func (f *keyFilter) addAll(ents []keyEntry) {
	for _, en := range ents {
		f.add(uint32(en >> 32))
	}
}

// full reports whether the filter holds more keys than it was sized for.
func (f *keyFilter) full() bool { return f.added > f.cap }
