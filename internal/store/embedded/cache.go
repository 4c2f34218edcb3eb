package embedded

import (
	"container/list"
	"sync"
)

// blockLRU keeps recently decompressed blocks. Searches run newest first,
// so most pages land in the newest blocks of the newest segment: caching
// them saves most of the decompression a page costs. Segment ids are never
// reused, so the entries of a dropped segment just age out.
//
// A block enters only when it is asked for a second time while remembered
// in seen (a direct-mapped table of recent misses): a selective query's
// blocks (one per row of the page, from anywhere in the store) are seldom
// read again, and caching each cost an allocation of its own, garbage
// collection and the eviction of blocks that are read again, such as the
// newest ones every broad query's first page needs.
type blockLRU struct {
	mu     sync.Mutex
	budget int
	used   int
	order  *list.List // front = most recent; values are *blockEntry
	byKey  map[blockKey]*list.Element
	seen   []seenSlot
}

type seenSlot struct {
	key blockKey
	ok  bool
}

type blockKey struct {
	seg   uint32
	block int
}

type blockEntry struct {
	key blockKey
	raw []byte
}

func newBlockLRU(budget int) *blockLRU {
	// About twice as many remembered misses as blocks of ~11 KB fit in
	// the budget.
	n := 1024
	for n < budget/4096 && n < 1<<20 {
		n *= 2
	}
	return &blockLRU{budget: budget, order: list.New(), byKey: make(map[blockKey]*list.Element),
		seen: make([]seenSlot, n)}
}

// admit reports whether block k, just missed, should enter the cache: it
// was missed before and is still remembered. Otherwise it is remembered.
func (c *blockLRU) admit(k blockKey) bool {
	if c == nil {
		return false
	}
	h := (uint64(k.seg)<<32 ^ uint64(k.block)) * 0x9e3779b97f4a7c15
	slot := &c.seen[h>>32&uint64(len(c.seen)-1)]
	c.mu.Lock()
	defer c.mu.Unlock()
	if slot.ok && slot.key == k {
		slot.ok = false
		return true
	}
	*slot = seenSlot{key: k, ok: true}
	return false
}

func (c *blockLRU) get(k blockKey) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*blockEntry).raw, true
}

// put adds a block; the caller must not modify raw afterwards.
func (c *blockLRU) put(k blockKey, raw []byte) {
	if c == nil || len(raw) > c.budget/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok {
		return
	}
	c.byKey[k] = c.order.PushFront(&blockEntry{key: k, raw: raw})
	c.used += len(raw)
	for c.used > c.budget {
		el := c.order.Back()
		ent := el.Value.(*blockEntry)
		c.order.Remove(el)
		delete(c.byKey, ent.key)
		c.used -= len(ent.raw)
	}
}
