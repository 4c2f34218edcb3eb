package embedded

import (
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
)

// hotPostings keeps verified copies of a segment's big postings (the
// company, a busy project, the company level, common actions): nearly every
// query reads them, and each read otherwise costs a dictionary search, the
// checksum of the run of 64 postings around it (tens of KB when neighbours
// are big too) and a validation pass over the containers. A copy, not the
// mapped bytes, is kept so that a cached answer is always from checked
// bytes, even if the file changes under the mapping later.
type hotPostings struct {
	mu     sync.RWMutex
	m      map[string]hotPosting
	used   int
	budget int
	// usedSmall counts the small and absent postings of hot fields, kept
	// within hotSmallBytes so that big postings cannot crowd them out and
	// queries for values that do not exist cannot grow the map unbounded.
	usedSmall int
	// refused counts postings of hot fields not kept for want of budget
	// (tests).
	refused int
}

// hotPosting is a kept posting (nil: the key is not in the segment) and its
// cardinality, which every query's term ordering asks for and which costs
// a walk of the containers (of every run of a run container) to compute.
type hotPosting struct {
	bm   *roaring.Bitmap
	card uint64
}

// hotSmallBytes bounds a segment's kept small postings of hot fields:
// about a hundred of the largest (1023 rows), thousands of typical ones.
const hotSmallBytes = 128 << 10

// hotPostingMin is the cardinality from which a posting is kept: below it
// a posting is an array container or a short list, cheap to read again,
// except for the few keys of fields with few values (see hotField).
const hotPostingMin = 1024

// hotField reports whether postings of field f are kept whatever their
// size, and their absence too: the field has few values (a project, the
// company level, an action, a device), so keeping them costs little, and
// the same few are asked of every segment again and again. Reading one
// costs a dictionary search (a Huffman-coded block decoded) and the
// checksum of its run of 64 postings, which for these keys holds the big
// postings of their neighbours: the company level's 1 % of a day partition
// (~330 rows at 1M events) was read that way by every query of the
// project or company scope, about half of a selective query's CPU.
func hotField(f byte) bool {
	switch f {
	case keyCompany, keyProject, keyLevelComp, keyNoTenant, keyAction, keyDevice, keyMethod, keyGeo,
		keyType, keyChanged:
		return true
	}
	return false
}

// hotBytesPerRow bounds a segment's kept big postings. Every posting of
// the few-valued fields must fit: together they cover each row about once
// per field (company, project, level, action, device, method, geo), each
// row costing a bit in a bitmap container or 2 bytes in an array one. At
// 2 bytes per row the actions and geos of a 333k-row day partition (10M
// events) filled the budget, and every devices+methods query read its
// postings from the file again: 82 ms p50 at 10M against 13 before the
// partitions grew. 8 bytes per row is at most 80 MB at 10M events; the
// whole kept set of the bench's queries is ~3.5 MB at 1M.
const hotBytesPerRow = 8

// postingOf is posting(k) through the segment's hot postings.
func (s *segment) postingOf(k string) (*roaring.Bitmap, error) {
	bm, _, err := s.postingCard(&lookupKey{k: k})
	return bm, err
}

// postingCard is postingOf with the posting's cardinality.
func (s *segment) postingCard(lk *lookupKey) (*roaring.Bitmap, uint64, error) {
	k := lk.k
	h := s.hotPostings()
	h.mu.RLock()
	hp, ok := h.m[k]
	h.mu.RUnlock()
	if ok {
		return hp.bm, hp.card, nil
	}
	bm, err := s.postingKey(lk)
	if err != nil {
		return nil, 0, err
	}
	var card uint64
	if bm != nil {
		card = bm.GetCardinality()
	}
	hot := len(k) > 0 && hotField(k[0])
	if !hot && card < hotPostingMin {
		return bm, card, nil
	}
	var cp *roaring.Bitmap // nil: the key is not in the segment
	size := len(k) + 16
	if bm != nil {
		cp = bm.Clone()
		size += int(cp.GetSizeInBytes())
	}
	small := card < hotPostingMin
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[k]; ok {
		return cp, card, nil
	}
	switch {
	case small && h.usedSmall+size <= hotSmallBytes:
		h.usedSmall += size
	case !small && h.used+size <= h.budget:
		h.used += size
	default:
		if hot {
			h.refused++
		}
		return cp, card, nil
	}
	h.m[k] = hotPosting{cp, card}
	return cp, card, nil
}

func (s *segment) hotPostings() *hotPostings {
	s.hotOnce.Do(func() {
		s.hot = &hotPostings{m: map[string]hotPosting{}, budget: hotBytesPerRow * s.n}
	})
	return s.hot
}
