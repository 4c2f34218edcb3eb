package embedded

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A log record is framed as [payload length uint32][crc32c(payload) uint32]
// [payload]. The payload's first byte is its kind.
const (
	walHeaderSize = 8
	// maxRecordSize caps a length read from disk so that a corrupt header
	// cannot make replay allocate gigabytes. One batch is at most 10,000
	// events of at most ~70 KiB each.
	maxRecordSize = 1 << 30

	recordBatch byte = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func walName(gen uint64) string { return fmt.Sprintf("%016x.wal", gen) }

// listWAL returns the generations of the log files in dir, oldest first.
func listWAL(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".wal")
		if !ok {
			continue
		}
		g, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens, nil
}

// beginRecord reserves a header in b; finishRecord fills it once the
// payload has been appended after it.
func beginRecord(b []byte) ([]byte, int) {
	return append(b, make([]byte, walHeaderSize)...), len(b)
}

func finishRecord(b []byte, start int) {
	payload := b[start+walHeaderSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
}

// replayWAL calls fn with the payload of every intact record of the file,
// in order, and returns what it found damaged.
//
// A record that fails its checksum while a valid record follows it was
// written, fsynced and acknowledged before those: it is damage, skipped
// and reported with whatever ids its bytes still show. Anything else that
// ends the readable records (a short header or payload, a length beyond
// the end, a bad last record) is, in the last file, the torn tail of a
// write a crash interrupted, never acknowledged: the file is cut there. In
// an older file, which was complete when the next one started, it is
// damage: the rest of the file is reported lost.
func replayWAL(path string, last bool, fn func(payload []byte) error) ([]Damage, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	name := filepath.Join(walDirName, filepath.Base(path))
	r := bufio.NewReaderSize(f, 1<<20)
	var (
		off     int64
		hdr     [walHeaderSize]byte
		payload []byte
		records int
		damage  []Damage
	)
	for {
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			return damage, nil
		}
		bad, whole := "", false
		n := int64(binary.LittleEndian.Uint32(hdr[:]))
		if err != nil {
			bad = "short header"
		} else if n > size-off-walHeaderSize || n > maxRecordSize {
			bad = fmt.Sprintf("length %d beyond end of file", n)
		} else {
			payload = slices.Grow(payload[:0], int(n))[:n]
			if _, err := io.ReadFull(r, payload); err != nil {
				bad = "short payload"
			} else if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
				bad, whole = "checksum mismatch", true
			}
		}
		if bad != "" {
			next := off + walHeaderSize + n
			if whole && validRecordAt(f, next, size) {
				d := lostRecord(payload)
				d.File, d.Kind = name, "log-record"
				d.Reason = fmt.Sprintf("record at offset %d (%d bytes): %s; later records are intact and kept", off, n+walHeaderSize, bad)
				d.LostRows = []string{fmt.Sprintf("bytes %d-%d", off, next-1)}
				damage = append(damage, d)
				off = next
				records++
				continue
			}
			if !last {
				damage = append(damage, Damage{File: name, Kind: "log-record", RowsLost: -1,
					Reason:   fmt.Sprintf("offset %d: %s; the %d bytes from there to the end of this older log cannot be read", off, bad, size-off),
					LostRows: []string{fmt.Sprintf("bytes %d-%d", off, size-1)}, RowsKept: records})
				return damage, nil
			}
			if err := f.Truncate(off); err != nil {
				return damage, fmt.Errorf("truncate torn log tail: %w", err)
			}
			if err := f.Sync(); err != nil {
				return damage, err
			}
			damage = append(damage, Damage{File: name, Kind: "log-tail", Repaired: true, RowsKept: records,
				Reason: fmt.Sprintf("torn tail at offset %d (%s): %d bytes of a write a crash interrupted, never acknowledged, cut off", off, bad, size-off)})
			return damage, nil
		}
		if err := fn(payload); err != nil {
			return damage, fmt.Errorf("log %s at offset %d: %w", filepath.Base(path), off, err)
		}
		off += walHeaderSize + n
		records++
	}
}

// validRecordAt reports whether an intact record starts at off.
func validRecordAt(f *os.File, off, size int64) bool {
	var hdr [walHeaderSize]byte
	if off+walHeaderSize > size {
		return false
	}
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return false
	}
	n := int64(binary.LittleEndian.Uint32(hdr[:]))
	if n == 0 || n > size-off-walHeaderSize || n > maxRecordSize {
		return false
	}
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off+walHeaderSize); err != nil {
		return false
	}
	return p[0] == recordBatch && crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(hdr[4:])
}

// lostRecord describes the events of a damaged batch record as far as its
// bytes still tell: their count and ids, unverified since the record
// failed its checksum. None of them is served.
func lostRecord(p []byte) Damage {
	d := Damage{RowsLost: -1}
	if len(p) == 0 || p[0] != recordBatch {
		return d
	}
	dec := decoder{b: p[1:]}
	n := dec.uvarint()
	if dec.err != nil || n > uint64(len(p)) {
		return d
	}
	var ids []string
	for range n {
		b := dec.bytes(dec.uvarint())
		if dec.err != nil {
			return d
		}
		if len(ids) < maxLostIDs {
			id, company := encodedKey(b)
			ids = append(ids, company+"/"+id+" (unverified)")
		}
	}
	d.RowsLost, d.LostIDs = int(n), ids
	return d
}

// syncDir makes a rename or file creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
