package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/audittrail/audittrail/internal/event"
)

// errBadEncoding means bytes that passed their checksum still do not decode:
// a bug or deliberate tampering, reported as corruption.
var errBadEncoding = errors.New("embedded: malformed event encoding")

// appendEvent writes the binary form of e. Lists and data keep the
// difference between nil and empty (a count of n+1, 0 meaning nil) so that
// an event reads back exactly as it was appended.
func appendEvent(b []byte, e *event.Event) []byte {
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendVarint(b, e.Occurred)
	for _, s := range [...]string{e.ID, e.CompanyID, e.ProjectID, string(e.Level), e.UserID, e.Action,
		e.Type, e.ActorID, e.Device, e.Method, e.Geo, e.RemoteAddress} {
		b = appendString(b, s)
	}
	b = appendList(b, e.LoginIDs)
	b = appendList(b, e.Tenants)
	if e.Data == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(e.Data))+1)
		b = append(b, e.Data...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, l []string) []byte {
	if l == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(l))+1)
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadEncoding
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadEncoding
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errBadEncoding
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

// decodeEvent reads one event written by appendEvent. The result owns its
// memory: nothing aliases b. Its strings are cut from one copy of the bytes
// that hold them all, and its two lists share one slice: three
// allocations per event with Data, where a copy per field took about
// fifteen (a page decodes a hundred events).
func decodeEvent(b []byte) (event.Event, error) {
	d := decoder{b: b}
	var e event.Event
	e.Seq = d.uvarint()
	e.Occurred = d.varint()
	first := len(b) - len(d.b)
	// The fields' spans in b: the twelve strings, then each list's items.
	var spanBuf [32][2]int
	spans := spanBuf[:0]
	for range numStringFields {
		spans = append(spans, d.span(len(b)))
	}
	var lists [2]uint64 // an item count plus one, 0 meaning nil
	for i := range lists {
		lists[i] = d.uvarint()
		if d.err != nil || lists[i] == 0 {
			continue
		}
		if lists[i]-1 > uint64(len(d.b)) { // each item takes at least one byte
			d.err = errBadEncoding
			break
		}
		for range lists[i] - 1 {
			spans = append(spans, d.span(len(b)))
		}
	}
	last := len(b) - len(d.b)
	if n := d.uvarint(); n > 0 {
		// make, not append to nil: empty data written as empty must not
		// read back as absent (found by FuzzDecodeEvent).
		b := d.bytes(n - 1)
		e.Data = append(make([]byte, 0, len(b)), b...)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errBadEncoding
	}
	if d.err != nil {
		return event.Event{}, fmt.Errorf("decode event: %w", d.err)
	}
	all := string(b[first:last])
	str := func(sp [2]int) string { return all[sp[0]-first : sp[1]-first] }
	for i, f := range [numStringFields]*string{&e.ID, &e.CompanyID, &e.ProjectID, (*string)(&e.Level), &e.UserID, &e.Action,
		&e.Type, &e.ActorID, &e.Device, &e.Method, &e.Geo, &e.RemoteAddress} {
		*f = str(spans[i])
	}
	items := spans[numStringFields:]
	if lists[0] > 0 || lists[1] > 0 {
		out := make([]string, len(items))
		for i, sp := range items {
			out[i] = str(sp)
		}
		if lists[0] > 0 {
			e.LoginIDs = out[: lists[0]-1 : lists[0]-1]
		}
		if lists[1] > 0 {
			e.Tenants = out[len(out)-int(lists[1]-1):]
		}
	}
	return e, nil
}

// numStringFields is how many plain strings appendEvent writes.
const numStringFields = 12

// span skips a length-prefixed string and returns where its bytes lie in
// the input, whose whole length is n.
func (d *decoder) span(n int) [2]int {
	l := d.uvarint()
	lo := n - len(d.b)
	d.bytes(l)
	if d.err != nil {
		return [2]int{lo, lo}
	}
	return [2]int{lo, lo + int(l)}
}

// encodedKey reads the ID and CompanyID of an encoded event without
// decoding the rest. The bytes were written by appendEvent in this process
// or passed their checksum; a malformed prefix gives empty strings.
func encodedKey(b []byte) (id, company string) {
	d := decoder{b: b}
	d.uvarint()
	d.varint()
	id = d.string()
	company = d.string()
	return id, company
}
