package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of a tree's size and root hash at a
// time, in the signed-note format of transparency logs (C2SP
// tlog-checkpoint): the body is
//
//	<origin>\n<size>\n<base64 root>\ntime <RFC 3339 UTC, ms>\n
//
// followed by a blank line and the Ed25519 signature line(s).
type Checkpoint struct {
	Tree   TreeID
	Origin string
	Size   uint64
	Root   []byte
	Time   time.Time
	// Note is the whole signed note, as served and as verified.
	Note []byte
}

// checkpointTimeLayout is the extension line's time format.
const checkpointTimeLayout = "2006-01-02T15:04:05.000Z"

type checkpointJSON struct {
	Tree   TreeID    `json:"tree"`
	Origin string    `json:"origin"`
	Size   uint64    `json:"size"`
	Root   []byte    `json:"root"`
	Time   time.Time `json:"time"`
	Note   string    `json:"note"`
}

// MarshalJSON writes the note as text (it is UTF-8) and the root in base64.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkpointJSON{c.Tree, c.Origin, c.Size, c.Root, c.Time, string(c.Note)})
}

func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var j checkpointJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Checkpoint{j.Tree, j.Origin, j.Size, j.Root, j.Time, []byte(j.Note)}
	return nil
}

// signCheckpoint writes and signs the note of a checkpoint.
func signCheckpoint(signer note.Signer, origin string, t TreeID, size uint64, root []byte, at time.Time) (Checkpoint, error) {
	at = at.UTC().Truncate(time.Millisecond)
	body := log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
	body = append(body, "time "+at.Format(checkpointTimeLayout)+"\n"...)
	signed, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Tree: t, Origin: origin, Size: size, Root: bytes.Clone(root), Time: at, Note: signed}, nil
}

// VerifyCheckpoint checks a signed checkpoint against the deployment's
// verifier key and returns what it states. origin, when not empty, must be
// the checkpoint's origin line (so a checkpoint of one tree cannot stand in
// for another's). Every failure wraps ErrVerify.
func VerifyCheckpoint(signed []byte, verifierKey, origin string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: verifier key: %v", ErrVerify, err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint signature: %v", ErrVerify, err)
	}
	signedByUs := false
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			signedByUs = true
		}
	}
	if !signedByUs {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint not signed by %s", ErrVerify, v.Name())
	}
	var lc log.Checkpoint
	rest, err := lc.Unmarshal([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint body: %v", ErrVerify, err)
	}
	if origin != "" && lc.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint origin %q, want %q", ErrVerify, lc.Origin, origin)
	}
	if len(lc.Hash) != 32 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint root of %d bytes", ErrVerify, len(lc.Hash))
	}
	_, tree, err := ParseOrigin(lc.Origin)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrVerify, err)
	}
	cp := Checkpoint{Tree: tree, Origin: lc.Origin, Size: lc.Size, Root: lc.Hash, Note: bytes.Clone(signed)}
	for _, line := range strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n") {
		if ts, ok := strings.CutPrefix(line, "time "); ok {
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return Checkpoint{}, fmt.Errorf("%w: checkpoint time %q", ErrVerify, ts)
			}
			cp.Time = at
		}
	}
	return cp, nil
}
