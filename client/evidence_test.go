package client_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/audittrail/audittrail/client"
	"github.com/audittrail/audittrail/internal/ledger"
)

// The SDK's verification is a standard-library copy of internal/ledger's:
// these tests hold the two to the same answers.

func TestCanonicalizeAgreesWithLedger(t *testing.T) {
	inputs := []string{
		`{"b":1,"a":2}`,
		`{"id":"e1","data":{"n":1e21,"m":1e-7,"f":0.1,"i":-0,"big":12345678901234567890,"neg":-1.5e-300}}`,
		`{"s":"tab\there \"quoted\" back\\slash \u0001 \u001f é 😀 <>&/"}`,
		`{"\u20ac":1,"\ud83d\ude00":2,"a":3,"A":4,"":5,"aa":6}`,
		`[true,false,null,[],{},[{"z":{"y":[1,2,{"x":"w"}]}}]]`,
		`  {"spaces" :  [ 1 , 2 ] }  `,
		`"just a string"`,
		`123.456000`,
		`{"n":[0.000001,1e-6,100,1e2,9007199254740993,5e-324,1.7976931348623157e308]}`,
		`{"big":1e400,"neg":-1e999,"dup":1,"dup":2}`,
		"{\"s\":\"\\ud800 lone, \xff invalid\"}",
	}
	for _, in := range inputs {
		want, err := ledger.Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("ledger.Canonicalize(%s): %v", in, err)
		}
		got, err := client.Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("client.Canonicalize(%s): %v", in, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Canonicalize(%s)\n client %s\n ledger %s", in, got, want)
		}
	}
	for _, bad := range []string{`{"a":1}x`, `{"a":}`, `NaN`, `[1,]`, `{"a" 1}`} {
		if _, err := client.Canonicalize([]byte(bad)); err == nil {
			t.Errorf("Canonicalize(%q) accepted", bad)
		}
	}
}

func TestLeafHashAgreesWithLedger(t *testing.T) {
	rec := []byte(`{"id":"e1","projectId":"P1","level":"project","userId":"u","action":"LoginSucceed","type":"info","actorId":"u","occurred":"1700000000000","device":"Desktop","method":"otp","geo":"FR","remoteAddress":"10.0.0.1","externalIds":["a@b.c"],"tenants":["t1"],"data":{"n":2.50,"s":"é"}}`)
	want, err := ledger.LeafHashFromJSON(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.LeafHash(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("LeafHash: client %x, ledger %x", got, want)
	}
}

// signer makes a deployment key and signs checkpoints as the server does.
type signer struct {
	s    note.Signer
	vkey string
}

func newSigner(t *testing.T, name string) signer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer{s, vkey}
}

func (s signer) checkpoint(t *testing.T, tree string, size uint64, root []byte) string {
	t.Helper()
	body := fmt.Sprintf("audittrail/%s\n%d\n%s\ntime %s\n", tree, size, base64.StdEncoding.EncodeToString(root), time.Unix(1700000000, 0).UTC().Format(time.RFC3339Nano))
	b, err := note.Sign(&note.Note{Text: body}, s.s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifyCheckpoint(t *testing.T) {
	k := newSigner(t, "audittrail")
	root := bytes.Repeat([]byte{7}, 32)
	n := k.checkpoint(t, "c1/project/p1", 42, root)
	cp, err := client.VerifyCheckpoint(n, k.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 42 || !bytes.Equal(cp.Root, root) || cp.Tree != "c1/project/p1" || cp.Time.Unix() != 1700000000 {
		t.Fatalf("checkpoint read as %+v", cp)
	}
	// The ledger reads it the same way.
	lcp, err := ledger.VerifyCheckpoint([]byte(n), k.vkey, "")
	if err != nil || lcp.Size != cp.Size || lcp.Tree.String() != cp.Tree {
		t.Fatalf("ledger reads %+v, %v", lcp, err)
	}

	other := newSigner(t, "audittrail")
	impostor := newSigner(t, "someone")
	forged := []struct {
		name, note, key string
	}{
		{"another key of the same name", other.checkpoint(t, "c1/project/p1", 42, root), k.vkey},
		{"another signer", impostor.checkpoint(t, "c1/project/p1", 42, root), k.vkey},
		{"size changed after signing", strings.Replace(n, "\n42\n", "\n43\n", 1), k.vkey},
		{"root changed after signing", strings.Replace(n, base64.StdEncoding.EncodeToString(root), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32)), 1), k.vkey},
		{"origin changed after signing", strings.Replace(n, "p1", "p2", 1), k.vkey},
		{"signature removed", n[:strings.LastIndex(n, "\n\n")+2], k.vkey},
		{"not a note", "hello\n", k.vkey},
		{"bad key", n, "audittrail+00000000+AQ=="},
		{"key hash of another name", n, strings.Replace(k.vkey, "audittrail+", "audittrai1+", 1)},
	}
	for _, f := range forged {
		if _, err := client.VerifyCheckpoint(f.note, f.key); !errors.Is(err, client.ErrVerify) {
			t.Errorf("%s: accepted (err %v)", f.name, err)
		}
	}
}

func leafData(i int) []byte { return []byte(fmt.Sprintf(`{"id":"e%d"}`, i)) }

func TestProofsAgainstReferenceTree(t *testing.T) {
	tree := testonly.New(rfc6962.DefaultHasher)
	for i := range 40 {
		tree.AppendData(leafData(i))
	}
	for size := uint64(1); size <= 40; size++ {
		root := tree.HashAt(size)
		for idx := uint64(0); idx < size; idx++ {
			p, err := tree.InclusionProof(idx, size)
			if err != nil {
				t.Fatal(err)
			}
			leaf := tree.LeafHash(idx)
			if err := client.VerifyInclusion(leaf, idx, size, p, root); err != nil {
				t.Fatalf("inclusion %d/%d: %v", idx, size, err)
			}
			// Forgeries: every one refused.
			bad := []struct {
				name      string
				leaf      []byte
				idx, size uint64
				proof     [][]byte
				root      []byte
			}{
				{"other leaf", tree.LeafHash((idx + 1) % 40), idx, size, p, root},
				{"wrong index", leaf, (idx + 1) % size, size, p, root},
				{"wrong size", leaf, idx, size + 1, p, tree.HashAt(min(size+1, 40))},
				{"index beyond size", leaf, size, size, p, root},
				{"extra hash", leaf, idx, size, append(clone(p), leaf), root},
				{"wrong root", leaf, idx, size, p, tree.HashAt(size - 1)},
			}
			if len(p) > 0 {
				flipped := clone(p)
				flipped[0] = append([]byte{flipped[0][0] ^ 1}, flipped[0][1:]...)
				bad = append(bad, struct {
					name      string
					leaf      []byte
					idx, size uint64
					proof     [][]byte
					root      []byte
				}{"flipped hash", leaf, idx, size, flipped, root},
					struct {
						name      string
						leaf      []byte
						idx, size uint64
						proof     [][]byte
						root      []byte
					}{"truncated", leaf, idx, size, p[:len(p)-1], root})
			}
			for _, b := range bad {
				if (b.name == "wrong index" && size == 1) || (b.name == "wrong size" && size == 40) {
					continue
				}
				if b.name == "wrong root" && size == 1 {
					continue // HashAt(0) is the empty root; still must fail, checked below
				}
				if err := client.VerifyInclusion(b.leaf, b.idx, b.size, b.proof, b.root); !errors.Is(err, client.ErrVerify) {
					t.Fatalf("inclusion %d/%d, %s: accepted", idx, size, b.name)
				}
			}
		}
		for from := uint64(0); from <= size; from++ {
			p, err := tree.ConsistencyProof(from, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := client.VerifyConsistency(from, size, p, tree.HashAt(from), root); err != nil {
				t.Fatalf("consistency %d→%d: %v", from, size, err)
			}
			if from > 0 && from < size {
				if err := client.VerifyConsistency(from, size, p, tree.HashAt(from-1), root); !errors.Is(err, client.ErrVerify) {
					t.Fatalf("consistency %d→%d with another old root: accepted", from, size)
				}
				if err := client.VerifyConsistency(from, size, p[:len(p)-1], tree.HashAt(from), root); !errors.Is(err, client.ErrVerify) {
					t.Fatalf("consistency %d→%d truncated: accepted", from, size)
				}
				if err := client.VerifyConsistency(size, from, p, root, tree.HashAt(from)); !errors.Is(err, client.ErrVerify) {
					t.Fatalf("consistency %d→%d (shrinking): accepted", size, from)
				}
			}
		}
	}
}

func clone(p [][]byte) [][]byte { return append([][]byte(nil), p...) }

// streamFixture is a log whose events are {"id":"e<i>"} records, and the
// batches a connector would deliver from it.
type streamFixture struct {
	t    *testing.T
	k    signer
	tree *testonly.Tree
	recs [][]byte
}

const fixtureTree = "c1/project/p1"

func newStreamFixture(t *testing.T, n int) *streamFixture {
	f := &streamFixture{t: t, k: newSigner(t, "audittrail"), tree: testonly.New(rfc6962.DefaultHasher)}
	for i := range n {
		rec := []byte(fmt.Sprintf(`{"id":"e%d","action":"A","data":{"n":%d}}`, i, i))
		leaf, err := client.LeafHash(rec)
		if err != nil {
			t.Fatal(err)
		}
		f.tree.Append(leaf)
		f.recs = append(f.recs, rec)
	}
	return f
}

// batch is the webhook body of events [from, to) proven against size.
func (f *streamFixture) batch(from, to int, size uint64) map[string]any {
	ev := client.StreamEvidence{Checkpoints: []string{f.k.checkpoint(f.t, fixtureTree, size, f.tree.HashAt(size))}}
	var audits []json.RawMessage
	for i := from; i < to; i++ {
		p, err := f.tree.InclusionProof(uint64(i), size)
		if err != nil {
			f.t.Fatal(err)
		}
		audits = append(audits, f.recs[i])
		ev.Leaves = append(ev.Leaves, client.InclusionProof{ID: fmt.Sprintf("e%d", i), Tree: fixtureTree, Index: uint64(i), Size: size, LeafHash: f.tree.LeafHash(uint64(i)), Hashes: p})
	}
	return map[string]any{"audits": audits, "evidence": ev}
}

func body(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStreamVerifierDetectsTampering(t *testing.T) {
	f := newStreamFixture(t, 30)
	check := func(v *client.StreamVerifier, b map[string]any) []client.EvidenceProblem {
		t.Helper()
		ps, err := v.VerifyWebhookBody(body(t, b))
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	clean := func() *client.StreamVerifier {
		v := &client.StreamVerifier{VerifierKey: f.k.vkey}
		if ps := check(v, f.batch(0, 10, 12)); len(ps) != 0 {
			t.Fatalf("a clean batch: %v", ps)
		}
		return v
	}

	// A clean stream, with a redelivery (at least once) in the middle.
	v := clean()
	for _, b := range []map[string]any{f.batch(10, 20, 20), f.batch(10, 20, 20), f.batch(20, 30, 30)} {
		if ps := check(v, b); len(ps) != 0 {
			t.Fatalf("clean stream: %v", ps)
		}
	}

	wantProblem := func(name string, ps []client.EvidenceProblem, id, reason string) {
		t.Helper()
		for _, p := range ps {
			if p.ID == id && strings.Contains(p.Reason, reason) {
				return
			}
		}
		t.Errorf("%s: want a problem for %q about %q, got %v", name, id, reason, ps)
	}

	// Missing: a batch skips event 10.
	v = clean()
	wantProblem("missing", check(v, f.batch(11, 20, 20)), "e11", "missing")

	// Missing inside a batch: event 14 dropped from audits and evidence.
	v = clean()
	b := f.batch(10, 20, 20)
	b["audits"] = append(append([]json.RawMessage{}, b["audits"].([]json.RawMessage)[:4]...), b["audits"].([]json.RawMessage)[5:]...)
	ev := b["evidence"].(client.StreamEvidence)
	ev.Leaves = append(append([]client.InclusionProof{}, ev.Leaves[:4]...), ev.Leaves[5:]...)
	b["evidence"] = ev
	wantProblem("missing in batch", check(v, b), "e15", "missing")

	// Missing from audits only: evidence lists it, the body does not.
	v = clean()
	b = f.batch(10, 20, 20)
	b["audits"] = b["audits"].([]json.RawMessage)[1:]
	ps := check(v, b)
	wantProblem("audit removed", ps, "", "added or removed")

	// Repeated: event 12 injected again later in the batch.
	v = clean()
	b = f.batch(10, 20, 20)
	audits := b["audits"].([]json.RawMessage)
	ev = b["evidence"].(client.StreamEvidence)
	b["audits"] = append(append([]json.RawMessage{}, audits...), audits[2])
	ev.Leaves = append(append([]client.InclusionProof{}, ev.Leaves...), ev.Leaves[2])
	b["evidence"] = ev
	wantProblem("repeated", check(v, b), "e12", "repeated")

	// Repeated across batches: an old event re-sent inside a new batch.
	v = clean()
	b = f.batch(10, 20, 20)
	audits = b["audits"].([]json.RawMessage)
	ev = b["evidence"].(client.StreamEvidence)
	ev.Leaves[3] = f.batch(3, 4, 20)["evidence"].(client.StreamEvidence).Leaves[0]
	audits[3] = f.recs[3]
	b["evidence"] = ev
	wantProblem("replayed", check(v, b), "e3", "repeated")

	// Altered: event 15's data changed in transit.
	v = clean()
	b = f.batch(10, 20, 20)
	b["audits"].([]json.RawMessage)[5] = []byte(`{"id":"e15","action":"A","data":{"n":999}}`)
	wantProblem("altered", check(v, b), "e15", "altered")

	// Reordered: two events swapped, evidence left in place.
	v = clean()
	b = f.batch(10, 20, 20)
	audits = b["audits"].([]json.RawMessage)
	audits[2], audits[3] = audits[3], audits[2]
	wantProblem("reordered", check(v, b), "e13", "reordered")

	// A forged proof (hash flipped) and a checkpoint by another key.
	v = clean()
	b = f.batch(10, 20, 20)
	ev = b["evidence"].(client.StreamEvidence)
	ev.Leaves[1].Hashes[0] = bytes.Repeat([]byte{0}, 32)
	b["evidence"] = ev
	wantProblem("forged proof", check(v, b), "e11", "inclusion proof refused")
	v = clean()
	b = f.batch(10, 20, 20)
	ev = b["evidence"].(client.StreamEvidence)
	other := newSigner(t, "audittrail")
	ev.Checkpoints = []string{other.checkpoint(t, fixtureTree, 20, f.tree.HashAt(20))}
	b["evidence"] = ev
	wantProblem("forged checkpoint", check(v, b), "", "checkpoint refused")

	// Rolled back: a checkpoint smaller than one seen before.
	v = clean()
	if ps := check(v, f.batch(10, 20, 25)); len(ps) != 0 {
		t.Fatal(ps)
	}
	wantProblem("rolled back", check(v, f.batch(20, 22, 22)), "", "rolled back")

	// No evidence at all.
	if _, err := (&client.StreamVerifier{VerifierKey: f.k.vkey}).VerifyWebhookBody([]byte(`{"audits":[]}`)); err == nil {
		t.Error("a body without evidence was accepted")
	}
}

// FuzzCanonicalizeAgreesWithLedger: whatever JSON the SDK canonicalises,
// the server's ledger canonicalises to the same bytes.
func FuzzCanonicalizeAgreesWithLedger(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `{"n":1e21,"m":-0.0,"k":1E-7}`, `"\u00e9\ud83d\ude00"`, `{"a":{"b":{"c":"\u0007"}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := client.Canonicalize(in)
		if err != nil {
			return
		}
		want, err := ledger.Canonicalize(in)
		if err != nil {
			t.Fatalf("the SDK canonicalises %q to %s, the ledger refuses it: %v", in, got, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Canonicalize(%q)\n SDK    %s\n ledger %s", in, got, want)
		}
	})
}
