package client

// The pure verification of tamper evidence, standard library only, so a
// receiver of a stream or the holder of an export can check what audittrail
// proved without trusting the server: signed checkpoints (signed notes,
// Ed25519), RFC 6962 Merkle inclusion and consistency proofs, and the leaf
// of an event (RFC 6962 leaf hash of the RFC 8785 canonical form of its
// wire JSON). docs/tamper-evidence.md describes the format.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// ErrVerify is wrapped by every failed verification: a bad signature, a
// proof that does not lead to the signed root, an altered event.
var ErrVerify = errors.New("audittrail: verification failed")

func verifyErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrVerify, fmt.Sprintf(format, a...))
}

// VerifyCheckpoint checks a signed checkpoint (a signed note) against the
// deployment's verifier key ("<name>+<hash>+<base64 key>", as
// GET /.well-known/audittrail/checkpoint-key publishes it) and returns
// what it says. Only a signature by that key counts.
func VerifyCheckpoint(note, verifierKey string) (Checkpoint, error) {
	name, hash, pub, err := parseVerifierKey(verifierKey)
	if err != nil {
		return Checkpoint{}, err
	}
	// A note is its text, a blank line, then one line per signature.
	i := strings.LastIndex(note, "\n\n")
	if i < 0 || !strings.HasSuffix(note, "\n") {
		return Checkpoint{}, verifyErr("checkpoint is not a signed note")
	}
	text, sigs := note[:i+1], note[i+2:]
	signed := false
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			return Checkpoint{}, verifyErr("malformed signature line %q", line)
		}
		who, b64, ok := strings.Cut(rest, " ")
		if !ok || who != name {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != 4+ed25519.SignatureSize || binary.BigEndian.Uint32(raw) != hash {
			continue
		}
		if ed25519.Verify(pub, []byte(text), raw[4:]) {
			signed = true
			break
		}
		return Checkpoint{}, verifyErr("checkpoint signature by %s does not verify", name)
	}
	if !signed {
		return Checkpoint{}, verifyErr("checkpoint is not signed by %s", name)
	}
	cp, err := parseCheckpointText(text)
	if err != nil {
		return Checkpoint{}, err
	}
	cp.Note = note
	return cp, nil
}

// parseCheckpointText reads "origin\nsize\nbase64(root)\n" and the
// optional "time <RFC 3339>" line that follows.
func parseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		return Checkpoint{}, verifyErr("checkpoint body has %d lines, want origin, size and root", len(lines))
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (len(lines[1]) > 1 && lines[1][0] == '0') {
		return Checkpoint{}, verifyErr("checkpoint size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return Checkpoint{}, verifyErr("checkpoint root %q", lines[2])
	}
	cp := Checkpoint{Origin: lines[0], Size: size, Root: root}
	if i := strings.IndexByte(cp.Origin, '/'); i >= 0 {
		cp.Tree = cp.Origin[i+1:]
	}
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, "time "); ok {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return Checkpoint{}, verifyErr("checkpoint time %q", v)
			}
			cp.Time = at.UTC()
		}
	}
	return cp, nil
}

// parseVerifierKey reads a signed-note verifier key of an Ed25519 signer.
func parseVerifierKey(vkey string) (name string, hash uint32, pub ed25519.PublicKey, err error) {
	name, rest, ok1 := strings.Cut(strings.TrimSpace(vkey), "+")
	hexHash, b64, ok2 := strings.Cut(rest, "+")
	h, herr := strconv.ParseUint(hexHash, 16, 32)
	key, kerr := base64.StdEncoding.DecodeString(b64)
	if !ok1 || !ok2 || name == "" || len(hexHash) != 8 || herr != nil || kerr != nil ||
		len(key) != 1+ed25519.PublicKeySize || key[0] != 1 {
		return "", 0, nil, fmt.Errorf("%w: malformed verifier key (want name+hash+base64 of an Ed25519 key)", ErrVerify)
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if binary.BigEndian.Uint32(sum[:4]) != uint32(h) {
		return "", 0, nil, fmt.Errorf("%w: verifier key hash does not match its name and key", ErrVerify)
	}
	return name, uint32(h), ed25519.PublicKey(key[1:]), nil
}

// LeafHash is the leaf of one event in the ledger: the RFC 6962 leaf hash
// of the RFC 8785 canonical form of the event's wire JSON (a search
// record, an export line, a webhook audit). Members added beside the
// record, such as search's "leafIndex", must be removed first.
func LeafHash(recordJSON []byte) ([]byte, error) {
	c, err := Canonicalize(recordJSON)
	if err != nil {
		return nil, err
	}
	return hashLeaf(c), nil
}

func hashLeaf(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

func hashChildren(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// VerifyInclusion checks that leafHash is leaf index of the tree of size
// whose root is root (RFC 9162 §2.1.3.2).
func VerifyInclusion(leafHash []byte, index, size uint64, proof [][]byte, root []byte) error {
	if index >= size {
		return verifyErr("leaf index %d is outside a tree of size %d", index, size)
	}
	fn, sn := index, size-1
	r := leafHash
	for _, p := range proof {
		if sn == 0 {
			return verifyErr("inclusion proof is too long")
		}
		if fn&1 == 1 || fn == sn {
			r = hashChildren(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = hashChildren(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return verifyErr("inclusion proof is too short")
	}
	if !bytes.Equal(r, root) {
		return verifyErr("inclusion proof of leaf %d does not lead to the root of size %d", index, size)
	}
	return nil
}

// VerifyConsistency checks that the tree of size2 and root2 extends the
// tree of size1 and root1 (RFC 9162 §2.1.4.2): nothing before size1 was
// changed, removed or reordered.
func VerifyConsistency(size1, size2 uint64, proof [][]byte, root1, root2 []byte) error {
	switch {
	case size1 > size2:
		return verifyErr("tree shrank from %d to %d leaves", size1, size2)
	case size1 == size2:
		if len(proof) != 0 || !bytes.Equal(root1, root2) {
			return verifyErr("two different roots for the same size %d", size1)
		}
		return nil
	case size1 == 0:
		if len(proof) != 0 {
			return verifyErr("consistency proof from an empty tree must be empty")
		}
		return nil
	case len(proof) == 0:
		return verifyErr("empty consistency proof")
	}
	path := proof
	if size1&(size1-1) == 0 {
		path = append([][]byte{root1}, proof...)
	}
	fn, sn := size1-1, size2-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return verifyErr("consistency proof is too long")
		}
		if fn&1 == 1 || fn == sn {
			fr = hashChildren(c, fr)
			sr = hashChildren(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = hashChildren(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return verifyErr("consistency proof is too short")
	}
	if !bytes.Equal(fr, root1) || !bytes.Equal(sr, root2) {
		return verifyErr("tree of %d leaves does not extend the tree of %d leaves", size2, size1)
	}
	return nil
}

// Canonicalize returns the RFC 8785 (JCS) form of a JSON text: no white
// space, object members sorted by their UTF-16 code units, numbers as
// ECMAScript prints them, strings with the minimal escapes. Like the
// server's ledger it is total where RFC 8785 refuses: a repeated member
// keeps its last value, a number beyond the double range is null, invalid
// UTF-8 and lone surrogates become U+FFFD (docs/tamper-evidence.md).
func Canonicalize(src []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonicalize: %w", err)
	}
	// Only JSON's own white space may follow (not \v or \f, which
	// bytes.TrimSpace would also drop).
	if len(bytes.Trim(src[dec.InputOffset():], " \t\n\r")) > 0 {
		return nil, errors.New("canonicalize: trailing data after the JSON value")
	}
	return appendCanonical(nil, v)
}

func appendCanonical(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if math.IsInf(f, 0) {
			// Beyond the double range: null, as JSON.stringify(Infinity)
			// and the server's ledger write it.
			return append(dst, "null"...), nil
		}
		if err != nil {
			return nil, fmt.Errorf("canonicalize: number %s: %w", v, err)
		}
		return appendES6Number(dst, f), nil
	case string:
		return appendJCSString(dst, v), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendCanonical(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b))) })
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(appendJCSString(dst, k), ':')
			var err error
			if dst, err = appendCanonical(dst, v[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("canonicalize: unexpected %T", v)
}

// appendES6Number prints f as ECMAScript's Number.prototype.toString does,
// which RFC 8785 §3.2.2.3 requires.
func appendES6Number(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // also -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	if f >= 1e-6 && f < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	// Go writes e+07 or e-07; ECMAScript writes e+7 and e-7.
	if i := strings.IndexByte(s, 'e'); i >= 0 && i+2 < len(s) && s[i+2] == '0' {
		s = s[:i+2] + s[i+3:]
	}
	return append(dst, s...)
}

func appendJCSString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}
