package embedded

import (
	"container/list"
	"sync"
)

// blockLRU keeps recently decompressed blocks. Searches run newest first,
// so most pages land in the newest blocks of the newest segment: caching
// them saves most of the decompression a page costs. Segment ids are never
// reused, so the entries of a dropped segment just age out.
type blockLRU struct {
	mu     sync.Mutex
	budget int
	used   int
	order  *list.List // front = most recent; values are *blockEntry
	byKey  map[blockKey]*list.Element
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
	return &blockLRU{budget: budget, order: list.New(), byKey: make(map[blockKey]*list.Element)}
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
