package embedded

import (
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
)

// Helpers for the external format measurements (format_stats_test.go),
// which need the benchmark's trail generator: internal/bench imports this
// package, so they cannot live in it.

func init() {
	if n, err := strconv.Atoi(os.Getenv("AUDITTRAIL_MERGE_BLOCK_ROWS")); err == nil && validBlockRows(segVersion, n) {
		mergeBlockRows = n
	}
	if n, err := strconv.Atoi(os.Getenv("AUDITTRAIL_FLUSH_BLOCK_ROWS")); err == nil && validBlockRows(segVersion, n) {
		flushBlockRows = n
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// WriteSegmentForTest numbers evs by Seq from 1 (in place), files them
// in a memtable and writes them as one segment in dir the way the
// engine's flush does. It returns the path and the CPU time of the
// segment write alone.
// ver names the segment version to write (4 to 8), for before/after
// figures of the same rows; rpb the rows per block of a version 8 segment
// with a zstd dictionary (flushBlockRows: the flush writer itself).
func WriteSegmentForTest(dir string, evs []event.Event, ver, rpb int) (string, time.Duration, error) {
	m := newMemtable()
	for i := range evs {
		evs[i].Seq = uint64(i + 1)
		m.add(&evs[i], appendEvent(nil, &evs[i]), indexEvent(&evs[i]))
	}
	m.gen = 1
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return "", 0, err
	}
	defer enc.Close()
	e := &Engine{segDir: dir, zenc: enc}
	c0 := cpuTime()
	var path string
	switch ver {
	case segVersionV4:
		path, err = writeSegmentV4(dir, m, enc)
	case segVersion:
		if rpb == flushBlockRows {
			path, err = e.writeMemtableSegment(m)
		} else {
			path, err = writeSegmentBlocks(dir, m, enc, ver, rpb)
		}
	default:
		path, err = writeSegmentVersion(dir, m, enc, ver)
	}
	return path, cpuTime() - c0, err
}

// SectionSizesForTest returns the name and length of every section of
// the segment at path, and its rows.
func SectionSizesForTest(path string) (names []string, sizes []int, rows int, file int, err error) {
	s, err := openSegment(path)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	defer s.close()
	for i := range numSections {
		names = append(names, sectionNames[i])
		sizes = append(sizes, len(s.sec[i]))
	}
	return names, sizes, s.n, len(s.mm), nil
}

// DecodeRowsForTest opens the segment at path and decodes each of rows
// with a cold block cache (no LRU: every row decodes its block), as a
// page of a selective query whose rows lie in different blocks does. It
// returns the CPU time per row.
func DecodeRowsForTest(path string, rows []int, rounds int) (time.Duration, error) {
	s, err := openSegment(path)
	if err != nil {
		return 0, err
	}
	defer s.close()
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	c0 := cpuTime()
	for range rounds {
		bc := newBlockCache(nil)
		for _, r := range rows {
			if _, err := bc.event(s, r, dec); err != nil {
				return 0, err
			}
		}
	}
	return (cpuTime() - c0) / time.Duration(rounds*len(rows)), nil
}

// SegVersion is the segment version writers write; MergeBlockRows the
// block size of merge outputs.
const SegVersion = segVersion

func MergeBlockRows() int { return mergeBlockRows }

// FlushBlockRows is the block size of flushed segments with a dictionary.
func FlushBlockRows() int { return flushBlockRows }

// FlushCPU files the events of fb into a memtable, then writes it into dir
// as the engine's flush does, and returns the CPU time of the write alone
// (BenchmarkFlush).
func (fb *FilingBench) FlushCPU(dir string) (time.Duration, error) {
	m := newMemtable()
	for i := range fb.evs {
		m.add(&fb.evs[i], fb.encs[i], fb.keys[i])
	}
	m.settle()
	m.gen = 1
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return 0, err
	}
	defer enc.Close()
	e := &Engine{segDir: dir, zenc: enc}
	c0 := cpuTime()
	_, err = e.writeMemtableSegment(m)
	return cpuTime() - c0, err
}
