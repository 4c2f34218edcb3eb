package embedded

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"slices"
	"unicode/utf8"

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
// writer only files them.
type eventKeys struct {
	keys   []string
	hashes []uint64
}

func indexEvent(e *event.Event) eventKeys {
	keys := indexKeys(e)
	hs := make([]uint64, len(keys))
	for i, k := range keys {
		hs[i] = postingHash(k)
	}
	return eventKeys{keys, hs}
}

// postingHash keys the memtable's posting map: an integer key is far
// cheaper for the writer to look up than the string.
func postingHash(k string) uint64 { return maphash.String(keySetSeed, k) }

// indexKeys returns the distinct posting keys of e. It must agree exactly
// with query.Query.Match; the differential tests hold it to that.
func indexKeys(e *event.Event) []string {
	keys := make([]string, 0, 64)
	var set keySet
	add := func(k string) { keys = set.add(keys, k) }
	add(pkey(keyCompany, e.CompanyID))
	switch e.Level {
	case event.LevelProject:
		add(pkey(keyProject, e.ProjectID))
	case event.LevelCompany:
		add(string(keyLevelComp))
	}
	add(pkey(keyUser, e.UserID))
	add(pkey(keyAction, e.Action))
	add(pkey(keyActor, e.ActorID))
	add(pkey(keyDevice, e.Device))
	add(pkey(keyType, e.Type))
	add(pkey(keyMethod, e.Method))
	add(pkey(keyGeo, e.Geo))
	add(pkey(keyAddr, e.RemoteAddress))
	for _, s := range e.LoginIDs {
		add(pkey(keyLoginID, s))
	}
	for _, s := range e.Tenants {
		add(pkey(keyTenant, s))
	}
	if len(e.Tenants) == 0 {
		add(string(keyNoTenant))
	}
	for _, f := range changedFields(e) {
		add(pkey(keyChanged, f))
	}
	var buf []byte
	tokens := func(s string) { buf = tokenKeys(buf, s, add) }
	for _, s := range [...]string{e.UserID, e.ActorID, e.Action, e.Type, e.Device, e.Method, e.Geo, e.RemoteAddress} {
		tokens(s)
	}
	for _, s := range e.LoginIDs {
		tokens(s)
	}
	for _, s := range e.Tenants {
		tokens(s)
	}
	dataStrings(e.Data, tokens)
	if set.overflow {
		slices.Sort(keys)
		keys = slices.Compact(keys)
	}
	return keys
}

// keySet dedupes the keys of one event without allocating: an
// open-addressing table of indexes into the key list. An event with more
// distinct keys than keySetMax (a big data payload) is deduped by sorting
// at the end instead.
type keySet struct {
	slots    [2 * keySetMax]int32 // index+1 into keys; 0 = empty
	overflow bool
}

const keySetMax = 128

func (s *keySet) add(keys []string, k string) []string {
	if s.overflow {
		return append(keys, k)
	}
	if len(keys) >= keySetMax {
		s.overflow = true
		return append(keys, k)
	}
	i := maphash.String(keySetSeed, k) & (2*keySetMax - 1)
	for s.slots[i] != 0 {
		if keys[s.slots[i]-1] == k {
			return keys
		}
		i = (i + 1) & (2*keySetMax - 1)
	}
	keys = append(keys, k)
	s.slots[i] = int32(len(keys))
	return keys
}

var keySetSeed = maphash.MakeSeed()

// tokenKeys calls add with the token posting key of every token of s, as
// event.Tokenize defines tokens. ASCII text, the common case, is
// tokenised here with one allocation per key; anything else goes through
// event.Tokenize itself.
func tokenKeys(buf []byte, s string, add func(string)) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			event.Tokenize(s, func(t string) { add(pkey(keyToken, t)) })
			return buf
		}
	}
	start := -1
	flush := func(end int) {
		buf = append(buf[:0], keyToken)
		for _, c := range []byte(s[start:end]) {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf = append(buf, c)
		}
		add(string(buf))
		start = -1
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			flush(i)
		}
	}
	if start >= 0 {
		flush(len(s))
	}
	return buf
}

// changedFields is event.ChangedFields without the cost of decoding data
// that cannot hold a Change object: encoding/json matches the key
// case-insensitively, and an escape could spell it, hence the checks.
func changedFields(e *event.Event) []string {
	if len(e.Data) == 0 {
		return nil
	}
	if bytes.IndexByte(e.Data, '\\') < 0 && !containsFoldASCII(e.Data, "change") {
		return nil
	}
	return e.ChangedFields()
}

func containsFoldASCII(b []byte, lower string) bool {
	for i := 0; i+len(lower) <= len(b); i++ {
		j := 0
		for ; j < len(lower); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == len(lower) {
			return true
		}
	}
	// encoding/json also folds the Kelvin sign and long s onto k and s;
	// "change" has neither, so ASCII folding is exact here.
	return false
}

// dataStrings is event.DataStrings made fast for the common case: in a
// valid JSON document without escapes, every string literal is an object
// key or a string value, which is exactly what DataStrings yields. Anything
// else goes to the reference implementation.
func dataStrings(data json.RawMessage, fn func(s string)) {
	if len(data) == 0 {
		return
	}
	if bytes.IndexByte(data, '\\') >= 0 || !utf8.Valid(data) || !json.Valid(data) {
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
		fn(string(data[i+1 : i+1+j]))
		i += j + 1
	}
}
