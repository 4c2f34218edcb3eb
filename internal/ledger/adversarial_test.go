package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/internal/ledger"
	"github.com/audittrail/audittrail/internal/store/storetest"
)

// TestAdversarialVerifier feeds the pure verification functions forged
// checkpoints and proofs; every one must be refused with ErrVerify. A
// checkpoint's size and root are only trusted once VerifyCheckpoint passed
// its signed note, so forged sizes and roots are tried in the note (the
// forgedCheckpoints table) and, for proofs, against the verified values.
func TestAdversarialVerifier(t *testing.T) {
	ctx := context.Background()
	st := storetest.NewMemStore()
	e := newEnv(t, st, ledgertestMem())
	evs := storetest.Generate(21, 300, storetest.GenOptions{Companies: []string{"c1"}, Projects: []string{"P1", "P2"}, CompanyLevel: -1})
	appendEvents(t, st, evs[:150])
	e.sync(t)
	tr := ledger.TreeID{CompanyID: "c1", ProjectID: "P1"}
	other := ledger.TreeID{CompanyID: "c1", ProjectID: "P2"}
	older, err := e.l.CheckpointNow(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	otherCP, err := e.l.CheckpointNow(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, evs[150:])
	e.l.Notify()
	e.sync(t)
	newer, err := e.l.CheckpointNow(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	origin := e.l.Origin(tr)
	lines := byTree(t, st)[tr]
	const idx = 37
	incl, err := e.l.InclusionProof(ctx, tr, idx, newer.Size)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := e.l.ConsistencyProof(ctx, tr, older.Size, newer.Size)
	if err != nil {
		t.Fatal(err)
	}
	// The genuine articles pass.
	if _, err := ledger.VerifyCheckpoint(newer.Note, e.vkey, origin); err != nil {
		t.Fatalf("genuine checkpoint refused: %v", err)
	}
	if err := incl.VerifyEvent(lines[idx], newer); err != nil {
		t.Fatalf("genuine inclusion proof refused: %v", err)
	}
	if err := cons.Verify(older, newer); err != nil {
		t.Fatalf("genuine consistency proof refused: %v", err)
	}

	// Keys an attacker may hold: another key with our name, another name.
	impostor, _, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "k1"), "test-log")
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, err := ledger.LoadOrCreateKey(filepath.Join(t.TempDir(), "k2"), "someone")
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := strings.Cut(string(newer.Note), "\n\n")
	body += "\n"
	resign := func(text string, signers ...note.Signer) []byte {
		b, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sigOf := func(n []byte) string { _, sig, _ := strings.Cut(string(n), "\n\n"); return sig }
	replaceLine := func(i int, v string) string {
		ls := strings.Split(body, "\n")
		ls[i] = v
		return strings.Join(ls, "\n")
	}
	forgedCheckpoints := map[string][]byte{
		"signed by another key of the same name": resign(body, impostor),
		"signed by a stranger":                   resign(body, stranger),
		"size raised, signature kept":            []byte(replaceLine(1, "100000") + "\n" + sigOf(newer.Note)),
		"size lowered, signature kept":           []byte(replaceLine(1, "3") + "\n" + sigOf(newer.Note)),
		"root replaced, signature kept":          []byte(replaceLine(2, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") + "\n" + sigOf(newer.Note)),
		"time moved, signature kept":             []byte(replaceLine(3, "time 2001-01-01T00:00:00.000Z") + "\n" + sigOf(newer.Note)),
		"another tree's checkpoint":              otherCP.Note,
		"unsigned":                               []byte(body),
		"signature truncated":                    newer.Note[:len(newer.Note)-10],
		"signature bytes flipped":                flipSigByte(newer.Note),
		"empty":                                  nil,
		"garbage":                                []byte("not a note at all\n\n— x y\n"),
	}
	for name, n := range forgedCheckpoints {
		if cp, err := ledger.VerifyCheckpoint(n, e.vkey, origin); !errors.Is(err, ledger.ErrVerify) {
			t.Errorf("forged checkpoint %q: got %+v, %v; want ErrVerify", name, cp.Size, err)
		}
	}
	if _, err := ledger.VerifyCheckpoint(newer.Note, "test-log+00000000+AQID", origin); !errors.Is(err, ledger.ErrVerify) {
		t.Errorf("malformed verifier key: %v", err)
	}

	flip := func(h [][]byte, i int) [][]byte {
		out := make([][]byte, len(h))
		for j := range h {
			out[j] = bytes.Clone(h[j])
		}
		out[i][i%32] ^= 0x40
		return out
	}
	inclCases := map[string]func(p *ledger.InclusionProof, cp *ledger.Checkpoint){
		"first path hash flipped": func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Hashes = flip(p.Hashes, 0) },
		"last path hash flipped":  func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Hashes = flip(p.Hashes, len(p.Hashes)-1) },
		"path hash dropped":       func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Hashes = p.Hashes[:len(p.Hashes)-1] },
		"path hash added":         func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Hashes = append(p.Hashes, p.Hashes[0]) },
		"path empty":              func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Hashes = nil },
		"path hash shortened": func(p *ledger.InclusionProof, _ *ledger.Checkpoint) {
			p.Hashes = flip(p.Hashes, 1)
			p.Hashes[1] = p.Hashes[1][:31]
		},
		"index moved up":        func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Index++ },
		"index moved down":      func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Index-- },
		"index beyond size":     func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Index = p.Size },
		"size of proof changed": func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Size-- },
		"root of checkpoint replaced": func(_ *ledger.InclusionProof, cp *ledger.Checkpoint) {
			cp.Root = bytes.Repeat([]byte{1}, 32)
		},
		"root of the older checkpoint": func(_ *ledger.InclusionProof, cp *ledger.Checkpoint) { cp.Root = older.Root },
		"proof for another tree":       func(p *ledger.InclusionProof, _ *ledger.Checkpoint) { p.Tree = other },
		"leaf of another event": func(p *ledger.InclusionProof, _ *ledger.Checkpoint) {
			p.LeafHash, _ = ledger.LeafHashFromJSON(lines[idx+1])
		},
	}
	for name, mutate := range inclCases {
		p, cp := cloneIncl(incl), newer
		mutate(&p, &cp)
		if err := p.Verify(cp); !errors.Is(err, ledger.ErrVerify) {
			t.Errorf("forged inclusion proof %q: %v, want ErrVerify", name, err)
		}
	}
	// The leaf claimed by a proof is recomputed from the event, not trusted.
	if err := incl.VerifyEvent(lines[idx+1], newer); !errors.Is(err, ledger.ErrVerify) {
		t.Errorf("another event with a genuine proof: %v", err)
	}

	consCases := map[string]func(p *ledger.ConsistencyProof, o, n *ledger.Checkpoint){
		"hash flipped":          func(p *ledger.ConsistencyProof, _, _ *ledger.Checkpoint) { p.Hashes = flip(p.Hashes, 0) },
		"last hash flipped":     func(p *ledger.ConsistencyProof, _, _ *ledger.Checkpoint) { p.Hashes = flip(p.Hashes, len(p.Hashes)-1) },
		"hash dropped":          func(p *ledger.ConsistencyProof, _, _ *ledger.Checkpoint) { p.Hashes = p.Hashes[1:] },
		"hash added":            func(p *ledger.ConsistencyProof, _, _ *ledger.Checkpoint) { p.Hashes = append(p.Hashes, p.Hashes[0]) },
		"empty proof":           func(p *ledger.ConsistencyProof, _, _ *ledger.Checkpoint) { p.Hashes = nil },
		"roots swapped":         func(_ *ledger.ConsistencyProof, o, n *ledger.Checkpoint) { o.Root, n.Root = n.Root, o.Root },
		"newer root replaced":   func(_ *ledger.ConsistencyProof, _, n *ledger.Checkpoint) { n.Root = bytes.Repeat([]byte{2}, 32) },
		"older root replaced":   func(_ *ledger.ConsistencyProof, o, _ *ledger.Checkpoint) { o.Root = bytes.Repeat([]byte{3}, 32) },
		"from changed":          func(p *ledger.ConsistencyProof, o, _ *ledger.Checkpoint) { p.From--; o.Size-- },
		"to changed":            func(p *ledger.ConsistencyProof, _, _ *ledger.Checkpoint) { p.To++ },
		"sizes not the proof's": func(p *ledger.ConsistencyProof, o, _ *ledger.Checkpoint) { o.Size++ },
		"reversed (rollback)": func(p *ledger.ConsistencyProof, o, n *ledger.Checkpoint) {
			*o, *n = *n, *o
			p.From, p.To = p.To, p.From
		},
		"another tree's checkpoint": func(_ *ledger.ConsistencyProof, o, _ *ledger.Checkpoint) { *o = otherCP },
	}
	for name, mutate := range consCases {
		p, o, n := cloneCons(cons), older, newer
		mutate(&p, &o, &n)
		if err := p.Verify(o, n); !errors.Is(err, ledger.ErrVerify) {
			t.Errorf("forged consistency proof %q: %v, want ErrVerify", name, err)
		}
	}
}

func flipSigByte(n []byte) []byte {
	out := bytes.Clone(n)
	// The signature line ends with base64 and '\n'; change one base64 char
	// in the middle of the signature.
	i := len(out) - 20
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

func cloneIncl(p ledger.InclusionProof) ledger.InclusionProof {
	p.Hashes = append([][]byte(nil), p.Hashes...)
	p.LeafHash = bytes.Clone(p.LeafHash)
	return p
}

func cloneCons(p ledger.ConsistencyProof) ledger.ConsistencyProof {
	p.Hashes = append([][]byte(nil), p.Hashes...)
	return p
}
