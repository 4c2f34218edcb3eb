package embedded

import (
	"slices"
	"sort"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"
)

// Version 6 segments store the same logical posting keys as version 5
// (terms.go: what the memtable and the queries use) in fewer strings. In
// the benchmark trail a user ID was three dictionary strings (the user key,
// the actor key, the lower-cased token), 55 B of index per row in a
// 100k-row segment, 7.5 % of the JSON; most users occur once or twice in a
// segment, so their dictionary strings, not their postings, were the cost.
//
// What a version 6 segment stores instead, every part defined row by row
// (so that merging stored postings by key gives the stored postings of the
// merged rows):
//   - a user key 'u'+X whose X is non-empty ASCII letters and digits (its
//     only token is then lower(X)) is stored as the ID key
//     't'+lower(X)+"\x00u"+caseBits(X), inside the token range: a token
//     prefix scan finds it, and it is where the token lower(X) of that
//     user's rows is found;
//   - an actor key 'a'+X keeps only the rows whose ActorID differs from
//     their UserID (ID key form "\x00a" when X qualifies), and the key
//     storedSelf holds the rows whose ActorID equals their UserID: actor X
//     is then stored(a X) ∪ (stored(u X) ∩ storedSelf);
//   - a token key 't'+T keeps only the rows where T is neither the
//     lower-cased UserID nor the lower-cased ActorID (qualifying IDs): those
//     rows are in an ID key of the token range.
//
// Other keys are stored as they are. Reads translate back (postingV6).
const (
	segVersion6 = 6
	// storedSelf is the key of the rows whose ActorID equals their UserID.
	// No logical key starts with 'S'.
	storedSelf = "S"
)

// idKeyable reports whether the user or actor ID x is stored as an ID key:
// non-empty ASCII letters and digits, which tokenKeys makes the single
// token lower(x).
func idKeyable(x string) bool {
	if x == "" {
		return false
	}
	for i := 0; i < len(x); i++ {
		if !asciiAlnum[x[i]] {
			return false
		}
	}
	return true
}

// idKey returns the stored key of the user (field keyUser) or actor
// (keyActor) ID x, which idKeyable accepts: 't', lower(x), 0x00, field,
// then a bit per byte of x, set where it is an upper-case letter (so that
// IDs differing in case only keep apart).
func idKey(field byte, x string) string {
	b := make([]byte, 0, 1+len(x)+2+(len(x)+7)/8)
	b = append(b, keyToken)
	for i := 0; i < len(x); i++ {
		c := x[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, 0, field)
	bits := len(b)
	b = append(b, make([]byte, (len(x)+7)/8)...)
	for i := 0; i < len(x); i++ {
		if c := x[i]; 'A' <= c && c <= 'Z' {
			b[bits+i/8] |= 1 << (i % 8)
		}
	}
	return string(b)
}

// storedIDKey is the key under which a version 6 segment stores the user
// or actor key of x.
func storedIDKey(field byte, x string) string {
	if idKeyable(x) {
		return idKey(field, x)
	}
	return pkey(field, x)
}

// segKey is one stored key of a version 6 segment: its posting is rows
// when set, else the logical posting number src unchanged.
type segKey struct {
	key  string
	src  int
	rows []uint32
}

// segmentKeys returns the stored keys, sorted, of a segment whose logical
// keys are keys (sorted, as the memtable files them); rowsOf(i) returns
// the rows of logical key i, ascending (it is called only for user, actor
// and affected token keys). No maps: the actor and user ranges of keys are
// both sorted by ID and are paired by a merge walk, and a token and the ID
// keys that lower-case to it end up adjacent in the sorted output.
func segmentKeys(keys []string, rowsOf func(i int) []uint32) []segKey {
	cache := make([][]uint32, len(keys))
	get := func(i int) []uint32 {
		if cache[i] == nil {
			cache[i] = rowsOf(i)
		}
		return cache[i]
	}
	aLo, aHi := fieldRange(keys, keyActor)
	uLo, uHi := fieldRange(keys, keyUser)
	var rest, ids []segKey
	var self []uint32
	j := uLo
	for i := aLo; i < aHi; i++ {
		x := keys[i][1:]
		r := get(i)
		for j < uHi && keys[j][1:] < x {
			j++
		}
		if j < uHi && keys[j][1:] == x {
			var both []uint32
			both, r = splitRows(r, get(j))
			self = append(self, both...)
		}
		switch {
		case len(r) == 0:
		case idKeyable(x):
			ids = append(ids, segKey{key: idKey(keyActor, x), src: -1, rows: r})
		default:
			rest = append(rest, segKey{key: keys[i], src: -1, rows: r})
		}
	}
	for i := uLo; i < uHi; i++ {
		if x := keys[i][1:]; idKeyable(x) {
			ids = append(ids, segKey{key: idKey(keyUser, x), src: i})
		} else {
			rest = append(rest, segKey{key: keys[i], src: i})
		}
	}
	if len(self) > 0 {
		slices.Sort(self)
		ids = append(ids, segKey{key: storedSelf, src: -1, rows: self})
	}
	// The ID keys and the other user and actor keys are sorted, then
	// merged with every other key, which keys has in order.
	ids = append(ids, rest...)
	slices.SortFunc(ids, func(a, b segKey) int { return strings.Compare(a.key, b.key) })
	others := make([]segKey, 0, len(keys)-(aHi-aLo)-(uHi-uLo))
	for i := range keys {
		if (i < aLo || i >= aHi) && (i < uLo || i >= uHi) {
			others = append(others, segKey{key: keys[i], src: i})
		}
	}
	all := mergeSegKeys(others, ids)
	// A token T is followed by the ID keys T+"\x00…" of the IDs that
	// lower-case to it: its stored rows are those they do not hold.
	out := all[:0]
	for p := 0; p < len(all); p++ {
		sk := all[p]
		k := sk.key
		if k[0] == keyToken && sk.src >= 0 && keys[sk.src] == k {
			var r []uint32
			covered := false
			for q := p + 1; q < len(all) && len(all[q].key) > len(k) && all[q].key[len(k)] == 0 && all[q].key[:len(k)] == k; q++ {
				if !covered {
					r = get(sk.src)
				}
				id := all[q].rows
				if id == nil {
					id = get(all[q].src)
				}
				_, r = splitRows(r, id)
				covered = true
			}
			if covered {
				if len(r) == 0 {
					continue
				}
				sk = segKey{key: k, src: -1, rows: r}
			}
		}
		if sk.rows == nil && cache[sk.src] != nil {
			sk.rows = cache[sk.src]
		}
		out = append(out, sk)
	}
	return out
}

// fieldRange returns the range of the sorted keys whose field byte is f.
func fieldRange(keys []string, f byte) (int, int) {
	lo := sort.Search(len(keys), func(i int) bool { return keys[i][0] >= f })
	hi := sort.Search(len(keys), func(i int) bool { return keys[i][0] > f })
	return lo, hi
}

// splitRows returns the rows of a (ascending) that are in b (ascending)
// and those that are not.
func splitRows(a, b []uint32) (in, out []uint32) {
	j := 0
	for _, r := range a {
		for j < len(b) && b[j] < r {
			j++
		}
		if j < len(b) && b[j] == r {
			in = append(in, r)
		} else {
			out = append(out, r)
		}
	}
	return in, out
}

func mergeSegKeys(a, b []segKey) []segKey {
	if len(b) == 0 {
		return a
	}
	out := make([]segKey, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i].key < b[j].key {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// postingV6 is posting for a version 6 segment: the rows of logical key k
// from the keys the segment stores (see segmentKeys).
func (s *segment) postingV6(lk *lookupKey) (*roaring.Bitmap, error) {
	k := lk.k
	if k == "" {
		return s.dictPosting(k)
	}
	switch k[0] {
	case keyUser:
		return s.dictPosting(lk.storedID())
	case keyActor:
		a, err := s.dictPosting(lk.storedID())
		if err != nil {
			return nil, err
		}
		u, err := s.dictPosting(storedIDKey(keyUser, k[1:]))
		if err != nil || u == nil {
			return a, err
		}
		// Through the hot postings: the self rows are most of the segment.
		self, err := s.postingOf(storedSelf)
		if err != nil || self == nil {
			return a, err
		}
		both := roaring.And(u, self)
		switch {
		case a != nil:
			both.Or(a)
		case both.IsEmpty():
			return nil, nil
		}
		return both, nil
	case keyToken:
		// The token's own rows and those of the IDs lower-casing to it:
		// the keys k and k+"\x00…", adjacent in the dictionary.
		var out *roaring.Bitmap
		var perr error
		err := s.scanDict(k, func(i int, key []byte) bool {
			if len(key) < len(k) || string(key[:len(k)]) != k || len(key) > len(k) && key[len(k)] != 0 {
				return false
			}
			bm, err := s.postingAt(i)
			if err != nil {
				perr = err
				return false
			}
			if out == nil {
				out = bm.Clone() // bm may alias the read-only mapping
			} else {
				out.Or(bm)
			}
			return true
		})
		if err == nil {
			err = perr
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return s.dictPosting(k)
}

// storedPostings returns the keys and postings a version 6 segment stores
// for the logical postings want (Check derives want from the rows).
func storedPostings(want map[string]*roaring.Bitmap) map[string]*roaring.Bitmap {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]*roaring.Bitmap, len(keys)+1)
	for _, sk := range segmentKeys(keys, func(i int) []uint32 { return want[keys[i]].ToArray() }) {
		if sk.rows != nil {
			out[sk.key] = roaring.BitmapOf(sk.rows...)
		} else {
			out[sk.key] = want[keys[sk.src]]
		}
	}
	return out
}
