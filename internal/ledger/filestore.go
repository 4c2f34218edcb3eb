package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/audittrail/audittrail/internal/filelock"
	"github.com/transparency-dev/merkle/compact"
)

// On-disk layout of a FileStore (every record carries a CRC-32C):
//
//	LOCK                     flock: one process at a time
//	manifest.snap            JSON snapshot {gen, position, trees[{tree,size,root}]}
//	manifest.log             records appended after the snapshot, one per commit
//	trees/<hex tree>/nodes   36-byte records: hash[32] crc[4], at post-order position
//	trees/<hex tree>/seqs    12-byte records: seq[8] crc[4], one per leaf
//	trees/<hex tree>/cp.dat  signed checkpoint notes, back to back
//	trees/<hex tree>/cp.idx  28-byte records: size[8] off[8] len[4] notecrc[4] crc[4]
//
// A commit writes and fsyncs the tree files first, then appends and fsyncs
// its manifest record: the record is the commit point. Recovery trusts the
// manifest, cuts every tree file back to the committed sizes (dropping
// what a crash left half written) and recomputes each root from its
// stored peaks, so data lost under an acknowledged commit is reported as
// ErrCorrupt instead of being served.
const (
	nodeRecSize  = 36
	seqRecSize   = 12
	cpIdxRecSize = 28
	snapshotName = "manifest.snap"
	manifestName = "manifest.log"
	treesDirName = "trees"
	maxNoteSize  = 64 << 10
)

// manifestLimit is how many bytes manifest.log may grow to before a
// snapshot replaces it (a variable so a test can make it small).
var manifestLimit int64 = 4 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileStore is the TreeStore of the embedded deployment: append-only files
// under one directory.
type FileStore struct {
	dir    string
	unlock func() error

	// commitMu serialises writers (Commit, PutCheckpoint); mu guards the
	// committed state that readers consult before reading files.
	commitMu sync.Mutex
	mu       sync.RWMutex
	closed   bool
	gen      uint64
	position uint64
	trees    map[TreeID]*fileTree
	manifest *os.File
	mfSize   int64
}

type fileTree struct {
	root         []byte
	size         uint64
	nodes, seqs  *os.File
	cpIdx, cpDat *os.File
	cpCount      uint64
	cpDatEnd     uint64
	latestCP     uint64
	hasCP        bool
	dirSynced    bool
}

var _ TreeStore = (*FileStore)(nil)

type manifestTree struct {
	Tree string `json:"tree"`
	Size uint64 `json:"size"`
	Root []byte `json:"root"`
}

type manifestRecord struct {
	Gen      uint64         `json:"gen"`
	Position uint64         `json:"position"`
	Trees    []manifestTree `json:"trees"`
}

// OpenFileStore opens (creating if needed) the store in dir and recovers
// it after a crash.
func OpenFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, treesDirName), 0o700); err != nil {
		return nil, fmt.Errorf("ledger store: %w", err)
	}
	unlock, err := filelock.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("ledger store %s: %w", dir, err)
	}
	s := &FileStore{dir: dir, unlock: unlock, trees: map[TreeID]*fileTree{}}
	if err := s.recover(); err != nil {
		s.closeFiles()
		unlock()
		return nil, err
	}
	return s, nil
}

func (s *FileStore) recover() error {
	committed := map[TreeID]manifestTree{}
	apply := func(r manifestRecord) error {
		s.gen, s.position = r.Gen, r.Position
		for _, mt := range r.Trees {
			t, err := ParseTreeID(mt.Tree)
			if err != nil {
				return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
			}
			committed[t] = mt
		}
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, snapshotName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("ledger store: read snapshot: %w", err)
	default:
		var r manifestRecord
		if err := decodeChecked(b, &r); err != nil {
			return fmt.Errorf("%w: snapshot: %v", ErrCorrupt, err)
		}
		if err := apply(r); err != nil {
			return err
		}
	}
	mf, err := os.OpenFile(filepath.Join(s.dir, manifestName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ledger store: open manifest: %w", err)
	}
	s.manifest = mf
	// The manifest's directory entry must be durable before any commit
	// relies on it.
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("ledger store: %w", err)
	}
	data, err := io.ReadAll(mf)
	if err != nil {
		return fmt.Errorf("ledger store: read manifest: %w", err)
	}
	// Records: len[4] crc[4] json. A torn or corrupt tail ends the log: its
	// commit never returned, since the fsync of the record is the commit.
	off := 0
	for off+8 <= len(data) {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > len(data)-off-8 || crc32.Checksum(data[off+8:off+8+n], castagnoli) != sum {
			break
		}
		var r manifestRecord
		if err := json.Unmarshal(data[off+8:off+8+n], &r); err != nil {
			break
		}
		if r.Gen > s.gen { // records at or below the snapshot's gen are in it
			if err := apply(r); err != nil {
				return err
			}
		}
		off += 8 + n
	}
	if err := mf.Truncate(int64(off)); err != nil {
		return fmt.Errorf("ledger store: trim manifest: %w", err)
	}
	if _, err := mf.Seek(int64(off), io.SeekStart); err != nil {
		return fmt.Errorf("ledger store: %w", err)
	}
	s.mfSize = int64(off)
	for t, mt := range committed {
		ft, err := s.openTree(t, false)
		if err != nil {
			return err
		}
		ft.size, ft.root = mt.Size, mt.Root
		if err := s.recoverTree(t, ft); err != nil {
			return err
		}
	}
	return nil
}

// recoverTree cuts the tree's files to what is committed and checks that
// the stored peaks still give the committed root.
func (s *FileStore) recoverTree(t TreeID, ft *fileTree) error {
	for _, f := range []struct {
		file *os.File
		want int64
	}{{ft.nodes, int64(nodeCount(ft.size)) * nodeRecSize}, {ft.seqs, int64(ft.size) * seqRecSize}} {
		fi, err := f.file.Stat()
		if err != nil {
			return fmt.Errorf("ledger store: %w", err)
		}
		if fi.Size() < f.want {
			return fmt.Errorf("%w: %s: %s holds %d bytes, the manifest commits %d", ErrCorrupt, t, fi.Name(), fi.Size(), f.want)
		}
		if fi.Size() > f.want {
			if err := f.file.Truncate(f.want); err != nil {
				return fmt.Errorf("ledger store: trim %s: %w", fi.Name(), err)
			}
		}
	}
	if ft.size > 0 {
		ids := compact.RangeNodes(0, ft.size, nil)
		hashes, err := s.readNodes(ft, ids)
		if err != nil {
			return fmt.Errorf("ledger store: %s: %w", t, err)
		}
		r, err := rangeFactory.NewRange(0, ft.size, hashes)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, t, err)
		}
		root, _ := r.GetRootHash(nil)
		if !bytes.Equal(root, ft.root) {
			return fmt.Errorf("%w: %s: stored nodes give root %x, the manifest commits %x", ErrCorrupt, t, root, ft.root)
		}
	}
	// Checkpoint index: keep the valid prefix.
	fi, err := ft.cpIdx.Stat()
	if err != nil {
		return fmt.Errorf("ledger store: %w", err)
	}
	n := uint64(fi.Size()) / cpIdxRecSize
	for n > 0 {
		rec, err := readCPIdx(ft.cpIdx, n-1)
		if err == nil {
			note := make([]byte, rec.length)
			if _, err := ft.cpDat.ReadAt(note, int64(rec.off)); err == nil && crc32.Checksum(note, castagnoli) == rec.noteCRC {
				ft.cpDatEnd = rec.off + uint64(rec.length)
				ft.latestCP, ft.hasCP = rec.size, true
				break
			}
		}
		n--
	}
	ft.cpCount = n
	if err := ft.cpIdx.Truncate(int64(n) * cpIdxRecSize); err != nil {
		return fmt.Errorf("ledger store: trim checkpoint index: %w", err)
	}
	return nil
}

func (s *FileStore) treeDir(t TreeID) string {
	return filepath.Join(s.dir, treesDirName, hex.EncodeToString([]byte(t.String())))
}

func (s *FileStore) openTree(t TreeID, create bool) (*fileTree, error) {
	if ft, ok := s.trees[t]; ok {
		return ft, nil
	}
	dir := s.treeDir(t)
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ledger store: %w", err)
		}
	}
	ft := &fileTree{dirSynced: !create}
	for _, f := range []struct {
		name string
		dst  **os.File
	}{{"nodes", &ft.nodes}, {"seqs", &ft.seqs}, {"cp.idx", &ft.cpIdx}, {"cp.dat", &ft.cpDat}} {
		flag := os.O_RDWR
		if create {
			flag |= os.O_CREATE
		}
		fh, err := os.OpenFile(filepath.Join(dir, f.name), flag, 0o600)
		if err != nil {
			ft.close()
			if !create && errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, t, err)
			}
			return nil, fmt.Errorf("ledger store: %w", err)
		}
		*f.dst = fh
	}
	s.trees[t] = ft
	return ft, nil
}

func (ft *fileTree) close() {
	for _, f := range []*os.File{ft.nodes, ft.seqs, ft.cpIdx, ft.cpDat} {
		if f != nil {
			f.Close()
		}
	}
}

func (s *FileStore) Load(context.Context) (State, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return State{}, ErrClosed
	}
	st := State{Position: s.position}
	for t, ft := range s.trees {
		if ft.size > 0 {
			st.Trees = append(st.Trees, TreeState{Tree: t, Size: ft.size, Root: ft.root})
		}
	}
	sort.Slice(st.Trees, func(i, j int) bool { return st.Trees[i].Tree.String() < st.Trees[j].Tree.String() })
	return st, nil
}

func (s *FileStore) Position(context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.position, nil
}

func (s *FileStore) Tree(_ context.Context, t TreeID) (TreeState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return TreeState{}, ErrClosed
	}
	ts := TreeState{Tree: t}
	if ft, ok := s.trees[t]; ok {
		ts.Size, ts.Root = ft.size, ft.root
	}
	return ts, nil
}

func (s *FileStore) Commit(_ context.Context, c Commit) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	closed, pos := s.closed, s.position
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if c.After != pos || c.Position < c.After {
		return fmt.Errorf("%w: commit after position %d, committed is %d", ErrConflict, c.After, pos)
	}
	rec := manifestRecord{Gen: s.gen + 1, Position: c.Position}
	for i := range c.Trees {
		ta := &c.Trees[i]
		if err := ta.Validate(); err != nil {
			return err
		}
		s.mu.Lock()
		ft, err := s.openTree(ta.Tree, true)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if ta.OldSize != ft.size {
			return fmt.Errorf("%w: %s: append at size %d, committed is %d", ErrConflict, ta.Tree, ta.OldSize, ft.size)
		}
		if err := writeTreeAppend(ft, ta); err != nil {
			return fmt.Errorf("ledger store: %s: %w", ta.Tree, err)
		}
		if !ft.dirSynced {
			// A new tree's directory entry must be durable before the
			// manifest names it.
			for _, d := range []string{s.treeDir(ta.Tree), filepath.Dir(s.treeDir(ta.Tree))} {
				if err := syncDir(d); err != nil {
					return fmt.Errorf("ledger store: %w", err)
				}
			}
			ft.dirSynced = true
		}
		rec.Trees = append(rec.Trees, manifestTree{Tree: ta.Tree.String(), Size: ta.NewSize, Root: ta.Root})
	}
	if err := s.appendManifest(rec); err != nil {
		return err
	}
	s.mu.Lock()
	s.gen, s.position = rec.Gen, rec.Position
	for i := range c.Trees {
		ft := s.trees[c.Trees[i].Tree]
		ft.size, ft.root = c.Trees[i].NewSize, bytes.Clone(c.Trees[i].Root)
	}
	s.mu.Unlock()
	if s.mfSize > manifestLimit {
		if err := s.snapshot(); err != nil {
			// The commit stands; the manifest just stays longer.
			return nil
		}
	}
	return nil
}

// Validate refuses a TreeAppend whose parts do not agree (sizes, node
// count and order, seqs, root), so no TreeStore persists a malformed tree.
func (ta *TreeAppend) Validate() error {
	if ta.NewSize != ta.OldSize+uint64(len(ta.Seqs)) || ta.NewSize <= ta.OldSize {
		return fmt.Errorf("%w: %s: sizes %d→%d with %d leaves", ErrBadSize, ta.Tree, ta.OldSize, ta.NewSize, len(ta.Seqs))
	}
	if uint64(len(ta.Nodes)) != nodeCount(ta.NewSize)-nodeCount(ta.OldSize) {
		return fmt.Errorf("%w: %s: %d nodes for sizes %d→%d", ErrBadSize, ta.Tree, len(ta.Nodes), ta.OldSize, ta.NewSize)
	}
	next := nodeCount(ta.OldSize)
	for _, n := range ta.Nodes {
		if postOrderPos(n.ID) != next || len(n.Hash) != 32 {
			return fmt.Errorf("%w: %s: node %+v out of order", ErrBadSize, ta.Tree, n.ID)
		}
		next++
	}
	for i := 1; i < len(ta.Seqs); i++ {
		if ta.Seqs[i] <= ta.Seqs[i-1] {
			return fmt.Errorf("%w: %s: seqs not ascending", ErrBadSize, ta.Tree)
		}
	}
	if len(ta.Root) != 32 {
		return fmt.Errorf("%w: %s: root of %d bytes", ErrBadSize, ta.Tree, len(ta.Root))
	}
	return nil
}

func writeTreeAppend(ft *fileTree, ta *TreeAppend) error {
	buf := make([]byte, 0, len(ta.Nodes)*nodeRecSize)
	for _, n := range ta.Nodes {
		buf = appendNodeRec(buf, postOrderPos(n.ID), n.Hash)
	}
	if _, err := ft.nodes.WriteAt(buf, int64(nodeCount(ta.OldSize))*nodeRecSize); err != nil {
		return err
	}
	buf = buf[:0]
	for i, seq := range ta.Seqs {
		buf = appendSeqRec(buf, ta.OldSize+uint64(i), seq)
	}
	if _, err := ft.seqs.WriteAt(buf, int64(ta.OldSize)*seqRecSize); err != nil {
		return err
	}
	if err := ft.nodes.Sync(); err != nil {
		return err
	}
	return ft.seqs.Sync()
}

// Checksums cover the record's position too, so a record copied to the
// wrong place fails like a corrupted one.
func appendNodeRec(dst []byte, pos uint64, hash []byte) []byte {
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], pos)
	crc := crc32.Update(crc32.Checksum(p[:], castagnoli), castagnoli, hash)
	dst = append(dst, hash...)
	return binary.LittleEndian.AppendUint32(dst, crc)
}

func appendSeqRec(dst []byte, index, seq uint64) []byte {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], index)
	binary.LittleEndian.PutUint64(b[8:], seq)
	dst = append(dst, b[8:]...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(b[:], castagnoli))
}

func (s *FileStore) appendManifest(r manifestRecord) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("ledger store: %w", err)
	}
	rec := make([]byte, 8, 8+len(body))
	binary.LittleEndian.PutUint32(rec, uint32(len(body)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(body, castagnoli))
	rec = append(rec, body...)
	if _, err := s.manifest.WriteAt(rec, s.mfSize); err != nil {
		return fmt.Errorf("ledger store: write manifest: %w", err)
	}
	if err := s.manifest.Sync(); err != nil {
		return fmt.Errorf("ledger store: sync manifest: %w", err)
	}
	s.mfSize += int64(len(rec))
	return nil
}

// snapshot writes the whole committed state to manifest.snap (atomically)
// and empties manifest.log. A crash in between is harmless: records whose
// gen the snapshot covers are skipped on recovery.
func (s *FileStore) snapshot() error {
	s.mu.RLock()
	r := manifestRecord{Gen: s.gen, Position: s.position}
	for t, ft := range s.trees {
		if ft.size > 0 {
			r.Trees = append(r.Trees, manifestTree{Tree: t.String(), Size: ft.size, Root: ft.root})
		}
	}
	s.mu.RUnlock()
	b, err := encodeChecked(r)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, snapshotName), b); err != nil {
		return err
	}
	if err := s.manifest.Truncate(0); err != nil {
		return err
	}
	if err := s.manifest.Sync(); err != nil {
		return err
	}
	s.mfSize = 0
	return nil
}

// encodeChecked writes v as JSON behind a CRC-32C line.
func encodeChecked(v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(fmt.Appendf(nil, "%08x\n", crc32.Checksum(body, castagnoli)), body...), nil
}

func decodeChecked(b []byte, v any) error {
	head, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return errors.New("no checksum line")
	}
	if fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli)) != string(head) {
		return errors.New("checksum mismatch")
	}
	return json.Unmarshal(body, v)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snap-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// committedTree returns the tree's files and committed size for a reader.
func (s *FileStore) committedTree(t TreeID) (*fileTree, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, 0, ErrClosed
	}
	ft, ok := s.trees[t]
	if !ok {
		return nil, 0, nil
	}
	return ft, ft.size, nil
}

func (s *FileStore) Nodes(_ context.Context, t TreeID, ids []compact.NodeID) ([][]byte, error) {
	ft, size, err := s.committedTree(t)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !nodeWithin(id, size) {
			return nil, fmt.Errorf("%w: node %d/%d is outside %s of size %d", ErrBadSize, id.Level, id.Index, t, size)
		}
	}
	return s.readNodes(ft, ids)
}

// nodeReadGap is how many unwanted node records a read may span to join
// two wanted ones: one pread of a few KiB costs less than two syscalls.
const nodeReadGap = 64

// readNodes reads the asked nodes in as few preads as their positions
// allow: a proof's or a batch's nodes that lie close in the file (a run of
// leaves and the parents between them) come in one read.
func (s *FileStore) readNodes(ft *fileTree, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	order := make([]int, len(ids))
	pos := make([]uint64, len(ids))
	for i, id := range ids {
		order[i], pos[i] = i, postOrderPos(id)
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(pos[a], pos[b]) })
	var buf []byte
	for start := 0; start < len(order); {
		end := start + 1 // order[start:end] is one read
		for end < len(order) && pos[order[end]]-pos[order[end-1]] <= nodeReadGap {
			end++
		}
		first, last := pos[order[start]], pos[order[end-1]]
		n := int(last-first+1) * nodeRecSize
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := ft.nodes.ReadAt(buf, int64(first)*nodeRecSize); err != nil {
			return nil, readFailed(err, "read nodes %d to %d", first, last)
		}
		for _, i := range order[start:end] {
			off := int(pos[i]-first) * nodeRecSize
			rec := buf[off : off+nodeRecSize]
			if want := appendNodeRec(nil, pos[i], rec[:32]); !bytes.Equal(want, rec) {
				return nil, fmt.Errorf("%w: node %d fails its checksum", ErrCorrupt, pos[i])
			}
			out[i] = bytes.Clone(rec[:32])
		}
		start = end
	}
	return out, nil
}

// seqWindow bounds the leaf-seq records FindSeqs reads in one go past a
// found leaf (12 bytes each). A variable for the tests.
var seqWindow uint64 = 4096

// FindSeqs locates ascending seqs (see SeqBatchFinder): a binary search
// for the first, then a forward scan of the records that follow, which is
// where the rest of a stream batch lies; a seq beyond the scanned window
// gets a new search from there.
func (s *FileStore) FindSeqs(_ context.Context, t TreeID, seqs []uint64) ([]uint64, error) {
	ft, size, err := s.committedTree(t)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(seqs))
	var buf []byte
	lo := uint64(0)
	for k := 0; k < len(seqs); {
		idx, v, err := searchSeq(ft, lo, size, seqs[k])
		if err != nil {
			return nil, err
		}
		if idx >= size || v != seqs[k] {
			return nil, fmt.Errorf("%w: no leaf with seq %d in %s", ErrNotFound, seqs[k], t)
		}
		out[k] = idx
		k++
		// Scan forward: leaf idx+1.. have the next seqs of this tree.
		n := min(size-idx-1, seqWindow)
		if k == len(seqs) || n == 0 {
			lo = idx + 1
			continue
		}
		if span := seqs[len(seqs)-1] - seqs[k] + 1; span < n {
			n = span // leaves have distinct seqs: no need to read further
		}
		if cap(buf) < int(n)*seqRecSize {
			buf = make([]byte, int(n)*seqRecSize)
		}
		buf = buf[:int(n)*seqRecSize]
		if _, err := ft.seqs.ReadAt(buf, int64(idx+1)*seqRecSize); err != nil {
			return nil, readFailed(err, "read leaf seqs %d to %d", idx+1, idx+n)
		}
		j := uint64(0)
		for ; k < len(seqs) && j < n; j++ {
			i := idx + 1 + j
			rec := buf[j*seqRecSize : (j+1)*seqRecSize]
			v := binary.LittleEndian.Uint64(rec[:8])
			if !bytes.Equal(appendSeqRec(nil, i, v), rec) {
				return nil, fmt.Errorf("%w: leaf seq %d fails its checksum", ErrCorrupt, i)
			}
			switch {
			case v == seqs[k]:
				out[k] = i
				k++
			case v > seqs[k]:
				return nil, fmt.Errorf("%w: no leaf with seq %d in %s", ErrNotFound, seqs[k], t)
			}
		}
		lo = idx + 1 + j
	}
	return out, nil
}

// searchSeq finds the first leaf in [lo, size) whose seq is >= seq, and
// that seq (index size when there is none).
func searchSeq(ft *fileTree, lo, size, seq uint64) (uint64, uint64, error) {
	var rerr error
	read := func(i uint64) uint64 {
		var rec [seqRecSize]byte
		if _, err := ft.seqs.ReadAt(rec[:], int64(i)*seqRecSize); err != nil {
			rerr = readFailed(err, "read leaf seq %d", i)
			return 0
		}
		v := binary.LittleEndian.Uint64(rec[:8])
		if !bytes.Equal(appendSeqRec(nil, i, v), rec[:]) {
			rerr = fmt.Errorf("%w: leaf seq %d fails its checksum", ErrCorrupt, i)
		}
		return v
	}
	hi := size
	for lo < hi && rerr == nil {
		mid := lo + (hi-lo)/2
		if read(mid) < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if rerr != nil || lo >= size {
		return lo, 0, rerr
	}
	v := read(lo)
	return lo, v, rerr
}

func (s *FileStore) FindSeq(_ context.Context, t TreeID, seq uint64) (uint64, error) {
	ft, size, err := s.committedTree(t)
	if err != nil {
		return 0, err
	}
	idx, v, err := searchSeq(ft, 0, size, seq)
	if err != nil {
		return 0, err
	}
	if idx < size && v == seq {
		return idx, nil
	}
	return 0, fmt.Errorf("%w: no leaf with seq %d in %s", ErrNotFound, seq, t)
}

type cpIdxRec struct {
	size, off       uint64
	length, noteCRC uint32
}

func readCPIdx(f *os.File, i uint64) (cpIdxRec, error) {
	var b [cpIdxRecSize]byte
	if _, err := f.ReadAt(b[:], int64(i)*cpIdxRecSize); err != nil {
		return cpIdxRec{}, readFailed(err, "read checkpoint index %d", i)
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return cpIdxRec{}, fmt.Errorf("%w: checkpoint index %d fails its checksum", ErrCorrupt, i)
	}
	return cpIdxRec{
		size:    binary.LittleEndian.Uint64(b[0:]),
		off:     binary.LittleEndian.Uint64(b[8:]),
		length:  binary.LittleEndian.Uint32(b[16:]),
		noteCRC: binary.LittleEndian.Uint32(b[20:]),
	}, nil
}

func (s *FileStore) PutCheckpoint(_ context.Context, t TreeID, cp StoredCheckpoint) error {
	if len(cp.Note) == 0 || len(cp.Note) > maxNoteSize || cp.Size == 0 {
		return fmt.Errorf("%w: checkpoint of size %d with a %d-byte note", ErrBadSize, cp.Size, len(cp.Note))
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	closed := s.closed
	ft := s.trees[t]
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if ft == nil || cp.Size > ft.size {
		return fmt.Errorf("%w: checkpoint of size %d beyond the committed tree %s", ErrBadSize, cp.Size, t)
	}
	if ft.hasCP && cp.Size == ft.latestCP {
		return nil
	}
	if ft.hasCP && cp.Size < ft.latestCP {
		return fmt.Errorf("%w: checkpoint of size %d after one of size %d", ErrConflict, cp.Size, ft.latestCP)
	}
	if _, err := ft.cpDat.WriteAt(cp.Note, int64(ft.cpDatEnd)); err != nil {
		return fmt.Errorf("ledger store: write checkpoint: %w", err)
	}
	if err := ft.cpDat.Sync(); err != nil {
		return fmt.Errorf("ledger store: sync checkpoint: %w", err)
	}
	var b [cpIdxRecSize]byte
	binary.LittleEndian.PutUint64(b[0:], cp.Size)
	binary.LittleEndian.PutUint64(b[8:], ft.cpDatEnd)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(cp.Note)))
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(cp.Note, castagnoli))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	if _, err := ft.cpIdx.WriteAt(b[:], int64(ft.cpCount)*cpIdxRecSize); err != nil {
		return fmt.Errorf("ledger store: write checkpoint index: %w", err)
	}
	if err := ft.cpIdx.Sync(); err != nil {
		return fmt.Errorf("ledger store: sync checkpoint index: %w", err)
	}
	s.mu.Lock()
	ft.cpCount++
	ft.cpDatEnd += uint64(len(cp.Note))
	ft.latestCP, ft.hasCP = cp.Size, true
	s.mu.Unlock()
	return nil
}

// checkpointFiles returns what a checkpoint reader needs under the lock.
func (s *FileStore) checkpointFiles(t TreeID) (*fileTree, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, 0, ErrClosed
	}
	ft := s.trees[t]
	if ft == nil {
		return nil, 0, nil
	}
	return ft, ft.cpCount, nil
}

func (s *FileStore) readCheckpoint(ft *fileTree, i uint64) (StoredCheckpoint, error) {
	rec, err := readCPIdx(ft.cpIdx, i)
	if err != nil {
		return StoredCheckpoint{}, err
	}
	note := make([]byte, rec.length)
	if _, err := ft.cpDat.ReadAt(note, int64(rec.off)); err != nil {
		return StoredCheckpoint{}, readFailed(err, "read checkpoint")
	}
	if crc32.Checksum(note, castagnoli) != rec.noteCRC {
		return StoredCheckpoint{}, fmt.Errorf("%w: checkpoint of size %d fails its checksum", ErrCorrupt, rec.size)
	}
	return StoredCheckpoint{Size: rec.size, Note: note}, nil
}

// searchCheckpoint returns the first index whose size >= size.
func (s *FileStore) searchCheckpoint(ft *fileTree, count, size uint64) (uint64, error) {
	lo, hi := uint64(0), count
	for lo < hi {
		mid := lo + (hi-lo)/2
		rec, err := readCPIdx(ft.cpIdx, mid)
		if err != nil {
			return 0, err
		}
		if rec.size < size {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func (s *FileStore) Checkpoint(_ context.Context, t TreeID, size uint64) (StoredCheckpoint, error) {
	ft, count, err := s.checkpointFiles(t)
	if err != nil {
		return StoredCheckpoint{}, err
	}
	if ft != nil {
		i, err := s.searchCheckpoint(ft, count, size)
		if err != nil {
			return StoredCheckpoint{}, err
		}
		if i < count {
			cp, err := s.readCheckpoint(ft, i)
			if err != nil || cp.Size == size {
				return cp, err
			}
		}
	}
	return StoredCheckpoint{}, fmt.Errorf("%w: no checkpoint of size %d for %s", ErrNotFound, size, t)
}

func (s *FileStore) LatestCheckpoint(_ context.Context, t TreeID) (StoredCheckpoint, error) {
	ft, count, err := s.checkpointFiles(t)
	if err != nil {
		return StoredCheckpoint{}, err
	}
	if ft == nil || count == 0 {
		return StoredCheckpoint{}, fmt.Errorf("%w: no checkpoint for %s", ErrNotFound, t)
	}
	return s.readCheckpoint(ft, count-1)
}

func (s *FileStore) Checkpoints(_ context.Context, t TreeID, from uint64, limit int) ([]StoredCheckpoint, error) {
	ft, count, err := s.checkpointFiles(t)
	if err != nil || ft == nil {
		return nil, err
	}
	i, err := s.searchCheckpoint(ft, count, from)
	if err != nil {
		return nil, err
	}
	var out []StoredCheckpoint
	for ; i < count && len(out) < limit; i++ {
		cp, err := s.readCheckpoint(ft, i)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, nil
}

// Close releases the files; later calls get ErrClosed.
func (s *FileStore) Close() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closeFiles()
	return s.unlock()
}

func (s *FileStore) closeFiles() {
	for _, ft := range s.trees {
		ft.close()
	}
	if s.manifest != nil {
		s.manifest.Close()
	}
}

// readFailed classifies a failed read inside committed data: the store was
// closed under a reader (ErrClosed), or the data is short (ErrCorrupt).
func readFailed(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w: %s", ErrClosed, what)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
}
