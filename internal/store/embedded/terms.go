package embedded

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/audittrail/audittrail/internal/event"
)

// Posting keys: one byte naming the field, then the value. Every event is
// indexed under every field, empty values included, because a filter may
// ask for the empty value ("userIds": [""]). The distinct first bytes keep
// fields apart, so a token prefix search stays within tokens.
const (
	keyCompany   = 'c'
	keyProject   = 'p' // project-level events only, by project ID
	keyLevelComp = 'L' // company-level events (value empty)
	keyUser      = 'u'
	keyAction    = 'A'
	keyActor     = 'a'
	keyDevice    = 'd'
	keyMethod    = 'm'
	keyGeo       = 'g'
	keyAddr      = 'r'
	keyLoginID   = 'l'
	keyTenant    = 'n'
	keyNoTenant  = 'N' // events without any tenant (value empty)
	keyChanged   = 'f'
	keyToken     = 't'
	keyType      = 'y'
)

func pkey(field byte, v string) string {
	b := make([]byte, 1+len(v))
	b[0] = field
	copy(b[1:], v)
	return string(b)
}

// eventKeys is the distinct posting keys of one event and their hashes
// (postingHash), computed by the caller of Append so that the single
// writer only files them. The keys lie one after another in buf: one
// allocation per event rather than one per key, and the memtable copies
// only the keys it has not seen before (a few per event).
type eventKeys struct {
	buf    []byte
	ends   []uint32 // key i is buf[ends[i-1]:ends[i]]
	hashes []uint64
}

func (k *eventKeys) len() int { return len(k.ends) }

func (k *eventKeys) key(i int) []byte {
	lo := uint32(0)
	if i > 0 {
		lo = k.ends[i-1]
	}
	return k.buf[lo:k.ends[i]]
}

// postingHash keys the memtable's posting map: an integer key is far
// cheaper for the writer to look up than the string.
func postingHash(k string) uint64 { return maphash.String(keySetSeed, k) }

var keySetSeed = maphash.MakeSeed()

// indexEvent returns the distinct posting keys of e, in first-seen order.
// It must agree exactly with query.Query.Match; the differential tests
// hold it to that.
func indexEvent(e *event.Event) eventKeys {
	b := keyBuilders.Get().(*keyBuilder)
	b.build(e)
	out := eventKeys{
		buf:    bytes.Clone(b.ek.buf),
		ends:   slices.Clone(b.ek.ends),
		hashes: slices.Clone(b.ek.hashes),
	}
	keyBuilders.Put(b)
	return out
}

// indexEvents sets out[i] to indexEvent(&evs[i]), carving the keys of
// many events from a few chunks of mem rather than three allocations
// each. mem's chunks are reused from its previous use (the keys carved
// then must no longer be in use); nil: new chunks.
func indexEvents(evs []event.Event, out []eventKeys, mem *keyMem) {
	if mem == nil {
		mem = new(keyMem)
	}
	mem.reset()
	b := keyBuilders.Get().(*keyBuilder)
	var buf []byte
	var ends []uint32
	var hashes []uint64
	for i := range evs {
		b.build(&evs[i])
		n, nb := len(b.ek.ends), len(b.ek.buf)
		if cap(buf)-len(buf) < nb {
			buf = mem.bytes(nb)
		}
		if cap(ends)-len(ends) < n {
			ends, hashes = mem.lists(n)
		}
		lo, klo := len(buf), len(ends)
		buf = append(buf, b.ek.buf...)
		ends = append(ends, b.ek.ends...)
		hashes = append(hashes, b.ek.hashes...)
		out[i] = eventKeys{buf: buf[lo:len(buf):len(buf)], ends: ends[klo:len(ends):len(ends)], hashes: hashes[klo:len(hashes):len(hashes)]}
	}
	keyBuilders.Put(b)
}

// keyMem holds the chunks the posting keys of a batch are carved from.
// Append reuses them once the writer has filed its batch (the memtable
// copies the keys it keeps): ~1.3 KB of keys per event of the benchmark
// trail, a quarter of what ingest allocated, which set the garbage
// collector's pace.
type keyMem struct {
	bufs   [][]byte
	ends   [][]uint32
	hashes [][]uint64
	nb, nl int // chunks handed out since reset
}

const (
	keyChunkBytes = 64 << 10
	keyChunkKeys  = 4096
)

func (m *keyMem) reset() { m.nb, m.nl = 0, 0 }

// bytes returns an empty chunk with room for at least n bytes.
func (m *keyMem) bytes(n int) []byte {
	for m.nb < len(m.bufs) {
		c := m.bufs[m.nb]
		m.nb++
		if cap(c) >= n {
			return c[:0]
		}
	}
	c := make([]byte, 0, max(n, keyChunkBytes))
	m.bufs = append(m.bufs, c)
	m.nb = len(m.bufs)
	return c
}

// lists returns empty ends and hashes chunks with room for n keys.
func (m *keyMem) lists(n int) ([]uint32, []uint64) {
	for m.nl < len(m.ends) {
		e, h := m.ends[m.nl], m.hashes[m.nl]
		m.nl++
		if cap(e) >= n {
			return e[:0], h[:0]
		}
	}
	e, h := make([]uint32, 0, max(n, keyChunkKeys)), make([]uint64, 0, max(n, keyChunkKeys))
	m.ends, m.hashes = append(m.ends, e), append(m.hashes, h)
	m.nl = len(m.ends)
	return e, h
}

// appendKeys is the memory of the posting keys of one Append: the keys and
// the chunks of each tokenising goroutine, kept in appendKeysPool between
// calls.
type appendKeys struct {
	keys  []eventKeys
	parts []keyMem
}

var appendKeysPool = sync.Pool{New: func() any { return new(appendKeys) }}

// index computes the posting keys of evs into a's memory, on all cores
// for a big batch. They are valid until a is used again.
func (a *appendKeys) index(evs []event.Event) []eventKeys {
	if cap(a.keys) < len(evs) {
		a.keys = make([]eventKeys, len(evs))
	}
	keys := a.keys[:len(evs)]
	workers := 1
	if len(evs) >= parallelKeysMin {
		workers = runtime.GOMAXPROCS(0)
	}
	for len(a.parts) < workers {
		a.parts = append(a.parts, keyMem{})
	}
	if workers == 1 {
		indexEvents(evs, keys, &a.parts[0])
		return keys
	}
	var wg sync.WaitGroup
	chunk := (len(evs) + workers - 1) / workers
	for w := 0; w < workers && w*chunk < len(evs); w++ {
		lo, hi := w*chunk, min(len(evs), (w+1)*chunk)
		wg.Go(func() { indexEvents(evs[lo:hi], keys[lo:hi], &a.parts[w]) })
	}
	wg.Wait()
	return keys
}

// build collects the keys of e into b.ek.
func (b *keyBuilder) build(e *event.Event) {
	b.reset()
	b.field(keyCompany, e.CompanyID)
	switch e.Level {
	case event.LevelProject:
		b.field(keyProject, e.ProjectID)
	case event.LevelCompany:
		b.field(keyLevelComp, "")
	}
	b.field(keyUser, e.UserID)
	b.field(keyAction, e.Action)
	b.field(keyActor, e.ActorID)
	b.field(keyDevice, e.Device)
	b.field(keyType, e.Type)
	b.field(keyMethod, e.Method)
	b.field(keyGeo, e.Geo)
	b.field(keyAddr, e.RemoteAddress)
	for _, s := range e.LoginIDs {
		b.field(keyLoginID, s)
	}
	for _, s := range e.Tenants {
		b.field(keyTenant, s)
	}
	if len(e.Tenants) == 0 {
		b.field(keyNoTenant, "")
	}
	for _, s := range [...]string{e.UserID, e.ActorID, e.Action, e.Type, e.Device, e.Method, e.Geo, e.RemoteAddress} {
		b.tokens(s)
	}
	for _, s := range e.LoginIDs {
		b.tokens(s)
	}
	for _, s := range e.Tenants {
		b.tokens(s)
	}
	b.maybeChange = false
	dataStrings(e.Data, b.dataFn)
	if b.maybeChange {
		for _, f := range e.ChangedFields() {
			b.field(keyChanged, f)
		}
	}
}

// indexKeys is indexEvent as strings, for checks and tests.
func indexKeys(e *event.Event) []string {
	ek := indexEvent(e)
	keys := make([]string, ek.len())
	for i := range keys {
		keys[i] = string(ek.key(i))
	}
	return keys
}

// keyBuilder collects the distinct keys of one event. It is reused (a
// pool) so that its buffers and its dedupe table cost nothing per event.
type keyBuilder struct {
	ek eventKeys
	// slots is an open-addressing table of indexes+1 into ek (0 = empty),
	// at most half full.
	slots   []int32
	scratch []byte
	dataFn  func(string)
	// maybeChange: a string of the event's data is "change" in some case,
	// so the data may hold a Change object (see dataString).
	maybeChange bool
}

var keyBuilders = sync.Pool{New: func() any {
	b := &keyBuilder{slots: make([]int32, 256)}
	b.dataFn = b.dataString
	return b
}}

func (b *keyBuilder) reset() {
	b.ek.buf, b.ek.ends, b.ek.hashes = b.ek.buf[:0], b.ek.ends[:0], b.ek.hashes[:0]
	clear(b.slots)
}

// field adds the key of field with value v.
func (b *keyBuilder) field(field byte, v string) {
	b.scratch = append(append(b.scratch[:0], field), v...)
	b.add(b.scratch)
}

func (b *keyBuilder) tokens(s string) {
	b.scratch = tokenKeys(b.scratch, s, b.add)
}

// dataString adds the tokens of s, a string of the event's data, and notes
// whether it could be the key of a Change object. event.ChangedFields
// decodes the data (json.Unmarshal, a tenth of the tokenising) and finds a
// Change key case-insensitively; such a key is one of the strings that
// dataStrings yields, since it yields every object key, so only data with
// a string equal to "change" under ASCII case folding needs decoding.
// (encoding/json also folds the Kelvin sign and long s onto k and s;
// "change" has neither.)
func (b *keyBuilder) dataString(s string) {
	b.scratch = tokenKeys(b.scratch, s, b.add)
	if len(s) == len("change") && equalFoldASCII(s, "change") {
		b.maybeChange = true
	}
}

// add adds k (copied) unless the event already has it.
func (b *keyBuilder) add(k []byte) {
	if 2*(len(b.ek.ends)+1) > len(b.slots) {
		b.grow()
	}
	h := maphash.Bytes(keySetSeed, k)
	mask := uint64(len(b.slots) - 1)
	i := h & mask
	for s := b.slots[i]; s != 0; s = b.slots[i] {
		if b.ek.hashes[s-1] == h && bytes.Equal(b.ek.key(int(s-1)), k) {
			return
		}
		i = (i + 1) & mask
	}
	b.ek.buf = append(b.ek.buf, k...)
	b.ek.ends = append(b.ek.ends, uint32(len(b.ek.buf)))
	b.ek.hashes = append(b.ek.hashes, h)
	b.slots[i] = int32(len(b.ek.ends))
}

// grow doubles the dedupe table, for events with many keys (a big data
// payload).
func (b *keyBuilder) grow() {
	b.slots = make([]int32, 2*len(b.slots))
	mask := uint64(len(b.slots) - 1)
	for j, h := range b.ek.hashes {
		i := h & mask
		for b.slots[i] != 0 {
			i = (i + 1) & mask
		}
		b.slots[i] = int32(j + 1)
	}
}

// tokenKeys calls add with the token posting key of every token of s, as
// event.Tokenize defines tokens, in buf (returned for reuse; add must copy
// what it keeps). ASCII text, the common case, is tokenised here in one
// pass, each byte looked up once (letter or digit, lower-cased, or a
// separator). At the first byte that is not ASCII the whole string goes
// through event.Tokenize instead: the tokens added before it ended at an
// ASCII separator, so Tokenize yields them again, in the same order, and
// add may see them twice (the key builder keeps one of each).
func tokenKeys(buf []byte, s string, add func([]byte)) []byte {
	buf = append(buf[:0], keyToken)
	for i := 0; i < len(s); i++ {
		c := tokenByte[s[i]]
		if c > tokenSep {
			buf = append(buf, c)
			continue
		}
		if c == tokenNonASCII {
			event.Tokenize(s, func(t string) {
				buf = append(append(buf[:0], keyToken), t...)
				add(buf)
			})
			return buf
		}
		if len(buf) > 1 {
			add(buf)
			buf = buf[:1]
		}
	}
	if len(buf) > 1 {
		add(buf)
	}
	return buf
}

// tokenByte maps a byte to itself lower-cased if it is an ASCII letter or
// digit, else to tokenSep (an ASCII separator) or tokenNonASCII.
var tokenByte = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = tokenNonASCII
		case 'A' <= c && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		case asciiAlnum[c]:
			t[c] = byte(c)
		default:
			t[c] = tokenSep
		}
	}
	return t
}()

const (
	tokenNonASCII = 0
	tokenSep      = 1
)

// asciiAlnum marks the bytes that are ASCII letters and digits.
var asciiAlnum = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	return t
}()

// equalFoldASCII reports whether b equals lower (lower-case ASCII
// letters) under ASCII case folding; b is as long as lower.
func equalFoldASCII(b string, lower string) bool {
	for j := range len(lower) {
		c := b[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[j] {
			return false
		}
	}
	return true
}

// dataStrings is event.DataStrings made fast for the common case: in a
// valid JSON document without escapes, every string literal is an object
// key or a string value, which is exactly what DataStrings yields. Anything
// else goes to the reference implementation. The strings of the fast path
// alias data (no allocation each): fn must not keep them past a change
// to data, which the indexer, copying every key, never does.
func dataStrings(data json.RawMessage, fn func(s string)) {
	if len(data) == 0 {
		return
	}
	if bytes.IndexByte(data, '\\') >= 0 || !utf8.Valid(data) || !validJSON(data) {
		event.DataStrings(data, fn)
		return
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		j := bytes.IndexByte(data[i+1:], '"')
		if j < 0 {
			return
		}
		if j > 0 {
			fn(unsafe.String(&data[i+1], j))
		} else {
			fn("")
		}
		i += j + 1
	}
}
