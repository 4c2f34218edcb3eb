package ledgertest

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/transparency-dev/merkle/compact"

	"github.com/audittrail/audittrail/internal/ledger"
)

// Mem is the reference TreeStore: everything in maps, nothing durable
// beyond the value (Reopen shares the data, like a restart would).
type Mem struct {
	d *memData
	// closed belongs to this handle, not to the shared data.
	closed bool
}

type memData struct {
	mu       sync.Mutex
	position uint64
	trees    map[ledger.TreeID]*memTree
}

type memTree struct {
	size  uint64
	root  []byte
	nodes map[compact.NodeID][]byte
	seqs  map[uint64]uint64
	cps   []ledger.StoredCheckpoint
}

var _ ledger.TreeStore = (*Mem)(nil)

func NewMem() *Mem { return &Mem{d: &memData{trees: map[ledger.TreeID]*memTree{}}} }

// Reopen returns a new handle on the same data.
func (m *Mem) Reopen() *Mem { return &Mem{d: m.d} }

func (m *Mem) lock() error {
	m.d.mu.Lock()
	if m.closed {
		m.d.mu.Unlock()
		return ledger.ErrClosed
	}
	return nil
}

func (m *Mem) Load(context.Context) (ledger.State, error) {
	if err := m.lock(); err != nil {
		return ledger.State{}, err
	}
	defer m.d.mu.Unlock()
	st := ledger.State{Position: m.d.position}
	for t, mt := range m.d.trees {
		st.Trees = append(st.Trees, ledger.TreeState{Tree: t, Size: mt.size, Root: mt.root})
	}
	sort.Slice(st.Trees, func(i, j int) bool { return st.Trees[i].Tree.String() < st.Trees[j].Tree.String() })
	return st, nil
}

func (m *Mem) Position(context.Context) (uint64, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.d.mu.Unlock()
	return m.d.position, nil
}

func (m *Mem) Tree(_ context.Context, t ledger.TreeID) (ledger.TreeState, error) {
	if err := m.lock(); err != nil {
		return ledger.TreeState{}, err
	}
	defer m.d.mu.Unlock()
	ts := ledger.TreeState{Tree: t}
	if mt := m.d.trees[t]; mt != nil {
		ts.Size, ts.Root = mt.size, mt.root
	}
	return ts, nil
}

func (m *Mem) Commit(_ context.Context, c ledger.Commit) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.d.mu.Unlock()
	if c.After != m.d.position {
		return fmt.Errorf("%w: after %d, committed %d", ledger.ErrConflict, c.After, m.d.position)
	}
	for _, ta := range c.Trees {
		size := uint64(0)
		if mt := m.d.trees[ta.Tree]; mt != nil {
			size = mt.size
		}
		if ta.OldSize != size || ta.NewSize != ta.OldSize+uint64(len(ta.Seqs)) {
			return fmt.Errorf("%w: %s at %d, committed %d", ledger.ErrConflict, ta.Tree, ta.OldSize, size)
		}
	}
	for _, ta := range c.Trees {
		mt := m.d.trees[ta.Tree]
		if mt == nil {
			mt = &memTree{nodes: map[compact.NodeID][]byte{}, seqs: map[uint64]uint64{}}
			m.d.trees[ta.Tree] = mt
		}
		for _, n := range ta.Nodes {
			mt.nodes[n.ID] = bytes.Clone(n.Hash)
		}
		for i, s := range ta.Seqs {
			mt.seqs[s] = ta.OldSize + uint64(i)
		}
		mt.size, mt.root = ta.NewSize, bytes.Clone(ta.Root)
	}
	m.d.position = c.Position
	return nil
}

func (m *Mem) Nodes(_ context.Context, t ledger.TreeID, ids []compact.NodeID) ([][]byte, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.d.mu.Unlock()
	mt := m.d.trees[t]
	out := make([][]byte, len(ids))
	for i, id := range ids {
		var h []byte
		if mt != nil && id.Level < 64 {
			if _, end := id.Coverage(); end <= mt.size {
				h = mt.nodes[id]
			}
		}
		if h == nil {
			return nil, fmt.Errorf("%w: node %d/%d of %s", ledger.ErrBadSize, id.Level, id.Index, t)
		}
		out[i] = bytes.Clone(h)
	}
	return out, nil
}

func (m *Mem) FindSeq(_ context.Context, t ledger.TreeID, seq uint64) (uint64, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.d.mu.Unlock()
	if mt := m.d.trees[t]; mt != nil {
		if i, ok := mt.seqs[seq]; ok {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: seq %d in %s", ledger.ErrNotFound, seq, t)
}

func (m *Mem) PutCheckpoint(_ context.Context, t ledger.TreeID, cp ledger.StoredCheckpoint) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.d.mu.Unlock()
	mt := m.d.trees[t]
	if mt == nil || cp.Size == 0 || cp.Size > mt.size {
		return fmt.Errorf("%w: checkpoint of size %d", ledger.ErrBadSize, cp.Size)
	}
	if n := len(mt.cps); n > 0 {
		last := mt.cps[n-1].Size
		if cp.Size == last {
			return nil
		}
		if cp.Size < last {
			return fmt.Errorf("%w: checkpoint %d after %d", ledger.ErrConflict, cp.Size, last)
		}
	}
	mt.cps = append(mt.cps, ledger.StoredCheckpoint{Size: cp.Size, Note: bytes.Clone(cp.Note)})
	return nil
}

func (m *Mem) Checkpoint(_ context.Context, t ledger.TreeID, size uint64) (ledger.StoredCheckpoint, error) {
	if err := m.lock(); err != nil {
		return ledger.StoredCheckpoint{}, err
	}
	defer m.d.mu.Unlock()
	if mt := m.d.trees[t]; mt != nil {
		for _, cp := range mt.cps {
			if cp.Size == size {
				return cp, nil
			}
		}
	}
	return ledger.StoredCheckpoint{}, fmt.Errorf("%w: checkpoint %d of %s", ledger.ErrNotFound, size, t)
}

func (m *Mem) LatestCheckpoint(_ context.Context, t ledger.TreeID) (ledger.StoredCheckpoint, error) {
	if err := m.lock(); err != nil {
		return ledger.StoredCheckpoint{}, err
	}
	defer m.d.mu.Unlock()
	if mt := m.d.trees[t]; mt != nil && len(mt.cps) > 0 {
		return mt.cps[len(mt.cps)-1], nil
	}
	return ledger.StoredCheckpoint{}, fmt.Errorf("%w: no checkpoint of %s", ledger.ErrNotFound, t)
}

func (m *Mem) Checkpoints(_ context.Context, t ledger.TreeID, from uint64, limit int) ([]ledger.StoredCheckpoint, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.d.mu.Unlock()
	var out []ledger.StoredCheckpoint
	if mt := m.d.trees[t]; mt != nil {
		for _, cp := range mt.cps {
			if cp.Size >= from && len(out) < limit {
				out = append(out, cp)
			}
		}
	}
	return out, nil
}

func (m *Mem) Close() error {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	m.closed = true
	return nil
}
