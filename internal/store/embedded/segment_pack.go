package embedded

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// A packed column (segment version 5) holds n unsigned integers in groups
// of packGroup, each group frame-of-reference coded: its smallest value,
// then every value's difference from it in the fewest bits that hold the
// group's largest difference. A value is read in O(1) (one header, one
// unaligned 8-byte load), so the columns stay random-access while sorted
// or nearly sorted data (times, Seq, offsets) takes a few bits per row
// instead of 4 or 8 bytes.
//
//	headers: ceil(n/packGroup) × (base uint64, data offset uint32, width uint8, 3 zero bytes)
//	data:    per group, its values' differences, width bits each, LSB first, byte-padded
//	slack:   8 zero bytes, so that the last value can be read with an 8-byte load
//
// Widths above packMaxBits are stored as 64 (whole little-endian words):
// a value at bit shift 0-7 must fit in one 8-byte load.
const (
	packGroup   = 128
	packHeader  = 16
	packSlack   = 8
	packMaxBits = 56
)

// appendPacked appends vals as a packed column.
func appendPacked(dst []byte, vals []uint64) []byte {
	ng := (len(vals) + packGroup - 1) / packGroup
	hdrAt := len(dst)
	dst = append(dst, make([]byte, ng*packHeader)...)
	dataAt := len(dst)
	for g := range ng {
		grp := vals[g*packGroup : min(len(vals), (g+1)*packGroup)]
		base := grp[0]
		for _, v := range grp {
			base = min(base, v)
		}
		var or uint64
		for _, v := range grp {
			or |= v - base
		}
		width := bits.Len64(or)
		if width > packMaxBits {
			width = 64
		}
		h := dst[hdrAt+g*packHeader : hdrAt+(g+1)*packHeader]
		binary.LittleEndian.PutUint64(h, base)
		binary.LittleEndian.PutUint32(h[8:], uint32(len(dst)-dataAt))
		h[12] = byte(width)
		if width == 64 {
			for _, v := range grp {
				dst = binary.LittleEndian.AppendUint64(dst, v-base)
			}
			continue
		}
		var acc uint64
		nacc := 0
		for _, v := range grp {
			d := v - base
			acc |= d << nacc
			nacc += width
			for nacc >= 8 {
				dst = append(dst, byte(acc))
				acc >>= 8
				nacc -= 8
			}
			// The bits of d that did not fit in acc (width up to 56 and
			// nacc up to 7 before the add: never more than 63 bits).
		}
		if nacc > 0 {
			dst = append(dst, byte(acc))
		}
	}
	return append(dst, make([]byte, packSlack)...)
}

// packedCol reads a packed column checked by parsePacked.
type packedCol struct {
	hdr  []byte
	data []byte // the groups' data and the slack
}

var errPacked = errors.New("malformed packed column")

// parsePacked checks that b is a packed column of exactly n values whose
// every read stays within b, so that get needs no bounds checks of its own
// beyond Go's.
func parsePacked(b []byte, n int) (packedCol, error) {
	ng := (n + packGroup - 1) / packGroup
	if n < 0 || len(b) < ng*packHeader+packSlack {
		return packedCol{}, errPacked
	}
	c := packedCol{hdr: b[:ng*packHeader], data: b[ng*packHeader:]}
	dataLen := uint64(len(c.data) - packSlack)
	end := uint64(0)
	for g := range ng {
		h := c.hdr[g*packHeader:]
		off, width := uint64(binary.LittleEndian.Uint32(h[8:])), int(h[12])
		if width > packMaxBits && width != 64 || h[13]|h[14]|h[15] != 0 {
			return packedCol{}, errPacked
		}
		cnt := uint64(min(packGroup, n-g*packGroup))
		need := (cnt*uint64(width) + 7) / 8
		// Groups lie one after another: nothing unread hides between them.
		if off != end || need > dataLen-off {
			return packedCol{}, errPacked
		}
		end = off + need
	}
	if end != dataLen {
		return packedCol{}, errPacked
	}
	return c, nil
}

// get returns value i (0 ≤ i < n).
func (c *packedCol) get(i int) uint64 {
	h := c.hdr[(i/packGroup)*packHeader:]
	base, off, width := binary.LittleEndian.Uint64(h), uint(binary.LittleEndian.Uint32(h[8:])), uint(h[12])
	j := uint(i % packGroup)
	if width == 64 {
		return base + binary.LittleEndian.Uint64(c.data[off+8*j:])
	}
	bit := j * width
	v := binary.LittleEndian.Uint64(c.data[off+bit/8:]) >> (bit % 8)
	return base + v&(1<<width-1)
}
