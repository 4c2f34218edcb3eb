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

func (d *decoder) list() []string {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	n--
	if n > uint64(len(d.b)) { // each entry takes at least one byte
		d.err = errBadEncoding
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string()
	}
	return out
}

// decodeEvent reads one event written by appendEvent. The result owns its
// memory: nothing aliases b.
func decodeEvent(b []byte) (event.Event, error) {
	d := decoder{b: b}
	var e event.Event
	e.Seq = d.uvarint()
	e.Occurred = d.varint()
	e.ID = d.string()
	e.CompanyID = d.string()
	e.ProjectID = d.string()
	e.Level = event.Level(d.string())
	e.UserID = d.string()
	e.Action = d.string()
	e.Type = d.string()
	e.ActorID = d.string()
	e.Device = d.string()
	e.Method = d.string()
	e.Geo = d.string()
	e.RemoteAddress = d.string()
	e.LoginIDs = d.list()
	e.Tenants = d.list()
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
	return e, nil
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
