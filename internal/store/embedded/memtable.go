package embedded

import (
	"sort"

	"github.com/audittrail/audittrail/internal/event"
)

type dedupeKey struct{ company, id string }

// memtable holds events in Seq order. Deleted rows stay in place (marked)
// so that positions never move under a reader.
type memtable struct {
	rows  []memRow
	byKey map[dedupeKey]int
	live  int
}

type memRow struct {
	ev      event.Event
	deleted bool
}

func newMemtable() *memtable {
	return &memtable{byKey: make(map[dedupeKey]int)}
}

func (m *memtable) has(company, id string) bool {
	_, ok := m.byKey[dedupeKey{company, id}]
	return ok
}

func (m *memtable) add(ev event.Event) {
	m.byKey[dedupeKey{ev.CompanyID, ev.ID}] = len(m.rows)
	m.rows = append(m.rows, memRow{ev: ev})
	m.live++
}

func (m *memtable) get(company, id string) (*event.Event, bool) {
	i, ok := m.byKey[dedupeKey{company, id}]
	if !ok {
		return nil, false
	}
	return &m.rows[i].ev, true
}

// deleteWhere marks the rows the rule covers and forgets their keys, so
// that the same id may be stored again later.
func (m *memtable) deleteWhere(r *deleteRule) int64 {
	var n int64
	for i := range m.rows {
		row := &m.rows[i]
		if row.deleted || !r.covers(&row.ev) {
			continue
		}
		row.deleted = true
		delete(m.byKey, dedupeKey{row.ev.CompanyID, row.ev.ID})
		m.live--
		n++
	}
	return n
}

// firstAfter is the index of the first row with Seq > seq.
func (m *memtable) firstAfter(seq uint64) int {
	return sort.Search(len(m.rows), func(i int) bool { return m.rows[i].ev.Seq > seq })
}
