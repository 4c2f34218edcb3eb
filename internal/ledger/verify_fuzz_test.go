package ledger

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// What a verifier reads comes from a server it does not trust: these
// targets feed hostile checkpoints and proofs to it. Acceptance must mean
// what was signed or proven, never something a mutation made up.

func FuzzVerifyCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "audittrail-fuzz")
	if err != nil {
		f.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	root := sha256.Sum256([]byte("root"))
	at := time.Date(2026, 11, 26, 1, 2, 3, 4e6, time.UTC)
	cp, err := signCheckpoint(signer, "audittrail/fuzz", TreeID{CompanyID: "C", ProjectID: "P"}, 7, root[:], at)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp.Note)
	f.Add(bytes.Replace(cp.Note, []byte("\n7\n"), []byte("\n8\n"), 1))
	f.Add(append(bytes.Clone(cp.Note), "— other 1234\n"...))
	f.Add([]byte("audittrail/fuzz\n7\n\n\n— audittrail-fuzz AAAA\n"))
	f.Fuzz(func(t *testing.T, signed []byte) {
		got, err := VerifyCheckpoint(signed, vkey, "")
		if err != nil {
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("VerifyCheckpoint error %v does not wrap ErrVerify", err)
			}
			return
		}
		// Only one checkpoint was ever signed: whatever verifies states it.
		if got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) || got.Origin != cp.Origin || !got.Time.Equal(cp.Time) {
			t.Fatalf("a mutated note verified as size %d root %x origin %q time %v", got.Size, got.Root, got.Origin, got.Time)
		}
	})
}

// mth is RFC 6962's Merkle tree hash of the leaf hashes.
func mth(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(mth(leaves[:k]))
	h.Write(mth(leaves[k:]))
	return h.Sum(nil)
}

// path is RFC 6962's audit path of leaf m.
func path(m int, leaves [][]byte) [][]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	if m < k {
		return append(path(m, leaves[:k]), mth(leaves[k:]))
	}
	return append(path(m-k, leaves[k:]), mth(leaves[:k]))
}

func FuzzVerifyInclusion(f *testing.F) {
	const n = 7
	leaves := make([][]byte, n)
	for i := range leaves {
		h := sha256.Sum256(append([]byte{0}, byte(i)))
		leaves[i] = h[:]
	}
	root := mth(leaves)
	for i := range n {
		if err := VerifyInclusion(leaves[i], uint64(i), n, path(i, leaves), root); err != nil {
			f.Fatalf("the test's own proof of leaf %d fails: %v", i, err)
		}
		f.Add(uint8(i), uint64(i), uint64(n), bytes.Join(path(i, leaves), nil))
	}
	f.Add(uint8(0), uint64(0), uint64(1), []byte{})
	f.Add(uint8(3), ^uint64(0), ^uint64(0), bytes.Repeat([]byte{1}, 64*32))
	f.Fuzz(func(t *testing.T, leaf uint8, index, size uint64, flat []byte) {
		j := int(leaf) % n
		var hashes [][]byte
		for len(flat) >= 32 && len(hashes) < 70 {
			hashes = append(hashes, flat[:32])
			flat = flat[32:]
		}
		if len(flat) > 0 {
			hashes = append(hashes, flat) // a short hash must be refused, not read past
		}
		// RFC 6962 paths do not bind the tree size by themselves: the
		// leftmost leaf's path is the same for sizes 5 to 8 (the fuzzer
		// found it). The size is bound by the signed checkpoint, which is
		// what InclusionProof.Verify checks against; with it, acceptance
		// must mean the true index and size.
		if err := VerifyInclusion(leaves[j], index, size, hashes, root); err != nil && !errors.Is(err, ErrVerify) {
			t.Fatalf("VerifyInclusion error %v does not wrap ErrVerify", err)
		}
		tree := TreeID{CompanyID: "C", ProjectID: "P"}
		p := InclusionProof{Tree: tree, Index: index, Size: size, LeafHash: leaves[j], Hashes: hashes}
		if err := p.Verify(Checkpoint{Tree: tree, Size: n, Root: root}); err == nil && (index != uint64(j) || size != n) {
			t.Fatalf("leaf %d proven at index %d of a tree of size %d (it is at %d of %d)", j, index, size, j, n)
		}
	})
}
