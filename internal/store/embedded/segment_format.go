package embedded

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A segment file is a run of sections followed by a footer and a trailer:
//
//	[section 0]…[section N-1]
//	footer:  N × (offset uint64, length uint64, crc32c uint32)
//	trailer: footer offset uint64, N uint32, crc32c(footer) uint32, magic [8]byte
//
// All integers are little-endian. Rows are numbered in the segment's sort
// order: Occurred descending, then Seq descending, which is query.Less's
// newest-first order, so a matching bitmap iterates in result order.
//
// Version 4 (N = 14) and versions 5 and 6 (N = 16) share the section
// numbers; where they differ, the v5 form is given after "v5:". Version 6
// is version 5 with other posting keys stored (segment_keys.go).
const (
	secMeta      = iota // JSON segMeta
	secOccurred         // n × int64; v5: packed column of Occurred with the sign bit flipped (order-preserving)
	secSeq              // n × uint64; v5: packed column
	secBySeq            // n × uint32: row numbers in ascending Seq order; v5: packed column
	secKeyOffs          // (n+1) × uint32 into secKeyBytes; v5: packed column
	secKeyBytes         // per row: company, 0x00, id; v5: uvarint index into meta.Companies, id
	secBlockOffs        // (blocks+1) × uint64 into secBlocks
	secBlockCRCs        // blocks × uint32, crc32c of each compressed block
	secBlocks           // zstd blocks of RowsPerBlock encoded events; v5: compressed with the segment's zstd dictionary
	secDictOffs         // (dictionary blocks+1) × uint32 into secDictKeys
	secDictKeys         // posting keys, sorted, front-coded in blocks; v5: a Huffman table, then blocks (see buildDict)
	secPostOffs         // (keys+1) × uint32 into secPosts; v5: packed column
	secPostCRCs         // ceil(keys/postingsPerCRC) × uint32, crc32c of each run of postings
	secPosts            // postings: see postingList and postingRoaring; v5: see appendPosting
	// Version 5 only.
	secZDict     // raw zstd dictionary of the blocks (a sample of the segment's events), possibly empty; v7: a zstd frame of it
	secZDictCopy // the same bytes again: a damaged dictionary alone must not lose every block
	numSections
	numSectionsV4 = secZDict
)

// Sections read whole at open are checked then; blocks and postings are
// checked one by one each time they are read, so that opening stays fast.
var lazySections = map[int]bool{secBlocks: true, secPosts: true}

const (
	segMagic       = "ATSEG01\n"
	segTrailerSize = 8 + 4 + 4 + 8
	segFooterEntry = 8 + 8 + 4
	// 4: type postings. 5: packed columns, company-coded keys, blocks
	// of 16 rows compressed with a zstd dictionary kept in the segment,
	// shorter postings. 6: the version 5 layout storing fewer keys
	// (segment_keys.go). 7: version 6 with the zstd dictionary sections
	// zstd-compressed (see packZDict). 8: version 7 whose blocks hold
	// meta.RowsPerBlock rows (a power of two up to rowsPerBlockV5: merge
	// outputs with a dictionary mergeBlockRows, the rest 16) in zstd frames
	// without a checksum (every block has its CRC32C). 9: version 8 whose
	// blocks hold up to maxBlockRows rows (flushes flushBlockRows), which a
	// build reading only version 8 would take for damage. Versions 4 to 8
	// are still read.
	segVersion   = segVersion9
	segVersion9  = 9
	segVersion8  = 8
	segVersion7  = 7
	segVersionV5 = 5
	segVersionV4 = 4
	// RowsPerBlock trades compression (bigger blocks) against the work
	// of decoding one row of a page (the whole block is decompressed).
	// The dictionary of version 5 makes small blocks compress well, so
	// a page row decodes half the bytes it did in version 4.
	rowsPerBlockV4 = 32
	rowsPerBlockV5 = 16
	segSuffix      = ".seg"

	// Most keys (unique tokens, rare users) have one or a few rows: a
	// roaring bitmap costs ~20 bytes for one row, a varint list ~2.
	postingList    byte = 1  // then uvarint count, uvarint row deltas
	postingRoaring byte = 2  // then a serialized roaring bitmap
	postingListMax      = 16 // version 4

	// Version 5 postings start with a uvarint head whose low two bits
	// say what follows (see appendPosting): most keys (unique tokens,
	// rare users and addresses) have one row, which then costs the
	// head alone, 1-3 bytes.
	postOne     = 0  // the row is head>>2
	postList    = 1  // head>>2 rows (2..postListMax) follow as uvarint gaps
	postRoaring = 2  // head is exactly 2; a serialized roaring bitmap follows
	postListMax = 48 // a list beats an array container plus its headers up to about here
	// postingsPerCRC postings share one checksum: a checksum each would
	// cost 4 bytes per key, more than most postings themselves.
	postingsPerCRC = 64
	// dictBlockKeys keys form one front-coded dictionary block: a lookup
	// binary-searches the blocks' first keys, then decodes at most one block.
	dictBlockKeys = 16
	// In version 5 the rest of a block, after its first key, starts with
	// one of these (see buildDict).
	dictRaw  byte = 0 // the front-coded keys as they are
	dictHuff byte = 1 // uvarint length, then the keys Huffman-coded with the section's table
)

// mergeBlockRows is the block size of merge outputs (version 8) that
// have a zstd dictionary. Searches run on merged partitions (after
// Compact, on nearly everything), and a selective page (one user's
// events) decodes about one block per row. TestFormatStats, 100k rows of
// the benchmark trail, block size: file B/row, CPU to decode one row of a
// page: 16: 265.7, 32-36 µs; 8: 271.6, 25 µs; 4: 287.2, 13-14 µs; 2:
// 299.0, 5.5-6.3 µs; 1: 316.2, 5.0 µs. The price is at write: each zstd
// frame resets the encoder, copying the dictionary (up to 512 KiB) and
// its 256 KiB hash table, ~40-60 µs a frame on the slow machine:
// BenchmarkMerge 11.8-13.1 cpu-µs/row at 16, 21.4-26.7 at 4, 33.9 at 2.
// 4 is where a page row costs a third while the bytes stay within the
// disk budget (+21.5 B/row, about 3 % of the JSON). A variable so that
// tests can measure other sizes (AUDITTRAIL_MERGE_BLOCK_ROWS).
var mergeBlockRows = 4

// flushBlockRows is the block size of flushed segments that have a zstd
// dictionary. Each zstd frame resets the encoder, which copies the
// dictionary (512 KiB in a 100k-event flush) and its 256 KiB hash table:
// at 16 rows a block that was ~2 µs of an event's ~29 µs of ingest CPU.
// BenchmarkLoad, 500k events, merging off, under load, alternated pairs:
// 16 rows 28.2 / 29.9 cpu-µs an event and 267 disk B; 64: 26.2 / 23.9 and
// 260 B; 128: 25.9 / 26.1 and 259 B; 128 rows without a dictionary 26.3 /
// 27.8 and 280 B. TestFormatStats (100k rows, under load): 16 rows 265.7
// B/row, write 12.6 µs/event, one page row decoded 39 µs; 64 rows 258.7,
// 9.6, 108 µs. A selective page read from flushed segments costs ~3x, but
// they are short-lived (merges rewrite them in mergeBlockRows blocks), and
// a broad query's first page decodes fewer blocks. A variable so that
// tests can measure other sizes (AUDITTRAIL_FLUSH_BLOCK_ROWS).
var flushBlockRows = 64

// maxBlockRows bounds the rows of a block of a version 9 segment: a zstd
// block holds at most 128 KiB, and 128 encoded events of the benchmark
// trail take ~64 KiB.
const maxBlockRows = 128

// validBlockRows reports whether a segment of version ver (8 or later) may
// hold n rows per block.
func validBlockRows(ver, n int) bool {
	most := maxBlockRows
	if ver < segVersion9 {
		most = rowsPerBlockV5
	}
	return n >= 1 && n <= most && n&(n-1) == 0
}

// blockRowsFor is the block size a segment of version ver with (or
// without) a zstd dictionary is written with, when want is asked for:
// without a dictionary a small block compresses badly, so it keeps 16.
func blockRowsFor(ver, want int, dict bool) int {
	if ver < segVersion8 || !dict {
		return rowsPerBlockV5
	}
	return want
}

// ErrVersion: the file was written by an incompatible version.
var ErrVersion = errors.New("embedded: unsupported segment version")

type segMeta struct {
	Version      int    `json:"version"`
	Rows         int    `json:"rows"`
	RowsPerBlock int    `json:"rowsPerBlock"`
	Keys         int    `json:"keys"`
	Gen          uint64 `json:"gen"` // covers every log generation ≤ Gen
	MinSeq       uint64 `json:"minSeq"`
	MaxSeq       uint64 `json:"maxSeq"`
	MinOccurred  int64  `json:"minOccurred"`
	MaxOccurred  int64  `json:"maxOccurred"`
	// Companies are the company IDs the key column refers to (version 5).
	Companies []string `json:"companies,omitempty"`
}

func segName(gen uint64) string { return fmt.Sprintf("%016x%s", gen, segSuffix) }

func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok {
		return 0, false
	}
	g, err := strconv.ParseUint(s, 16, 64)
	return g, err == nil
}
