package embedded

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
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

// errTornTail marks the end of the valid records of a log file.
var errTornTail = errors.New("torn or corrupt record")

// replayWAL calls fn with the payload of every intact record of the file,
// in order. The first record that is short or fails its checksum ends the
// replay: when truncate is set the file is cut there (a crash mid-write
// leaves exactly such a tail, and its batch was never acknowledged),
// otherwise the damage is reported as corruption.
func replayWAL(path string, truncate bool, log *slog.Logger, fn func(payload []byte) error) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var (
		off     int64
		hdr     [walHeaderSize]byte
		payload []byte
		records int
	)
	for {
		_, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			return nil
		}
		bad := ""
		if err != nil {
			bad = "short header"
		} else {
			n := binary.LittleEndian.Uint32(hdr[:])
			if int64(n) > st.Size()-off-walHeaderSize || n > maxRecordSize {
				bad = fmt.Sprintf("length %d beyond end of file", n)
			} else {
				payload = slices.Grow(payload[:0], int(n))[:n]
				if _, err := io.ReadFull(r, payload); err != nil {
					bad = "short payload"
				} else if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
					bad = "checksum mismatch"
				}
			}
		}
		if bad != "" {
			if !truncate {
				return fmt.Errorf("%w: log %s at offset %d: %s", errTornTail, filepath.Base(path), off, bad)
			}
			log.Warn("embedded: dropping torn tail of write-ahead log",
				"file", path, "offset", off, "droppedBytes", st.Size()-off, "reason", bad, "intactRecords", records)
			if err := f.Truncate(off); err != nil {
				return fmt.Errorf("truncate torn log tail: %w", err)
			}
			return f.Sync()
		}
		if err := fn(payload); err != nil {
			return fmt.Errorf("log %s at offset %d: %w", filepath.Base(path), off, err)
		}
		off += walHeaderSize + int64(len(payload))
		records++
	}
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
