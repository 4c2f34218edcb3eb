package embedded

import (
	"bytes"
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
	b.data(e)
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
	dataFn  func(string)
	tokenFn func(string)
	// maybeChange: a string of the event's data is "change" in some case,
	// so the data may hold a Change object (see dataString).
	maybeChange bool
	// changed is the keys of the data's Change objects found by walkData;
	// they alias the data.
	changed []string
}

var keyBuilders = sync.Pool{New: func() any {
	b := &keyBuilder{slots: make([]int32, 256)}
	b.dataFn = b.dataString
	b.tokenFn = b.token
	return b
}}

func (b *keyBuilder) reset() {
	b.ek.buf, b.ek.ends, b.ek.hashes = b.ek.buf[:0], b.ek.ends[:0], b.ek.hashes[:0]
	clear(b.slots)
}

// field adds the key of field with value v.
func (b *keyBuilder) field(field byte, v string) {
	lo := len(b.ek.buf)
	b.ek.buf = append(append(b.ek.buf, field), v...)
	b.addTail(lo)
}

// token adds the key of the token t.
func (b *keyBuilder) token(t string) {
	b.field(keyToken, t)
}

// tokens adds the token keys of s, as event.Tokenize defines tokens.
func (b *keyBuilder) tokens(s string) {
	for i := 0; i < len(s); {
		n, stop := b.asciiTokens(s[i:], len(s)-i)
		if stop == tokenNonASCII {
			// The tokens added so far ended at an ASCII separator, so
			// Tokenize yields them again, in the same order, and add
			// keeps one of each.
			event.Tokenize(s, b.tokenFn)
			return
		}
		i += n + 1 // a quote or a control byte: separators here
	}
}

// asciiTokens adds the token keys of s up to its first byte that is
// not ASCII, a quote, a backslash or a control byte: it returns that
// byte's index (len(s) if none) and class (tokenNonASCII, tokenQuote,
// tokenBad; tokenSep if none). The tokens added end at a separator or
// at the stop byte, except one cut by a non-ASCII byte, which is not
// added. room (at least len(s)) bounds the buffer it needs: each token's
// key byte takes the place of the separator before it, so the keys of
// room bytes take at most room+1, and one more for the next key's.
//
// Each token's key is lower-cased straight into the event's key buffer
// and dropped again if the event already has it: no copy, no callback.
func (b *keyBuilder) asciiTokens(s string, room int) (int, byte) {
	if need := room + 2; cap(b.ek.buf)-len(b.ek.buf) < need {
		b.ek.buf = slices.Grow(b.ek.buf, need)
	}
	start := len(b.ek.buf)
	buf := b.ek.buf[:cap(b.ek.buf)]
	buf[start] = keyToken
	w := start + 1
	for i := 0; i < len(s); i++ {
		c := tokenByte[s[i]]
		if c > tokenBad {
			buf[w] = c
			w++
			continue
		}
		if c != tokenSep {
			if c == tokenNonASCII {
				w = start + 1
			}
			b.ek.buf = buf[:w]
			if w > start+1 {
				b.addTail(start)
			} else {
				b.ek.buf = buf[:start]
			}
			return i, c
		}
		if w > start+1 {
			b.ek.buf = buf[:w]
			b.addTail(start)
			start = len(b.ek.buf)
			buf[start] = keyToken
			w = start + 1
		}
	}
	b.ek.buf = buf[:w]
	if w > start+1 {
		b.addTail(start)
	} else {
		b.ek.buf = buf[:start]
	}
	return len(s), tokenSep
}

// dataString adds the tokens of s, a string of the event's data as
// event.DataStrings yields it (the fallback of data), and notes whether
// it could be the key of a Change object: event.ChangedFields finds one
// case-insensitively, and such a key is one of the strings DataStrings
// yields, so only data with a string equal to "change" under ASCII case
// folding needs decoding. (encoding/json also folds the Kelvin sign, long
// s and dotted/dotless i onto ASCII letters; "change" has none of them.)
func (b *keyBuilder) dataString(s string) {
	b.tokens(s)
	if len(s) == len("change") && equalFoldASCII(s, "change") {
		b.maybeChange = true
	}
}

// data adds the token keys of the strings of e.Data (every object key and
// string value, event.DataStrings) and then its changed-field keys
// (event.ChangedFields). walkData does both in one pass over data without
// escapes; anything else goes, after undoing what walkData added, to
// those reference definitions.
func (b *keyBuilder) data(e *event.Event) {
	if len(e.Data) == 0 {
		return
	}
	mark := len(b.ek.ends)
	ok := b.walkData(e.Data)
	if ok {
		for _, f := range b.changed {
			b.field(keyChanged, f)
		}
	}
	clear(b.changed) // they alias the data: not kept past this event
	b.changed = b.changed[:0]
	if ok {
		return
	}
	b.truncate(mark)
	b.maybeChange = false
	event.DataStrings(e.Data, b.dataFn)
	if b.maybeChange {
		for _, f := range e.ChangedFields() {
			b.field(keyChanged, f)
		}
	}
}

// walkData adds the token keys of the strings of d and collects in
// b.changed the keys of its Change objects, as event.ChangedFields
// decodes them: the members of the top-level object whose key is
// "change" in any case, merged in order, an object adding its keys and
// null dropping those before; any other Change value, or a top-level value
// other than an object or null, is a decoding error (no changed fields).
// It reports false, having added some keys, unless d is one valid JSON
// value without backslashes, its strings valid UTF-8, nested at most 64
// deep: there the strings of d are its literals byte for byte.
func (b *keyBuilder) walkData(d []byte) bool {
	const (
		valueNext = iota
		keyNext
		afterValue
	)
	var stack [64]byte // open containers: '{' or '['
	n := 0
	changeDepth := 0 // n inside the open Change object, 0 when none is open
	changeErr := false
	state := valueNext
	i := 0
	for {
		i = skipJSONSpace(d, i)
		if i >= len(d) {
			if state != afterValue || n != 0 {
				return false
			}
			if changeErr {
				b.changed = b.changed[:0]
			}
			return true
		}
		c := d[i]
		switch state {
		case keyNext:
			if c != '"' {
				return false
			}
			j := b.jsonString(d, i)
			if j < 0 {
				return false
			}
			key := d[i+1 : j-1]
			if i = skipJSONSpace(d, j); i >= len(d) || d[i] != ':' {
				return false
			}
			i++
			if n == changeDepth {
				b.changed = append(b.changed, unsafe.String(unsafe.SliceData(key), len(key)))
			} else if n == 1 && len(key) == len("change") && equalFoldASCII(unsafe.String(&key[0], len(key)), "change") {
				if i = skipJSONSpace(d, i); i < len(d) {
					switch d[i] {
					case '{':
						changeDepth = 2
					case 'n':
						b.changed = b.changed[:0]
					default:
						changeErr = true
					}
				}
			}
			state = valueNext
		case afterValue:
			if n == 0 {
				return false
			}
			top := stack[n-1]
			switch {
			case c == ',':
				i++
				state = valueNext
				if top == '{' {
					state = keyNext
				}
			case top == '{' && c == '}' || top == '[' && c == ']':
				if n == changeDepth {
					changeDepth = 0
				}
				n--
				i++
			default:
				return false
			}
		default: // valueNext
			if n == 0 && c != '{' && c != 'n' {
				changeErr = true // not an object: no changed fields
			}
			switch {
			case c == '{' || c == '[':
				if n == len(stack) {
					return false
				}
				stack[n] = c
				n++
				i = skipJSONSpace(d, i+1)
				if i < len(d) && (c == '{' && d[i] == '}' || c == '[' && d[i] == ']') {
					if n == changeDepth {
						changeDepth = 0
					}
					n--
					i++
					state = afterValue
				} else if c == '{' {
					state = keyNext
				}
				continue
			case c == '"':
				i = b.jsonString(d, i)
			case c == '-' || '0' <= c && c <= '9':
				i = scanJSONNumber(d, i)
			case c == 't':
				i = scanJSONLiteral(d, i, "true")
			case c == 'f':
				i = scanJSONLiteral(d, i, "false")
			case c == 'n':
				i = scanJSONLiteral(d, i, "null")
			default:
				return false
			}
			if i < 0 {
				return false
			}
			state = afterValue
		}
	}
}

// jsonString adds the token keys of the string literal at d[i] (a quote)
// and returns the index after it, or -1 if it is unterminated or holds a
// backslash, a control byte or bytes that are not UTF-8.
func (b *keyBuilder) jsonString(d []byte, i int) int {
	rest := d[i+1:]
	j, stop := b.asciiTokens(unsafe.String(unsafe.SliceData(rest), len(rest)), len(rest))
	switch stop {
	case tokenQuote:
		return i + 2 + j
	case tokenNonASCII:
		k := bytes.IndexByte(rest[j:], '"')
		if k < 0 {
			return -1
		}
		s := rest[:j+k]
		for _, c := range s[j:] {
			if c < 0x20 || c == '\\' {
				return -1
			}
		}
		if !utf8.Valid(s[j:]) {
			return -1
		}
		event.Tokenize(unsafe.String(unsafe.SliceData(s), len(s)), b.tokenFn)
		return i + 2 + len(s)
	}
	return -1
}

// addTail adds the key b.ek.buf[lo:], just appended, unless the event
// already has it, in which case it is dropped from the buffer.
func (b *keyBuilder) addTail(lo int) {
	if 2*(len(b.ek.ends)+1) > len(b.slots) {
		b.grow()
	}
	k := b.ek.buf[lo:]
	h := maphash.Bytes(keySetSeed, k)
	mask := uint64(len(b.slots) - 1)
	i := h & mask
	for s := b.slots[i]; s != 0; s = b.slots[i] {
		if b.ek.hashes[s-1] == h && bytes.Equal(b.ek.key(int(s-1)), k) {
			b.ek.buf = b.ek.buf[:lo]
			return
		}
		i = (i + 1) & mask
	}
	b.ek.ends = append(b.ek.ends, uint32(len(b.ek.buf)))
	b.ek.hashes = append(b.ek.hashes, h)
	b.slots[i] = int32(len(b.ek.ends))
}

// grow doubles the dedupe table, for events with many keys (a big data
// payload).
func (b *keyBuilder) grow() {
	b.slots = make([]int32, 2*len(b.slots))
	b.rehash()
}

func (b *keyBuilder) rehash() {
	mask := uint64(len(b.slots) - 1)
	for j, h := range b.ek.hashes {
		i := h & mask
		for b.slots[i] != 0 {
			i = (i + 1) & mask
		}
		b.slots[i] = int32(j + 1)
	}
}

// truncate drops the keys after the first n.
func (b *keyBuilder) truncate(n int) {
	if n == len(b.ek.ends) {
		return
	}
	lo := uint32(0)
	if n > 0 {
		lo = b.ek.ends[n-1]
	}
	b.ek.buf, b.ek.ends, b.ek.hashes = b.ek.buf[:lo], b.ek.ends[:n], b.ek.hashes[:n]
	clear(b.slots)
	b.rehash()
}

// tokenByte maps a byte to itself lower-cased if it is an ASCII letter or
// digit, else to its class: tokenNonASCII, tokenQuote, tokenBad (a
// backslash or a control byte, which end a JSON string's fast path) or
// tokenSep (any other ASCII separator). Letters and digits are all above
// the classes.
var tokenByte = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = tokenNonASCII
		case 'A' <= c && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		case asciiAlnum[c]:
			t[c] = byte(c)
		case c == '"':
			t[c] = tokenQuote
		case c == '\\' || c < 0x20:
			t[c] = tokenBad
		default:
			t[c] = tokenSep
		}
	}
	return t
}()

const (
	tokenNonASCII = 0
	tokenSep      = 1
	tokenQuote    = 2
	tokenBad      = 3
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
