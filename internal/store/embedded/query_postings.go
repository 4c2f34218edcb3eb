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
	m      map[string]*roaring.Bitmap
	used   int
	budget int
}

// hotPostingMin is the cardinality from which a posting is kept: below it
// a posting is an array container or a short list, cheap to read again.
const hotPostingMin = 1024

// hotBytesPerRow bounds a segment's kept postings: a 100k-row segment keeps
// up to 200 KB, about sixteen postings covering every row.
const hotBytesPerRow = 2

// postingOf is posting(k) through the segment's hot postings.
func (s *segment) postingOf(k string) (*roaring.Bitmap, error) {
	h := s.hotPostings()
	h.mu.RLock()
	bm, ok := h.m[k]
	h.mu.RUnlock()
	if ok {
		return bm, nil
	}
	bm, err := s.posting(k)
	if err != nil || bm == nil || bm.GetCardinality() < hotPostingMin {
		return bm, err
	}
	cp := bm.Clone()
	size := int(cp.GetSizeInBytes()) + len(k)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.used+size <= h.budget {
		if _, ok := h.m[k]; !ok {
			h.m[k] = cp
			h.used += size
		}
	}
	return cp, nil
}

func (s *segment) hotPostings() *hotPostings {
	s.hotOnce.Do(func() {
		s.hot = &hotPostings{m: map[string]*roaring.Bitmap{}, budget: hotBytesPerRow * s.n}
	})
	return s.hot
}
