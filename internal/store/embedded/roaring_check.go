package embedded

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// checkRoaring accepts exactly the serialized bitmaps whose containers
// roaring's Bitmap.Validate accepts once FromBuffer has read them, in time
// linear in the bitmap. Validate compares every pair of runs of a run
// container: a text token in most rows of a day partition is stored as
// run containers of ~2,000 runs each, and validating its posting took
// ~85 % of a one-word query's CPU at 10M events (2 ms per partition).
//
// b must be a buffer FromBuffer read without error: the framing (cookie,
// header, container lengths) is then known to be whole, and this walks it
// the same way as roaring's readFrom does.
func checkRoaring(b []byte) error {
	const (
		serialCookieNoRunContainer = 12346
		serialCookie               = 12347
		noOffsetThreshold          = 4
		arrayMaxSize               = 4096
	)
	if len(b) < 4 {
		return errRoaringFraming
	}
	cookie := binary.LittleEndian.Uint32(b)
	b = b[4:]
	var size int
	var isRun []byte
	switch {
	case cookie&0xFFFF == serialCookie:
		size = int(cookie>>16) + 1
		n := (size + 7) / 8
		if len(b) < n {
			return errRoaringFraming
		}
		isRun, b = b[:n], b[n:]
	case cookie == serialCookieNoRunContainer:
		if len(b) < 4 {
			return errRoaringFraming
		}
		size, b = int(binary.LittleEndian.Uint32(b)), b[4:]
		if size > 1<<16 {
			return errRoaringFraming
		}
	default:
		return errRoaringFraming
	}
	if len(b) < 4*size {
		return errRoaringFraming
	}
	header, b := b[:4*size], b[4*size:]
	if isRun == nil || size >= noOffsetThreshold {
		if len(b) < 4*size {
			return errRoaringFraming
		}
		b = b[4*size:]
	}
	for i := range size {
		key := binary.LittleEndian.Uint16(header[4*i:])
		if i > 0 && key <= binary.LittleEndian.Uint16(header[4*(i-1):]) {
			return errors.New("container keys out of order")
		}
		card := int(binary.LittleEndian.Uint16(header[4*i+2:])) + 1
		switch {
		case isRun != nil && isRun[i/8]&(1<<(i%8)) != 0:
			if len(b) < 2 {
				return errRoaringFraming
			}
			runs := int(binary.LittleEndian.Uint16(b))
			if len(b) < 2+4*runs {
				return errRoaringFraming
			}
			if err := checkRuns(b[2 : 2+4*runs]); err != nil {
				return err
			}
			b = b[2+4*runs:]
		case card > arrayMaxSize:
			if len(b) < 8192 {
				return errRoaringFraming
			}
			ones := 0
			for w := 0; w < 8192; w += 8 {
				ones += bits.OnesCount64(binary.LittleEndian.Uint64(b[w:]))
			}
			if ones != card {
				return errors.New("bitmap container cardinality does not match its bits")
			}
			b = b[8192:]
		default:
			if len(b) < 2*card {
				return errRoaringFraming
			}
			prev := -1
			for j := 0; j < 2*card; j += 2 {
				v := int(binary.LittleEndian.Uint16(b[j:]))
				if v <= prev {
					return errors.New("array container out of order")
				}
				prev = v
			}
			b = b[2*card:]
		}
	}
	return nil
}

// checkRuns checks a run container's (start, length-1) pairs: at least
// one, none past 65535, sorted, and neither overlapping nor touching (a
// gap of at least one value between runs). Checking neighbours is enough:
// sorted, separated neighbours separate every pair, which is what
// Validate checks pair by pair.
func checkRuns(runs []byte) error {
	if len(runs) == 0 {
		return errors.New("run container without runs")
	}
	for i := 0; i < len(runs); i += 4 {
		start, length := int(binary.LittleEndian.Uint16(runs[i:])), int(binary.LittleEndian.Uint16(runs[i+2:]))
		if start+length > 0xFFFF {
			return errors.New("run past the end of its container")
		}
	}
	for i := 4; i < len(runs); i += 4 {
		prevLast := int(binary.LittleEndian.Uint16(runs[i-4:])) + int(binary.LittleEndian.Uint16(runs[i-2:]))
		if int(binary.LittleEndian.Uint16(runs[i:])) <= prevLast+1 {
			return errors.New("runs out of order, overlapping or touching")
		}
	}
	return nil
}

var errRoaringFraming = errors.New("roaring framing")
