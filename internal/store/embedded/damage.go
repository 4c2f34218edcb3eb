package embedded

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/audittrail/audittrail/internal/event"
	"github.com/audittrail/audittrail/internal/store"
)

// Damage is one piece of stored data the engine found damaged: at Open (a
// torn log tail, a damaged log record, a segment failing a checksum) or
// later, when a read failed its checksum. The engine never serves a row
// it cannot verify: at Open it keeps every intact row and sets the rest
// aside, naming them here; a read that finds damage later answers
// store.ErrCorrupt and is recorded here until the next start repairs it.
type Damage struct {
	At time.Time `json:"at"`
	// File is the damaged file's name (segments/<gen>.seg, wal/<gen>.wal).
	File string `json:"file"`
	// Kind: "log-tail" (a crash cut the last write: never acknowledged),
	// "log-record" (an acknowledged record failed its checksum),
	// "segment" (a segment failed a checksum at open), "read" (a read
	// failed its checksum while serving).
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	// RowsLost counts the events that could not be recovered; -1 when
	// unknown (the damage hides even how many there were).
	RowsLost int `json:"rowsLost"`
	// LostRows names them as row ranges of the segment ("rows 32-63"), or
	// as a byte range of the log.
	LostRows []string `json:"lostRows,omitempty"`
	// LostIDs are "company/id" of lost events where the damage left them
	// readable (at most maxLostIDs).
	LostIDs []string `json:"lostIds,omitempty"`
	// RowsKept counts the rows of the file kept and served.
	RowsKept int `json:"rowsKept"`
	// Repaired: everything intact was kept and the file rewritten or cut
	// so that it verifies; RowsLost says whether anything was lost.
	Repaired bool `json:"repaired"`
	// Quarantined is where the damaged original was kept for inspection.
	Quarantined string `json:"quarantined,omitempty"`
}

// maxLostIDs bounds the ids listed in one Damage.
const maxLostIDs = 1000

// damagedSuffix marks a damaged file set aside; it is never read again.
const damagedSuffix = ".damaged"

// Damage returns every damage found since Open, oldest first.
func (e *Engine) Damage() []Damage {
	e.damageMu.Lock()
	defer e.damageMu.Unlock()
	return slices.Clone(e.damage)
}

func (e *Engine) reportDamage(d Damage) {
	if d.At.IsZero() {
		d.At = time.Now().UTC()
	}
	e.damageMu.Lock()
	e.damage = append(e.damage, d)
	e.damageMu.Unlock()
	level := "error"
	if d.Repaired && d.RowsLost == 0 {
		level = "warn"
	}
	attrs := []any{"file", d.File, "kind", d.Kind, "reason", d.Reason, "rowsLost", d.RowsLost,
		"rowsKept", d.RowsKept, "repaired", d.Repaired}
	if len(d.LostRows) > 0 {
		attrs = append(attrs, "lostRows", strings.Join(d.LostRows, ", "))
	}
	if len(d.LostIDs) > 0 {
		attrs = append(attrs, "lostIds", strings.Join(d.LostIDs, ", "))
	}
	if d.Quarantined != "" {
		attrs = append(attrs, "quarantined", d.Quarantined)
	}
	if level == "warn" {
		e.log.Warn("embedded: damaged data repaired", attrs...)
	} else {
		e.log.Error("embedded: damaged data: rows lost", attrs...)
	}
}

// noteReadDamage records a checksum failure met while serving (the bytes
// changed on disk after Open verified them). Each distinct failure is
// recorded once; the read itself answers the error.
func (e *Engine) noteReadDamage(err error) {
	if err == nil || !errors.Is(err, store.ErrCorrupt) {
		return
	}
	reason := err.Error()
	e.damageMu.Lock()
	for _, d := range e.damage {
		if d.Kind == "read" && d.Reason == reason {
			e.damageMu.Unlock()
			return
		}
	}
	e.damageMu.Unlock()
	file := ""
	if _, rest, ok := strings.Cut(reason, "segment "); ok {
		file = filepath.Join(segDirName, strings.TrimSuffix(strings.Fields(rest)[0], ":"))
	}
	e.reportDamage(Damage{File: file, Kind: "read", Reason: reason + " (restart to repair: intact rows are kept, the rest named)", RowsLost: -1})
}

// verifyLazy checks the sections openSegment leaves to each read (blocks
// and postings), so that damage is found and repaired at Open rather than
// by a search.
func (s *segment) verifyLazy() error {
	for i := range numSections {
		if lazySections[i] && crc32.Checksum(s.sec[i], castagnoli) != s.crcs[i] {
			return corruptf("segment %s: section %d checksum mismatch", filepath.Base(s.path), i)
		}
	}
	return nil
}

// salvage is what can be trusted of a damaged segment file.
type salvage struct {
	events []event.Event
	encs   [][]byte
	lost   Damage
}

// salvageSegment reads every block of a damaged segment that passes its own
// checksum. The blocks hold whole events (Seq and time included), so every
// other section can be rebuilt from them; a block that fails loses its
// rows, named from the key column when that is intact.
func salvageSegment(path string, dec *zstd.Decoder) salvage {
	name := filepath.Join(segDirName, filepath.Base(path))
	sv := salvage{lost: Damage{File: name, Kind: "segment", RowsLost: -1}}
	b, err := os.ReadFile(path)
	if err != nil {
		sv.lost.Reason = fmt.Sprintf("unreadable: %v", err)
		return sv
	}
	fail := func(format string, args ...any) salvage {
		sv.lost.Reason = fmt.Sprintf(format, args...)
		return sv
	}
	if len(b) < len(segMagic)+segTrailerSize {
		return fail("too short (%d bytes): nothing can be read", len(b))
	}
	tr := b[len(b)-segTrailerSize:]
	footerOff := binary.LittleEndian.Uint64(tr)
	footerEnd := uint64(len(b) - segTrailerSize)
	// The section count tells the version apart when meta is damaged.
	nsec := int(binary.LittleEndian.Uint32(tr[8:]))
	if string(tr[16:]) != segMagic || (nsec != numSections && nsec != numSectionsV4) ||
		footerOff > footerEnd || footerEnd-footerOff != uint64(nsec*segFooterEntry) {
		return fail("trailer damaged: the sections cannot be found")
	}
	v4 := nsec == numSectionsV4
	// Rows per block: fixed before version 8, in meta since. Without meta
	// they are counted in the blocks (see below), which hold whole
	// length-prefixed events in every version.
	rpb := rowsPerBlockV5
	if v4 {
		rpb = rowsPerBlockV4
	}
	footer := b[footerOff:footerEnd]
	if crc32.Checksum(footer, castagnoli) != binary.LittleEndian.Uint32(tr[12:]) {
		return fail("footer checksum mismatch: the sections cannot be found")
	}
	var sec [numSections][]byte
	var ok [numSections]bool
	var bad []string
	for i := range nsec {
		e := footer[i*segFooterEntry:]
		off, ln := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
		if off > footerOff || ln > footerOff-off {
			bad = append(bad, fmt.Sprintf("section %d out of bounds", i))
			continue
		}
		sec[i] = b[off : off+ln]
		ok[i] = crc32.Checksum(sec[i], castagnoli) == binary.LittleEndian.Uint32(e[16:])
		if !ok[i] {
			bad = append(bad, sectionNames[i])
		}
	}
	sv.lost.Reason = "checksum mismatch in " + strings.Join(bad, ", ")
	// Rows: from meta when intact, else from the key offsets, else the
	// blocks' capacity (an upper bound).
	blocksOK := ok[secBlockOffs] && ok[secBlockCRCs] && len(sec[secBlockOffs]) >= 8 && len(sec[secBlockOffs])%8 == 0
	nb := 0
	if blocksOK {
		nb = len(sec[secBlockOffs])/8 - 1
	}
	n, exact := nb*rpb, false
	var meta segMeta
	metaOK := ok[secMeta] && json.Unmarshal(sec[secMeta], &meta) == nil && meta.Rows > 0
	rpbKnown := v4 || metaOK
	if metaOK && meta.Version >= segVersion8 {
		rpb, rpbKnown = meta.RowsPerBlock, validBlockRows(meta.Version, meta.RowsPerBlock)
	}
	if metaOK {
		n, exact = meta.Rows, true
	} else if v4 && ok[secKeyOffs] && len(sec[secKeyOffs]) >= 8 {
		n, exact = len(sec[secKeyOffs])/4-1, true
	}
	// key returns company/id of a row from the key column, if intact.
	var key func(row int) (string, bool)
	if v4 && ok[secKeyOffs] && ok[secKeyBytes] && len(sec[secKeyOffs]) == 4*(n+1) {
		key = func(row int) (string, bool) {
			klo, khi := binary.LittleEndian.Uint32(sec[secKeyOffs][4*row:]), binary.LittleEndian.Uint32(sec[secKeyOffs][4*row+4:])
			if klo > khi || int(khi) > len(sec[secKeyBytes]) {
				return "", false
			}
			company, id := splitKey(sec[secKeyBytes][klo:khi])
			return company + "/" + id, true
		}
	} else if koffs, err := parsePacked(sec[secKeyOffs], n+1); !v4 && exact && ok[secKeyOffs] && ok[secKeyBytes] && err == nil {
		key = func(row int) (string, bool) {
			klo, khi := koffs.get(row), koffs.get(row+1)
			if klo > khi || khi > uint64(len(sec[secKeyBytes])) {
				return "", false
			}
			k := sec[secKeyBytes][klo:khi]
			c, w := binary.Uvarint(k)
			if w <= 0 || c >= uint64(len(meta.Companies)) {
				return "", false
			}
			return meta.Companies[c] + "/" + string(k[w:]), true
		}
	}
	lostIDs := func(first, last int) {
		for row := first; key != nil && row <= last && len(sv.lost.LostIDs) < maxLostIDs; row++ {
			if k, ok := key(row); ok {
				sv.lost.LostIDs = append(sv.lost.LostIDs, k)
			}
		}
	}
	// Version 5 blocks need the segment's zstd dictionary: either copy
	// that passes its checksum will do.
	if !v4 && blocksOK {
		switch {
		case ok[secZDict] && len(sec[secZDict]) > 0, ok[secZDictCopy] && len(sec[secZDictCopy]) > 0:
			zdict := sec[secZDict]
			if !ok[secZDict] {
				zdict = sec[secZDictCopy]
			}
			// Version 7 stores it as a zstd frame; meta, which says the
			// version, may be the damaged section, so the bytes decide
			// (a raw dictionary is events, which do not decode as one).
			if raw, err := unpackZDict(zdict); err == nil && (!metaOK || meta.Version >= segVersion7) {
				zdict = raw
			}
			zd, err := newDictDecoder(zdict)
			if err != nil {
				blocksOK = false
				break
			}
			defer zd.Close()
			dec = zd
		case !ok[secZDict] && !ok[secZDictCopy]:
			blocksOK = false
		}
	}
	if !blocksOK {
		sv.lost.Reason += ": the event blocks cannot be located, every row is lost"
		if exact {
			sv.lost.RowsLost = n
			sv.lost.LostRows = []string{fmt.Sprintf("rows 0-%d", n-1)}
			lostIDs(0, n-1)
		}
		return sv
	}
	type blockSalvage struct {
		evs  []event.Event
		encs [][]byte
		err  error
	}
	blocks := make([]blockSalvage, nb)
	for blk := range nb {
		lo, hi := binary.LittleEndian.Uint64(sec[secBlockOffs][8*blk:]), binary.LittleEndian.Uint64(sec[secBlockOffs][8*blk+8:])
		b := &blocks[blk]
		b.evs, b.encs, b.err = salvageBlock(sec[secBlocks], lo, hi, binary.LittleEndian.Uint32(sec[secBlockCRCs][4*blk:]), dec)
	}
	if !rpbKnown {
		// Every block but the last holds rpb rows: any intact one says
		// how many (a version 8 merge output may hold 1 to 16).
		for blk := range nb - 1 {
			if blocks[blk].err == nil {
				rpb, rpbKnown = len(blocks[blk].evs), true
				break
			}
		}
		if nb == 1 {
			rpbKnown = true // rows 0 to n-1 whatever rpb is
			if blocks[0].err == nil {
				rpb = len(blocks[0].evs)
			}
		}
		if !exact {
			n = nb * rpb
		}
	}
	lost := 0
	// Without meta or key offsets every block but the last is known to
	// be full: the count stays exact unless the last block is lost (or
	// no intact block tells how many rows a block holds).
	lastKnown := exact
	exact = true
	for blk, b := range blocks {
		if b.err == nil {
			sv.events = append(sv.events, b.evs...)
			sv.encs = append(sv.encs, b.encs...)
			continue
		}
		if !rpbKnown {
			exact = false
			sv.lost.LostRows = append(sv.lost.LostRows, fmt.Sprintf("block %d of %d (%v)", blk, nb, b.err))
			continue
		}
		first, last := blk*rpb, min(n, (blk+1)*rpb)-1
		lost += last - first + 1
		if blk == nb-1 && !lastKnown {
			exact = false
		}
		sv.lost.LostRows = append(sv.lost.LostRows, fmt.Sprintf("rows %d-%d (block %d: %v)", first, last, blk, b.err))
		lostIDs(first, last)
	}
	if exact {
		sv.lost.RowsLost = lost
	}
	sv.lost.RowsKept = len(sv.events)
	return sv
}

var sectionNames = [numSections]string{
	secMeta: "meta", secOccurred: "occurred column", secSeq: "seq column", secBySeq: "seq order",
	secKeyOffs: "key offsets", secKeyBytes: "keys", secBlockOffs: "block offsets", secBlockCRCs: "block checksums",
	secBlocks: "event blocks", secDictOffs: "dictionary offsets", secDictKeys: "dictionary", secPostOffs: "posting offsets",
	secPostCRCs: "posting checksums", secPosts: "postings",
	secZDict: "zstd dictionary", secZDictCopy: "zstd dictionary copy",
}

// salvageBlock decodes one block if it passes its checksum.
func salvageBlock(blocks []byte, lo, hi uint64, crc uint32, dec *zstd.Decoder) ([]event.Event, [][]byte, error) {
	if lo > hi || hi > uint64(len(blocks)) {
		return nil, nil, errors.New("bad offsets")
	}
	comp := blocks[lo:hi]
	if crc32.Checksum(comp, castagnoli) != crc {
		return nil, nil, errors.New("checksum mismatch")
	}
	raw, err := dec.DecodeAll(comp, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("decompress: %w", err)
	}
	var evs []event.Event
	var encs [][]byte
	d := decoder{b: raw}
	for len(d.b) > 0 {
		enc := d.bytes(d.uvarint())
		if d.err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", len(evs), d.err)
		}
		ev, err := decodeEvent(enc)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", len(evs), err)
		}
		evs = append(evs, ev)
		encs = append(encs, bytes.Clone(enc))
	}
	return evs, encs, nil
}

// repairSegment replaces the damaged segment at path by one holding its
// intact rows (or removes it when none is), keeping the original as
// <path>.damaged. It returns the new segment, nil when none was written.
// The original is hard-linked aside before the atomic rename over it, so
// a crash at any point leaves either the damaged file (repaired again at
// the next start) or the repaired one.
func (e *Engine) repairSegment(path string, gen uint64) (*segment, error) {
	sv := salvageSegment(path, e.zdec)
	quarantine := path + damagedSuffix
	os.Remove(quarantine)
	if err := os.Link(path, quarantine); err != nil {
		return nil, fmt.Errorf("set aside damaged segment: %w", err)
	}
	sv.lost.Quarantined = filepath.Join(segDirName, filepath.Base(quarantine))
	var s *segment
	if len(sv.events) == 0 {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else {
		// writeSegment takes rows in Seq order, as a memtable holds them.
		idx := make([]int, len(sv.events))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(sv.events[a].Seq, sv.events[b].Seq) })
		m := newMemtable()
		m.gen = gen
		for _, i := range idx {
			m.add(&sv.events[i], sv.encs[i], indexEvent(&sv.events[i]))
		}
		written, err := e.writeMemtableSegment(m)
		if err != nil {
			return nil, fmt.Errorf("rewrite damaged segment: %w", err)
		}
		// A merged segment's name is not the one its generation gives.
		if written != path {
			if err := os.Rename(written, path); err != nil {
				return nil, fmt.Errorf("rename repaired segment: %w", err)
			}
		}
		if s, err = openSegment(path); err != nil {
			return nil, fmt.Errorf("reopen repaired segment: %w", err)
		}
	}
	if err := syncDir(e.segDir); err != nil {
		return nil, err
	}
	sv.lost.Repaired = true
	e.reportDamage(sv.lost)
	return s, nil
}
