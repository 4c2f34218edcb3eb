package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// DefaultKeyName names the deployment's key in signed notes.
const DefaultKeyName = "audittrail"

// LoadOrCreateKey reads the signed-note signer key ("PRIVATE+KEY+...") kept
// in path, or generates an Ed25519 key named name and writes it there with
// mode 0600. It returns the signer and the verifier key to publish
// ("name+hash+base64").
func LoadOrCreateKey(path, name string) (note.Signer, string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseSigningKey(strings.TrimSpace(string(b)))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("read ledger key: %w", err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, "", fmt.Errorf("generate ledger key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("write ledger key: %w", err)
	}
	// O_EXCL: two processes starting together never overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKey(path, name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("write ledger key: %w", err)
	}
	_, werr := f.WriteString(skey + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, "", fmt.Errorf("write ledger key: %w", werr)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, "", fmt.Errorf("write ledger key: %w", err)
	}
	return ParseSigningKey(skey)
}

// ParseSigningKey reads a signer key given by configuration and derives
// its verifier key. Errors never quote the key.
func ParseSigningKey(skey string) (note.Signer, string, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", errors.New("ledger key: not a signed-note signer key (PRIVATE+KEY+name+hash+base64)")
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>
	// (base64 may itself hold '+', so cut the four fields off the front).
	rest := skey
	for range 4 {
		_, rest, _ = strings.Cut(rest, "+")
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, "", errors.New("ledger key: only Ed25519 signer keys are supported")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, "", fmt.Errorf("ledger key: %w", err)
	}
	return signer, vkey, nil
}
